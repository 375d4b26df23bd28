// SPDX-License-Identifier: GPL-2.0
/* tcpnagle: how TCP transmits are held back by Nagle's algorithm and corking.
 *
 * Full plans hook tcp_write_xmit(sk, mss_now, nonagle, push_one, gfp): the nonagle argument
 * says which rule applies, and a true return means data was queued but nothing could be sent.
 * The time from the first such return to the next one that sends is the time transmits were
 * blocked. No tracepoint sits on that path, so this needs fentry/fexit or kprobe/kretprobe.
 *
 * The partial plan (tracepoints only) looks at each send instead: the nonagle value its final
 * push hands tcp_write_xmit (tcp_sock.nonagle, or CORK for MSG_MORE), and whether data stayed
 * queued, unsent, when the send returned. */
#include "common/netbpf.bpf.h"
#include "common/call_stack.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "tcpnagle.h"

char LICENSE[] SEC("license") = "GPL";

#define TCP_NAGLE_CORK 2
#define MSG_MORE 0x8000

/* nonagle value -> transmits (full) or sends (partial) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TCPNAGLE_VALUES);
	__type(key, __u32);
	__type(value, __u64);
} nagle SEC(".maps");

/* partial: nonagle value -> sends after which data stayed queued, unsent */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TCPNAGLE_VALUES);
	__type(key, __u32);
	__type(value, __u64);
} unsent SEC(".maps");

/* full: time transmits were blocked, in microseconds */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} blocked_us SEC(".maps");

/* full: sk -> when its transmits were first blocked */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} blocked_since SEC(".maps");

static __always_inline void count(void *map, __u32 value)
{
	__u32 key = value & (TCPNAGLE_VALUES - 1);
	__u64 *n = bpf_map_lookup_elem(map, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline bool sk_wanted(const struct sock *sk)
{
	return tgid_ok(current_tgid()) && sk_netns_ok(sk) &&
	       family_ok(BPF_CORE_READ(sk, __sk_common.skc_family)) && sk_cgroup_ok(sk);
}

/* A tcp_write_xmit() call returned: blocked is its return value. */
static __always_inline void xmit_done(const struct sock *sk, int nonagle, bool blocked)
{
	__u64 key = (__u64)sk, now, *since;
	__u32 slot = 0;
	struct hist *h;

	count(&nagle, nonagle);
	since = bpf_map_lookup_elem(&blocked_since, &key);
	if (blocked) {
		if (!since) {
			now = bpf_ktime_get_ns();
			bpf_map_update_elem(&blocked_since, &key, &now, BPF_NOEXIST);
		}
		return;
	}
	if (!since)
		return;
	h = bpf_map_lookup_elem(&blocked_us, &slot);
	if (h)
		hist_add(h, (bpf_ktime_get_ns() - *since) / 1000);
	bpf_map_delete_elem(&blocked_since, &key);
}

SEC("fexit/tcp_write_xmit")
int BPF_PROG(tcpnagle_fexit, struct sock *sk, unsigned int mss_now, int nonagle, int push_one,
	     gfp_t gfp, bool ret)
{
	if (sk_wanted(sk))
		xmit_done(sk, nonagle, ret);
	return 0;
}

/* kprobe plan: the arguments are gone at return, so the entry keeps them (a: sk, b: nonagle).
 * tcp_write_xmit() nests on a thread: a transmit on loopback delivers to the peer in a softirq
 * right there, and the peer's ACK processing can transmit on its own socket. */
DEFINE_CALL_STACKS(xmit_calls);

SEC("kprobe/tcp_write_xmit")
int BPF_KPROBE(tcpnagle_kprobe, struct sock *sk, unsigned int mss_now, int nonagle)
{
	call_push(&xmit_calls, (__u64)sk, (__u32)nonagle, sk_wanted(sk));
	return 0;
}

SEC("kretprobe/tcp_write_xmit")
int BPF_KRETPROBE(tcpnagle_kretprobe, bool ret)
{
	struct call_frame f;

	if (call_pop(&xmit_calls, &f))
		xmit_done((const struct sock *)f.a, (int)f.b, ret);
	return 0;
}

/* Partial plan. thread -> MSG_MORE seen in the TCP send it is in */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} send_more SEC(".maps");

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(tcpnagle_sendmsg, const struct sock *sk, const struct msghdr *msg)
{
	__u32 tid = current_tid(), more;

	more = BPF_CORE_READ(msg, msg_flags) & MSG_MORE;
	if (more)
		bpf_map_update_elem(&send_more, &tid, &more, BPF_ANY);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tcpnagle_send, struct sock *sk, int ret)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 tid = current_tid(), nonagle;
	bool more;

	more = bpf_map_lookup_elem(&send_more, &tid) != NULL;
	if (more)
		bpf_map_delete_elem(&send_more, &tid);
	if (ret <= 0 || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_wanted(sk))
		return 0;
	/* tcp_push() hands tcp_write_xmit CORK for MSG_MORE, else the socket's own flags. */
	nonagle = more ? TCP_NAGLE_CORK : BPF_CORE_READ_BITFIELD_PROBED(tp, nonagle);
	count(&nagle, nonagle);
	if (BPF_CORE_READ(tp, write_seq) != BPF_CORE_READ(tp, snd_nxt))
		count(&unsent, nonagle);
	return 0;
}
