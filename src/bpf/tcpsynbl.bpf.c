// SPDX-License-Identifier: GPL-2.0
/* tcpsynbl: the listen backlog (accept queue length) each time a handshake completes, as log2
 * histograms keyed by the backlog limit, and a record each time a packet is dropped because the
 * queue is full.
 *
 * Histograms (every plan): the child socket is cloned from its listener when the handshake's
 * final ACK arrives, and the clone enters SYN_RECV right away (from LISTEN, the state it was
 * copied with): at that moment its sk_ack_backlog and sk_max_ack_backlog are still the
 * listener's. A full queue (backlog > limit: the kernel admits limit + 1) drops two kinds of
 * packets:
 * - a SYN: tcp_conn_request() refuses it before making a request socket, and the SYN is then
 *   consumed (consume_skb, not a drop as far as kfree_skb is concerned);
 * - a handshake's final ACK: tcp_v4/v6_syn_recv_sock() refuses to create the child.
 * The fentry and kprobe plans hook those two functions, with the listener as an argument. The
 * tp_btf plan sees SYNs at consume_skb, finding the listener in a map filled at listen() and,
 * by user space at start, with the listeners that already existed (core/sock_owners.rs), and
 * handshake ACKs at kfree_skb with
 * reason TCP_LISTEN_OVERFLOW (kernels that have that reason; the listener is its rx_sk). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "common/export.bpf.h"
#include "common/tcp_packet.bpf.h"
#include "tcpsynbl.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpsynbl_drop);

/* backlog limit -> histogram of the backlog */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct hist);
} backlog SEC(".maps");

/* tp_btf plan: listening sockets by (netns, bound address, port), from listen() on. */
struct listener_addr {
	__u64 netns;
	__u8 addr[16];
	__u16 family;
	__u16 port;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listener_addr);
	__type(value, __u64);
} listeners SEC(".maps");

/* Set by user space: whether the listeners map is kept (tp_btf plan). */
const volatile bool track_listeners = false;

static __always_inline void listener_key(struct listener_addr *k, const struct sock *sk, __u16 port)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = sk_netns_id(sk);
	k->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	k->port = port;
	if (k->family == AF_INET6)
		BPF_CORE_READ_INTO(&k->addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	else
		BPF_CORE_READ_INTO((__u32 *)k->addr, sk, __sk_common.skc_rcv_saddr);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpsynbl_child, struct sock *sk, int oldstate, int newstate)
{
	struct listener_addr lk;
	struct sock_tuple t = {};
	__u64 max, skey = (__u64)sk, *known;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	if (track_listeners && newstate == TCP_LISTEN) {
		/* Bound already (listen() on an unbound socket binds after this: not known). */
		listener_key(&lk, sk, BPF_CORE_READ(sk, __sk_common.skc_num));
		if (lk.port)
			bpf_map_update_elem(&listeners, &lk, &skey, BPF_ANY);
		return 0;
	}
	if (track_listeners && oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		/* The port is released by now (skc_num 0); inet_sport still has it. Only this
		 * socket's own entry goes: another listener may share the address (SO_REUSEPORT). */
		listener_key(&lk, sk, bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport)));
		known = bpf_map_lookup_elem(&listeners, &lk);
		if (known && *known == skey)
			bpf_map_delete_elem(&listeners, &lk);
		return 0;
	}
	/* A child cloned from its listener; a simultaneous open also enters SYN_RECV, from
	 * SYN_SENT, and has no accept queue. */
	if (newstate != TCP_SYN_RECV || oldstate != TCP_LISTEN)
		return 0;
	sk_read_tuple(sk, &t);
	tuple_unmap_v4(&t);
	if (!family_ok(t.family))
		return 0;
	max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	/* Exporter mode (common/export.bpf.h): histogram 0 by backlog limit; the port label is the
	 * listener's port, which the child still has. */
	if (export_mode) {
		export_hist_add(0, max, BPF_CORE_READ(sk, __sk_common.skc_num), BPF_CORE_READ(sk, sk_ack_backlog));
		return 0;
	}
	hist_map_add(&backlog, &max, BPF_CORE_READ(sk, sk_ack_backlog));
	return 0;
}

/* The TCP packet of a received skb (its IP header at network_header). */
static __always_inline bool rx_packet(const struct sk_buff *skb, struct tcp_packet *p)
{
	const unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	__u16 nh = BPF_CORE_READ(skb, network_header);

	if ((proto != ETH_P_IP && proto != ETH_P_IPV6) || !nh || nh == (__u16)~0U)
		return false;
	return parse_tcp_packet(head + nh, 0, p);
}

