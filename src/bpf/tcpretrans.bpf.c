// SPDX-License-Identifier: GPL-2.0
/* tcpretrans: TCP retransmits (and, with -l, tail loss probes), one line each or counted per
 * connection in the kernel (-c).
 *
 * Retransmits mostly run from timers and ACK processing in softirq, where the task on CPU is
 * unrelated to the socket. The owner is learned instead from the socket's own state changes
 * (connect, listen, close: common/tcp_owner.bpf.h), which are cheap and rare. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/maps.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "common/export.bpf.h"
#include "tcpretrans.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpretrans_event);

const volatile bool count_mode = false;
/* Whether the tracepoint has its err argument (recent kernels); set from BTF by user space. */
const volatile bool tp_has_err = true;

#define EBUSY 16

/* Retransmits not attempted because the original was still in a host queue (-EBUSY): nothing
 * was sent and the kernel does not count them, so they are not shown; user space reports the
 * number. Other failures (e.g. a local qdisc dropped the segment) are retransmits the kernel
 * counts (RetransSegs, tcpi_total_retrans): they are shown, with their error. */
__u64 busy_skipped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcpretrans_count_key);
	__type(value, __u64);
} counts SEC(".maps");

/* Exporter mode (common/export.bpf.h): segments retransmitted (metric 0) and tail loss probes
 * (metric 1), by the socket's state. */
static __always_inline void export_retransmit(const struct sock *sk, const struct sk_buff *skb, __u8 kind)
{
	__u64 segs = 1;

	if (skb) {
		struct tcp_skb_cb *cb = (void *)skb + bpf_core_field_offset(struct sk_buff, cb);

		segs = BPF_CORE_READ(cb, tcp_gso_segs) ?: 1;
	}
	export_count(kind == TCPRETRANS_LOSS_PROBE, BPF_CORE_READ(sk, __sk_common.skc_state), 0, segs);
}

static __always_inline void report(const struct sock *sk, const struct sk_buff *skb, __u8 kind, int err)
{
	struct tcpretrans_event *e;
	struct sk_owner *owner;
	struct sock_tuple t = {};
	__u64 key = (__u64)sk;

	if (!netns_ok(sk_netns_cookie(sk)))
		return;
	sk_read_tuple(sk, &t);
	if (!sk_is_inet(t.family) || !family_ok(t.family))
		return;
	if (export_mode) {
		export_retransmit(sk, skb, kind);
		return;
	}
	owner = bpf_map_lookup_elem(&sk_owners, &key);
	if (filter_tgid && (!owner || owner->pid != filter_tgid))
		return;

	if (count_mode) {
		struct tcpretrans_count_key k = { .family = t.family, .lport = t.lport, .rport = t.rport };

		__builtin_memcpy(k.saddr, t.saddr, sizeof(k.saddr));
		__builtin_memcpy(k.daddr, t.daddr, sizeof(k.daddr));
		counter_add(&counts, &k, 1);
		return;
	}

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->kind = kind;
	e->err = err;
	e->seq = 0;
	e->segs = 0;
	if (skb) {
		/* TCP_SKB_CB(skb) lives in skb->cb: the first byte's sequence number, and how many
		 * segments the skb was sent as. */
		struct tcp_skb_cb *cb = (void *)skb + bpf_core_field_offset(struct sk_buff, cb);

		e->seq = BPF_CORE_READ(cb, seq);
		e->segs = BPF_CORE_READ(cb, tcp_gso_segs);
	}
	if (owner) {
		e->pid = owner->pid;
		__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->comm[0] = 0;
	}
	submit_event(e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpretrans_owner, struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !netns_ok(sk_netns_cookie(sk)))
		return 0;
	owner_track(sk, oldstate, newstate);
	if (newstate == TCP_CLOSE)
		owner_forget(sk);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcpretrans_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	int err = 0;

	if (tp_has_err) {
		err = (int)ctx[2];
		if (err == -EBUSY) {
			__sync_fetch_and_add(&busy_skipped, 1);
			return 0;
		}
	}
	report(sk, skb, TCPRETRANS_RETRANSMIT, err);
	return 0;
}

/* Tail loss probes (-l): no tracepoint marks them, so these need a function hook. Only the one
 * the chosen plan names is loaded. */
SEC("fentry/tcp_send_loss_probe")
int BPF_PROG(tcpretrans_tlp_fentry, struct sock *sk)
{
	report(sk, NULL, TCPRETRANS_LOSS_PROBE, 0);
	return 0;
}

SEC("kprobe/tcp_send_loss_probe")
int BPF_KPROBE(tcpretrans_tlp_kprobe, struct sock *sk)
{
	report(sk, NULL, TCPRETRANS_LOSS_PROBE, 0);
	return 0;
}
