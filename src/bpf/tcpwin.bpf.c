// SPDX-License-Identifier: GPL-2.0
/* tcpwin: congestion window, slow-start threshold and send buffer of TCP sockets, sampled each
 * time a segment arrives on an established socket (tcp_probe fires at the top of
 * tcp_rcv_established, where the book's kprobe was). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcpwin.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpwin_event);

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcpwin_probe, struct sock *sk, const struct sk_buff *skb)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
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
	e->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
	e->snd_ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	e->sk_sndbuf = BPF_CORE_READ(sk, sk_sndbuf);
	e->sk_wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	submit_event(e);
	return 0;
}