/* Reports packet p dropped at a full queue of `listener` (NULL: not known). */
static __always_inline void report(const struct tcp_packet *p, const struct sock *listener, __u8 kind)
{
	struct tcpsynbl_drop *e;

	if (!family_ok(p->family))
		return;
	if (!sk_cgroup_ok(listener))
		return; /* the listener's cgroup (no listener found: none) */
	/* Exporter mode: drops counted (metric 0), the port label being the listening port. */
	if (export_mode) {
		export_count(0, 0, p->dport, 1);
		return;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->family = p->family;
	e->lport = p->dport;
	__builtin_memcpy(e->laddr, p->daddr, sizeof(e->laddr));
	if (listener) {
		e->backlog = BPF_CORE_READ(listener, sk_ack_backlog);
		e->max_backlog = BPF_CORE_READ(listener, sk_max_ack_backlog);
	}
	e->cgroup = sk_cgroup_id(listener);
	submit_event(e);
}

static __always_inline bool queue_full(const struct sock *listener)
{
	return BPF_CORE_READ(listener, sk_ack_backlog) > BPF_CORE_READ(listener, sk_max_ack_backlog);
}

/* A SYN or a handshake ACK reached `listener`: reported when its queue is full, which makes the
 * kernel drop it (the check these functions make first). */
static __always_inline void arrived(const struct sock *listener, const struct sk_buff *skb, __u8 kind)
{
	struct tcp_packet p;

	if (!queue_full(listener) || !sk_netns_ok(listener) || !rx_packet(skb, &p))
		return;
	report(&p, listener, kind);
}

/* fentry plan */
SEC("fentry/tcp_conn_request")
int BPF_PROG(tcpsynbl_conn_request, struct request_sock_ops *rsk_ops,
	     const struct tcp_request_sock_ops *af_ops, struct sock *sk, struct sk_buff *skb)
{
	arrived(sk, skb, TCPSYNBL_SYN);
	return 0;
}

SEC("fentry/tcp_v4_syn_recv_sock")
int BPF_PROG(tcpsynbl_v4_syn_recv, const struct sock *sk, struct sk_buff *skb)
{
	arrived(sk, skb, TCPSYNBL_ACK);
	return 0;
}

/* For an IPv4 packet (a dual-stack listener), tcp_v6_syn_recv_sock() calls
 * tcp_v4_syn_recv_sock(), which reports it. */
SEC("fentry/tcp_v6_syn_recv_sock")
int BPF_PROG(tcpsynbl_v6_syn_recv, const struct sock *sk, struct sk_buff *skb)
{
	if (bpf_ntohs(BPF_CORE_READ(skb, protocol)) == ETH_P_IPV6)
		arrived(sk, skb, TCPSYNBL_ACK);
	return 0;
}

/* kprobe plan: the same functions. */
SEC("kprobe/tcp_conn_request")
int BPF_KPROBE(tcpsynbl_conn_request_kprobe, struct request_sock_ops *rsk_ops,
	       const struct tcp_request_sock_ops *af_ops, struct sock *sk, struct sk_buff *skb)
{
	arrived(sk, skb, TCPSYNBL_SYN);
	return 0;
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(tcpsynbl_v4_syn_recv_kprobe, const struct sock *sk, struct sk_buff *skb)
{
	arrived(sk, skb, TCPSYNBL_ACK);
	return 0;
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(tcpsynbl_v6_syn_recv_kprobe, const struct sock *sk, struct sk_buff *skb)
{
	if (bpf_ntohs(BPF_CORE_READ(skb, protocol)) == ETH_P_IPV6)
		arrived(sk, skb, TCPSYNBL_ACK);
	return 0;
}

/* tp_btf plan. The listener a packet went to: the one bound to its destination address, else a
 * wildcard one (for an IPv4 packet, 0.0.0.0 or a dual-stack [::]). */
static __always_inline struct sock *find_listener(__u64 netns, const struct tcp_packet *p)
{
	struct listener_addr k = { .netns = netns, .family = p->family, .port = p->dport };
	__u64 *sk;

	__builtin_memcpy(k.addr, p->daddr, sizeof(k.addr));
	sk = bpf_map_lookup_elem(&listeners, &k);
	if (sk)
		return (struct sock *)*sk;
	__builtin_memset(k.addr, 0, sizeof(k.addr));
	sk = bpf_map_lookup_elem(&listeners, &k);
	if (sk)
		return (struct sock *)*sk;
	if (p->family != AF_INET)
		return NULL;
	k.family = AF_INET6;
	sk = bpf_map_lookup_elem(&listeners, &k);
	return sk ? (struct sock *)*sk : NULL;
}

/* Every SYN a listener handles is consumed, taken or refused alike: refused when the queue was
 * full. A received packet has no owner yet (skb->sk), which skips most consumed skbs early. */
SEC("tp_btf/consume_skb")
int BPF_PROG(tcpsynbl_consume, struct sk_buff *skb)
{
	struct tcp_packet p;
	struct sock *listener;
	__u64 netns;

	if (BPF_CORE_READ(skb, sk) || !rx_packet(skb, &p) || (p.flags & (TH_SYN | TH_ACK)) != TH_SYN)
		return 0;
	netns = skb_dev_netns(skb);
	if (!netns_ok(netns))
		return 0;
	listener = find_listener(netns, &p);
	if (listener && queue_full(listener))
		report(&p, listener, TCPSYNBL_SYN);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(tcpsynbl_overflow, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct sock *listener = NULL;
	struct tcp_packet p;
	__u64 netns;

	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW) ||
	    reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW))
		return 0;
	if (!rx_packet(skb, &p))
		return 0;
	/* Since 6.11 the receive path passes the socket it found (the listener here). */
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		listener = (struct sock *)ctx[3];
	netns = listener ? sk_netns_id(listener) : skb_dev_netns(skb);
	if (!netns_ok(netns))
		return 0;
	if (!listener)
		listener = find_listener(netns, &p);
	report(&p, listener, (p.flags & (TH_SYN | TH_ACK)) == TH_SYN ? TCPSYNBL_SYN : TCPSYNBL_ACK);
	return 0;
}
