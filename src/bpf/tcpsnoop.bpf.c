// SPDX-License-Identifier: GPL-2.0
/* tcpsnoop: every TCP packet sent or received, with the process owning its socket.
 *
 * Packets are seen where they meet a device: net_dev_queue on the way out (the skb still points
 * at its socket) and netif_receive_skb on the way in (no socket yet: the kernel has not looked
 * it up). Each packet is reported from the side of the socket it belongs to: outgoing packets
 * with the source as local end, incoming ones with the destination as local end. On loopback a
 * packet crosses lo twice, once out and once in, so it appears once from each endpoint.
 *
 * Owners are learned from state changes (common/tcp_owner.bpf.h: connect, listen, close run in
 * the owner's context; an accepted socket inherits its listener's owner) and refined where
 * accept() returns (fexit/kretprobe on inet_csk_accept, else the accept syscalls). As incoming packets carry no socket, owners are also
 * kept by (netns, local, remote) in `flows`. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "common/tcp_packet.bpf.h"
#include "tcpsnoop.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpsnoop_event);

struct owner {
	__u32 pid;
	__u32 uid;
	char comm[TASK_COMM_LEN];
	__u64 cgroup; /* the socket's */
	__u64 sk; /* the socket uid and cgroup were read from; 0: none (seeded by user space) */
};

/* A connection as its local end sees it. IPv4 addresses in the first 4 bytes. */
struct flow_key {
	__u64 netns;
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct owner);
} flows SEC(".maps");

/* Resets about to be sent for a packet that found no socket (a closed port), by the reply's
 * flow; consumed when the reset passes net_dev_queue. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct flow_key);
	__type(value, __u8);
} closed_resets SEC(".maps");

static __always_inline __u32 sk_uid(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_uid.val);
}

static __always_inline bool sk_is_full(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	return state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

static __always_inline void owner_fill(struct owner *o, const struct sk_owner *from, const struct sock *sk)
{
	o->pid = from->pid;
	o->uid = sk_uid(sk);
	o->cgroup = sk_cgroup_id(sk);
	o->sk = (__u64)sk;
	__builtin_memcpy(o->comm, from->comm, sizeof(o->comm));
}

/* Whether flow value o holds what owner_fill(o, from, sk) would write: the same socket (a
 * socket's uid and cgroup are set when it is made) and the same owner. */
static __always_inline bool owner_is(const struct owner *o, const struct sk_owner *from,
				     const struct sock *sk)
{
	__u64 a[2], b[2];

	if (o->sk != (__u64)sk || o->pid != from->pid)
		return false;
	__builtin_memcpy(a, o->comm, sizeof(a));
	__builtin_memcpy(b, from->comm, sizeof(b));
	return a[0] == b[0] && a[1] == b[1];
}

/* The flow of a socket's tuple. An AF_INET6 socket talking to a v4-mapped address sends IPv4
 * packets: key it as IPv4 so the packets find it. */
static __always_inline void flow_from_sock(struct flow_key *k, __u64 netns, const struct sock_tuple *t)
{
	struct sock_tuple u = *t;

	tuple_unmap_v4(&u);
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = netns;
	k->lport = u.lport;
	k->rport = u.rport;
	k->family = u.family;
	__builtin_memcpy(k->laddr, u.saddr, 16);
	__builtin_memcpy(k->raddr, u.daddr, 16);
}

/* The flow of a packet, from the local end: outgoing packets come from it, incoming go to it. */
static __always_inline void flow_from_packet(struct flow_key *k, __u64 netns, const struct tcp_packet *p, bool out)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = netns;
	k->family = p->family;
	if (out) {
		k->lport = p->sport;
		k->rport = p->dport;
		__builtin_memcpy(k->laddr, p->saddr, 16);
		__builtin_memcpy(k->raddr, p->daddr, 16);
	} else {
		k->lport = p->dport;
		k->rport = p->sport;
		__builtin_memcpy(k->laddr, p->daddr, 16);
		__builtin_memcpy(k->raddr, p->saddr, 16);
	}
}

/* The owner of the listener on the flow's local port (common/tcp_owner.bpf.h keeps them), for
 * the handshake packets of a passive open, which have no full socket yet; NULL when unknown. */
