// SPDX-License-Identifier: GPL-2.0
/* tcpwin: congestion window, slow-start threshold and send buffer of TCP sockets, sampled each
 * time a segment arrives on an established socket (tcp_probe fires at the top of
 * tcp_rcv_established, where the book's kprobe was).
 *
 * The kernel reuses a closed socket's memory for the next one, so the socket's address alone
 * joins unrelated connections: each sample also carries its connection's start time, kept by
 * socket address from the SYN (or, for a connection older than the trace, its first sample)
 * to CLOSE. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcpwin.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpwin_event);

/* Socket address -> bpf_ktime_get_ns() when its current connection began. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} conn_start SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpwin_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk, now;

	if (!sk_netns_ok(sk))
		return 0;
	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		now = bpf_ktime_get_ns();
		bpf_map_update_elem(&conn_start, &key, &now, BPF_ANY);
	} else if (newstate == TCP_CLOSE) {
		bpf_map_delete_elem(&conn_start, &key);
	}
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcpwin_probe, struct sock *sk, const struct sk_buff *skb)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 key = (__u64)sk, *start;
	struct tcpwin_event *e;
	struct sock_tuple t = {};

	if (!sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	sk_read_tuple(sk, &t);
	tuple_unmap_v4(&t);
	if (!family_ok(t.family) || !lport_ok(t.lport) || !rport_ok(t.rport))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->cgroup = sk_cgroup_id(sk);
	e->tuple = t;
	e->skaddr = (__u64)sk;
	e->ts_ns = bpf_ktime_get_ns();
	start = bpf_map_lookup_elem(&conn_start, &key);
	if (!start) {
		/* Established before tracing began: it starts now, as far as this trace knows. From
		 * the stack: older verifiers (6.1) refuse ring-buffer memory as a map update's value. */
		__u64 now = e->ts_ns;

		bpf_map_update_elem(&conn_start, &key, &now, BPF_NOEXIST);
		start = bpf_map_lookup_elem(&conn_start, &key);
	}
	e->conn_start_ns = start ? *start : e->ts_ns;
	e->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
	e->snd_ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	e->sk_sndbuf = BPF_CORE_READ(sk, sk_sndbuf);
	e->sk_wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	submit_event(e);
	return 0;
}