static __always_inline struct owner *listener_of(const struct flow_key *k, struct owner *o)
{
	struct listener_owner *l = listener_lookup(k->netns, k->lport);

	if (!l)
		return NULL;
	owner_fill(o, &l->owner, (const struct sock *)l->sk);
	return o;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpsnoop_set_state, struct sock *sk, int oldstate, int newstate)
{
	struct sock_tuple t = {};
	struct owner val = {};
	struct flow_key key;
	struct sk_owner *o;
	__u64 netns;

	if (!tcp_sk_selected(sk, &netns))
		return 0;
	o = owner_track(sk, oldstate, newstate);
	if (newstate == TCP_CLOSE) {
		/* The flow stays (LRU): packets of TIME_WAIT and late resets still belong to it. */
		owner_forget(sk);
		return 0;
	}
	if (!o)
		return 0;
	sk_read_tuple(sk, &t);
	if (!t.lport || !t.rport)
		return 0; /* SYN_SENT: no local port yet; the SYN itself teaches the flow */
	flow_from_sock(&key, netns, &t);
	owner_fill(&val, o, sk);
	bpf_map_update_elem(&flows, &key, &val, BPF_ANY);
	return 0;
}

static __always_inline int report(const struct tcp_packet *p, const struct flow_key *k, bool out,
				  const struct owner *o, __u8 kind)
{
	struct tcpsnoop_event *e;

	if (filter_tgid && (kind != OWNER_KNOWN || !o || o->pid != filter_tgid))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memcpy(e->tuple.saddr, k->laddr, 16);
	__builtin_memcpy(e->tuple.daddr, k->raddr, 16);
	e->tuple.family = k->family;
	e->tuple.lport = k->lport;
	e->tuple.rport = k->rport;
	e->tuple.pad = 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->size = p->ip_len;
	e->payload = p->payload;
	e->dir = out ? 0 : 1;
	e->flags = p->flags;
	e->owner = kind;
	e->pad = 0;
	if (o) {
		e->pid = o->pid;
		e->uid = o->uid;
		__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->uid = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	e->cgroup = o ? o->cgroup : 0;
	submit_event(e);
	return 0;
}

/* Reads the packet of the skb with fields f whose IP header starts at nh. */
static __always_inline bool skb_tcp_packet(const struct skb_fields *f, const unsigned char *nh,
					   struct tcp_packet *p)
{
	if (f->protocol != ETH_P_IP && f->protocol != ETH_P_IPV6)
		return false;
	if (nh < f->data || nh - f->data > f->len)
		return false;
	if (!parse_tcp_packet(nh, f->len - (nh - f->data), p))
		return false;
	return family_ok(p->family);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(tcpsnoop_tx, struct sk_buff *skb)
{
	struct sk_owner *so = NULL;
	struct owner val = {}, lval, *o;
	struct skb_fields f;
	struct tcp_packet p;
	struct flow_key k;
	struct sock *sk;
	__u64 netns;

	if (!skb_read_fields(skb, &f))
		return 0;
	netns = dev_or_dst_netns(f.dev, f.refdst);
	if (!netns_ok(netns))
		return 0;
	if (!sk_cgroup_ok(f.sk))
		return 0;
	if (!skb_tcp_packet(&f, f.head + f.network_header, &p))
		return 0;
	flow_from_packet(&k, netns, &p, true);

	/* The sending socket, when the skb still has a full TCP one (not a request or timewait
	 * mini-socket, not the per-netns control socket that sends resets). */
	sk = f.sk;
	if (sk && sk_is_full(sk) && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
		__u64 skey = (__u64)sk;

		so = bpf_map_lookup_elem(&sk_owners, &skey);
	}
	if (so) {
		o = bpf_map_lookup_elem(&flows, &k);
		/* Most packets: the flow already holds this socket's owner, uid and cgroup, and
		 * reading them again from the socket would cost five probe reads per packet. */
		if (o && owner_is(o, so, sk))
			return report(&p, &k, true, o, OWNER_KNOWN);
		/* The first packet of an active open (its SYN) is where its flow becomes known; a
		 * flow seeded by user space or left by an earlier socket of the same tuple gets
		 * this socket's. */
		owner_fill(&val, so, sk);
		bpf_map_update_elem(&flows, &k, &val, BPF_ANY);
		return report(&p, &k, true, &val, OWNER_KNOWN);
	}
	o = bpf_map_lookup_elem(&flows, &k);
	if (o)
		return report(&p, &k, true, o, OWNER_KNOWN);
	if ((p.flags & TH_RST) && bpf_map_lookup_elem(&closed_resets, &k)) {
		bpf_map_delete_elem(&closed_resets, &k);
		return report(&p, &k, true, NULL, OWNER_CLOSED);
	}
	o = listener_of(&k, &lval); /* SYN-ACK of a passive open (sent from its request socket) */
	return report(&p, &k, true, o, o ? OWNER_KNOWN : OWNER_UNKNOWN);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tcpsnoop_rx, struct sk_buff *skb)
{
	struct owner *o = NULL, lval;
	struct skb_fields f;
	struct tcp_packet p;
	struct flow_key k;
	__u64 netns;

	if (!skb_read_fields(skb, &f))
		return 0;
	netns = dev_or_dst_netns(f.dev, f.refdst);
	if (!netns_ok(netns))
		return 0;
	if (!sk_cgroup_ok(f.sk))
		return 0;
	/* The link header is pulled already: data is the IP header. */
	if (!skb_tcp_packet(&f, f.data, &p))
		return 0;
	flow_from_packet(&k, netns, &p, false);
	/* A SYN without ACK goes to a listener, even if an old flow had the same tuple. */
	if ((p.flags & (TH_SYN | TH_ACK)) == TH_SYN)
		o = listener_of(&k, &lval);
	if (!o)
		o = bpf_map_lookup_elem(&flows, &k);
	if (!o)
		o = listener_of(&k, &lval); /* the ACK ending a passive open: its socket is made for it */
	return report(&p, &k, false, o, o ? OWNER_KNOWN : OWNER_UNKNOWN);
}

/* A reset for a packet that found no socket (sk == NULL: a closed port). skb is the packet that
 * provoked it, with its headers parsed; the reset itself is built and queued right after.
 * The tcp_send_reset tracepoint fires for sk == NULL since Linux 6.10 or so; the fentry and
 * kprobe plans hook tcp_v4/v6_send_reset(sk, skb, ...), which send every such reset. */
static __always_inline int closed_reset(const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_packet p;
	struct flow_key k;
	__u8 one = 1;
	__u64 netns;

	if (sk || !skb)
		return 0;
	netns = skb_dev_netns(skb);
	if (!netns_ok(netns))
		return 0;
	if (!skb_cgroup_ok(skb))
		return 0;
	if (!parse_tcp_packet(BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header), 0, &p))
		return 0;
	/* The reply goes back: its local end is the packet's destination. */
	flow_from_packet(&k, netns, &p, false);
	bpf_map_update_elem(&closed_resets, &k, &one, BPF_ANY);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcpsnoop_reset, const struct sock *sk, const struct sk_buff *skb)
{
	return closed_reset(sk, skb);
}

SEC("fentry/tcp_v4_send_reset")
int BPF_PROG(tcpsnoop_reset4_fentry, const struct sock *sk, struct sk_buff *skb)
{
	return closed_reset(sk, skb);
}

SEC("fentry/tcp_v6_send_reset")
int BPF_PROG(tcpsnoop_reset6_fentry, const struct sock *sk, struct sk_buff *skb)
{
	return closed_reset(sk, skb);
}

SEC("kprobe/tcp_v4_send_reset")
int BPF_KPROBE(tcpsnoop_reset4_kprobe, const struct sock *sk, struct sk_buff *skb)
{
	return closed_reset(sk, skb);
}

SEC("kprobe/tcp_v6_send_reset")
int BPF_KPROBE(tcpsnoop_reset6_kprobe, const struct sock *sk, struct sk_buff *skb)
{
	return closed_reset(sk, skb);
}

/* accept() returned a socket: its owner is the caller (the listener's owner was a guess). */
static __always_inline int accepted(struct sock *sk)
{
	struct sock_tuple t = {};
	struct sk_owner *so;
	struct owner val = {};
	struct flow_key k;
	__u64 skey, netns;

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	netns = sk_netns_id(sk);
	if (!netns_ok(netns))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	sk_read_tuple(sk, &t);
	if (!sk_is_inet(t.family) || !t.lport || !t.rport)
		return 0;
	owner_accepted(sk);
	skey = (__u64)sk;
	so = bpf_map_lookup_elem(&sk_owners, &skey);
	if (!so)
		return 0;
	flow_from_sock(&k, netns, &t);
	owner_fill(&val, so, sk);
	bpf_map_update_elem(&flows, &k, &val, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tcpsnoop_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return ctx->ret < 0 ? 0 : accepted(sock_from_fd(ctx->ret));
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcpsnoop_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return ctx->ret < 0 ? 0 : accepted(sock_from_fd(ctx->ret));
}

/* inet_csk_accept(listener, ...) returns the new sock (NULL on error): every accept, io_uring's
 * included. Its other arguments changed in 6.10: only the return is read. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(tcpsnoop_accept_fexit, struct sock *listener)
{
	__u64 sk = 0;

	bpf_get_func_ret(ctx, &sk);
	return accepted((struct sock *)sk);
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(tcpsnoop_accept_kretprobe, struct sock *sk)
{
	return accepted(sk);
}
