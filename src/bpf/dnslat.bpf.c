// SPDX-License-Identifier: GPL-2.0
/* dnslat: DNS queries over UDP and their responses, from the packets: a query is seen when a
 * local socket queues it to a device (net:net_dev_queue: skb->sk is the querying socket, and
 * the sender is the current task), its response when it arrives from a device
 * (net:netif_receive_skb), matched by network namespace, addresses, ports and DNS id in
 * `queries`, so the latency is taken in the kernel.
 *
 * Queries are taken on the way out only and responses on the way in only: on loopback each
 * packet passes both hooks, and a local resolver's own packets (a query coming in, a response
 * going out) are not queries of this host's clients. The key's namespace is the device's: the
 * query leaves and its response arrives on the querying side's device (both ends of lo, or the
 * same veth).
 *
 * UDP: DNS bytes are read from the skb's linear data; a message whose header or question lies in
 * page fragments (some drivers' receive path) is not seen, or its question is cut.
 * TCP (the dnslat_tcp_* programs, where the kernel lets tracing programs read packets through
 * bpf_dynptr_from_skb): a message whose 2-byte length and header start a segment's payload,
 * read wherever it lies (TCP puts payload in page fragments). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/pkt.bpf.h"
#include "common/export.bpf.h"
#include "dnslat.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(dnslat_event);

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym __weak;

#define DNS_HDR_LEN 12
#define UDP_HDR_LEN 8

/* The resolver's port (--port). */
const volatile __u16 dns_port = 53;
/* tcpconnect --dns: responses only, with the bytes after the question (their answers). */
const volatile bool answers_too = false;

struct dns_key {
	__u64 netns;
	__u8 caddr[16];
	__u8 raddr[16];
	__u16 family;
	__u16 cport;
	__u16 rport;
	__u16 id;
};

struct dns_query {
	__u64 ts_ns;
	__u64 cgroup;
	__u32 pid;
	__u32 pad;
	char comm[TASK_COMM_LEN];
};

/* Queries waiting for their response; LRU, so unanswered ones age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dns_key);
	__type(value, struct dns_query);
} queries SEC(".maps");

/* Exporter mode: resolvers numbered 1..DNSLAT_RESOLVERS as first seen (0: no number left), so a
 * u32 series label can name one; user space reads resolver_by_id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DNSLAT_RESOLVERS);
	__type(key, struct dnslat_resolver);
	__type(value, __u32);
} resolver_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DNSLAT_RESOLVERS);
	__type(key, __u32);
	__type(value, struct dnslat_resolver);
} resolver_by_id SEC(".maps");

static __always_inline __u32 resolver_label(const struct dns_key *k)
{
	struct dnslat_resolver r = { .family = k->family, .port = k->rport };
	__u32 *known, id;
	int i;

	__builtin_memcpy(r.addr, k->raddr, sizeof(r.addr));
	known = bpf_map_lookup_elem(&resolver_ids, &r);
	if (known)
		return *known << 8;
	/* A new resolver (rare): claim the first free number; an insert with BPF_NOEXIST is atomic,
	 * where an atomic add's result is not available to clang 14's default BPF CPU. */
	/* The counter stays in a register: the verifier loses track of one spilled for a key. */
#pragma clang loop unroll(disable)
	for (i = 1; i <= DNSLAT_RESOLVERS; i++) {
		id = i;
		if (bpf_map_update_elem(&resolver_by_id, &id, &r, BPF_NOEXIST))
			continue;
		if (!bpf_map_update_elem(&resolver_ids, &r, &id, BPF_NOEXIST))
			return id << 8;
		/* Another CPU numbered it first: give this number back, use that one. */
		bpf_map_delete_elem(&resolver_by_id, &id);
		known = bpf_map_lookup_elem(&resolver_ids, &r);
		return known ? *known << 8 : 0;
	}
	return 0;
}

/* A DNS message in a UDP datagram, parsed from the packet. */
struct dns_msg {
	struct l3_hdr ip;
	const __u8 *dns; /* UDP: the DNS header */
	__u32 dns_off; /* TCP: the DNS header's offset from skb->data, for the skb's dynptr */
	__u32 dns_len; /* bytes of DNS message readable (UDP: from the linear data) */
	bool tcp;
	__u16 sport;
	__u16 dport;
	__u8 hdr[DNS_HDR_LEN];
};

/* Parses the IP, UDP and DNS headers of the packet whose IP header is at l3; false unless it is
 * a whole (unfragmented) UDP datagram carrying at least a DNS header in linear data. */
static __always_inline bool dns_parse(const struct sk_buff *skb, const __u8 *l3, struct dns_msg *m)
{
	const __u8 *data = BPF_CORE_READ(skb, data);
	__u32 headlen = BPF_CORE_READ(skb, len) - BPF_CORE_READ(skb, data_len);
	const __u8 *end = data + headlen;
	__u8 udp[UDP_HDR_LEN];
	__u32 udp_len;

	if (!parse_l3(l3, BPF_CORE_READ(skb, protocol), &m->ip) || m->ip.proto != IPPROTO_UDP ||
	    m->ip.frag_off || !family_ok(m->ip.family))
		return false;
	if (bpf_probe_read_kernel(udp, sizeof(udp), l3 + m->ip.hdr_len))
		return false;
	m->sport = (udp[0] << 8) | udp[1];
	m->dport = (udp[2] << 8) | udp[3];
	udp_len = (udp[4] << 8) | udp[5];
	if (m->sport != dns_port && m->dport != dns_port)
		return false;
	m->tcp = false;
	m->dns = l3 + m->ip.hdr_len + UDP_HDR_LEN;
	if (m->dns < data || m->dns >= end || udp_len < UDP_HDR_LEN + DNS_HDR_LEN)
		return false;
	m->dns_len = udp_len - UDP_HDR_LEN;
	if (m->dns_len > end - m->dns)
		m->dns_len = end - m->dns;
	if (m->dns_len < DNS_HDR_LEN)
		return false;
	return !bpf_probe_read_kernel(m->hdr, sizeof(m->hdr), m->dns);
}

/* The same for a TCP segment whose payload starts with a DNS message's 2-byte length and header,
 * read through the skb's dynptr `dp` (made here). */
static __always_inline bool dns_tcp_parse(struct sk_buff *skb, const __u8 *l3,
					  struct bpf_dynptr *dp, struct dns_msg *m)
{
	const __u8 *data = BPF_CORE_READ(skb, data);
	__u8 tcp[20], len[2], b[2 + DNS_HDR_LEN];
	__u32 ip_len, doff, off, msg_len;

	if (!parse_l3(l3, BPF_CORE_READ(skb, protocol), &m->ip) || m->ip.proto != IPPROTO_TCP ||
	    m->ip.frag_off || !family_ok(m->ip.family))
		return false;
	if (bpf_probe_read_kernel(tcp, sizeof(tcp), l3 + m->ip.hdr_len))
		return false;
	m->sport = (tcp[0] << 8) | tcp[1];
	m->dport = (tcp[2] << 8) | tcp[3];
	if (m->sport != dns_port && m->dport != dns_port)
		return false;
	doff = (tcp[12] >> 4) * 4;
	/* IPv4 total length, or IPv6 payload length after the fixed header. */
	if (bpf_probe_read_kernel(len, sizeof(len), l3 + (m->ip.family == AF_INET ? 2 : 4)))
		return false;
	ip_len = (len[0] << 8) | len[1];
	if (m->ip.family != AF_INET)
		ip_len += 40;
	if (ip_len < m->ip.hdr_len + doff + sizeof(b))
		return false; /* no payload (SYN, ACK, FIN), or less than a header */
	off = (__u32)(l3 - data) + m->ip.hdr_len + doff;
	if (bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, dp) ||
	    bpf_dynptr_read(b, sizeof(b), dp, off, 0))
		return false;
	msg_len = (b[0] << 8) | b[1];
	if (msg_len < DNS_HDR_LEN)
		return false;
	m->tcp = true;
	m->dns = NULL;
	m->dns_off = off + 2;
	m->dns_len = ip_len - m->ip.hdr_len - doff - 2;
	if (m->dns_len > msg_len)
		m->dns_len = msg_len;
	__builtin_memcpy(m->hdr, &b[2], sizeof(m->hdr));
	return true;
}

static __always_inline bool dns_is_response(const struct dns_msg *m)
{
	return m->hdr[2] & 0x80;
}

static __always_inline void key_fill(struct dns_key *k, __u64 netns, const struct dns_msg *m,
				     bool query)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns = netns;
	k->family = m->ip.family;
	k->id = (m->hdr[0] << 8) | m->hdr[1];
	if (query) {
		__builtin_memcpy(k->caddr, m->ip.saddr, 16);
		__builtin_memcpy(k->raddr, m->ip.daddr, 16);
		k->cport = m->sport;
		k->rport = m->dport;
	} else {
		__builtin_memcpy(k->caddr, m->ip.daddr, 16);
		__builtin_memcpy(k->raddr, m->ip.saddr, 16);
		k->cport = m->dport;
		k->rport = m->sport;
	}
}

/* Reads len bytes of m's body from off (after the header) into dst: through the skb's dynptr dp
 * (TCP), else from the linear data (UDP). */
static __always_inline long body_read(void *dst, __u32 len, const struct dns_msg *m,
				      struct bpf_dynptr *dp, __u32 off)
{
	if (dp)
		return bpf_dynptr_read(dst, len, dp, m->dns_off + DNS_HDR_LEN + off, 0);
	return bpf_probe_read_kernel(dst, len, m->dns + DNS_HDR_LEN + off);
}

/* Sends one event for message m of the query q (key k). */
static __always_inline void report(const struct dns_key *k, const struct dns_query *q,
				   const struct dns_msg *m, struct bpf_dynptr *dp, __u8 kind, __u64 now)
{
	struct dnslat_event *e;
	__u32 n;

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	__builtin_memcpy(e->caddr, k->caddr, 16);
	__builtin_memcpy(e->raddr, k->raddr, 16);
	e->ts_ns = now;
	e->lat_ns = now - q->ts_ns;
	e->netns = k->netns;
	e->cgroup = q->cgroup;
	e->pid = q->pid;
	e->family = k->family;
	e->cport = k->cport;
	e->rport = k->rport;
	e->id = k->id;
	e->flags = (m->hdr[2] << 8) | m->hdr[3];
	e->qdcount = (m->hdr[4] << 8) | m->hdr[5];
	e->ancount = (m->hdr[6] << 8) | m->hdr[7];
	e->kind = kind;
	e->tcp = m->tcp;
	e->pad[0] = e->pad[1] = 0;
	__builtin_memcpy(e->comm, q->comm, sizeof(e->comm));
	/* A fixed-size copy (no variable length for the verifier to bound): past the message it
	 * reads the skb's tailroom or its skb_shared_info, in the same allocation; qlen says what
	 * belongs to the message. */
	n = m->dns_len - DNS_HDR_LEN;
	e->qlen = n > DNS_QUESTION_MAX ? DNS_QUESTION_MAX : n;
	e->rlen = 0;
	if (dp) {
		/* TCP: only the message's bytes (a read past the skb fails). */
		__u32 qn = e->qlen;

		barrier_var(qn);
		qn &= 0xff;
		if (qn > DNS_QUESTION_MAX || body_read(e->question, qn, m, dp, 0))
			e->qlen = 0;
	} else if (bpf_probe_read_kernel(e->question, sizeof(e->question), m->dns + DNS_HDR_LEN)) {
		e->qlen = 0;
	}
	if (answers_too && n > DNS_QUESTION_MAX) {
		/* 64 bits: a __u32 is compared through a zero-extended copy, whose bound the verifier
		 * does not carry back to the register passed. */
		__u64 r = n - DNS_QUESTION_MAX;

		/* Only the message's own bytes: the rest of a larger copy could cross its buffer. */
		if (r > DNS_REST_MAX)
			r = DNS_REST_MAX;
		/* Bounded again on the register passed as the length (a mask, then a check clang
		 * can neither drop nor fold: "r > 0 && r <= MAX" became a check of r - 1, a copy
		 * whose bound a 5.10 verifier does not carry back to r). r > 0: n > DNS_QUESTION_MAX. */
		barrier_var(r);
		r &= 0x1ff;
		barrier_var(r);
		if (r <= DNS_REST_MAX && !body_read(e->rest, r, m, dp, DNS_QUESTION_MAX))
			e->rlen = r;
	}
	submit_event(e);
}

/* A message parsed from a packet being sent (dp: read through it, TCP). */
static __always_inline int on_tx(struct sk_buff *skb, const struct dns_msg *m,
				 struct bpf_dynptr *dp)
{
	struct dns_query q = {};
	struct dns_key k;
	__u64 netns;

	if (m->dport != dns_port || dns_is_response(m))
		return 0;
	netns = dev_netns_id(BPF_CORE_READ(skb, dev));
	if (!netns_ok(netns) || !skb_cgroup_ok(skb))
		return 0;
	key_fill(&k, netns, m, true);
	q.ts_ns = bpf_ktime_get_ns();
	q.pid = current_tgid();
	q.cgroup = pkt_cgroup_id(skb);
	bpf_get_current_comm(q.comm, sizeof(q.comm));
	/* A query sent again with the same id and ports is timed from its last copy. */
	bpf_map_update_elem(&queries, &k, &q, BPF_ANY);
	if (export_mode) {
		export_count_cg(DNSLAT_M_QUERIES, resolver_label(&k), k.rport,
				export_cgroups ? q.cgroup : 0, 1);
		return 0;
	}
	if (!answers_too)
		report(&k, &q, m, dp, DNSLAT_QUERY, q.ts_ns);
	return 0;
}

/* A message parsed from a packet received (dp: read through it, TCP). */
static __always_inline int on_rx(struct sk_buff *skb, const struct dns_msg *m,
				 struct bpf_dynptr *dp)
{
	struct dns_query *q;
	struct dns_key k;

	if (m->sport != dns_port || !dns_is_response(m))
		return 0;
	key_fill(&k, dev_netns_id(BPF_CORE_READ(skb, dev)), m, false);
	q = bpf_map_lookup_elem(&queries, &k);
	if (!q)
		return 0;
	if (export_mode)
		export_hist_add_cg(DNSLAT_M_LATENCY, resolver_label(&k) | (m->hdr[3] & 0x0f), k.rport,
				   export_cgroups ? q->cgroup : 0,
				   (bpf_ktime_get_ns() - q->ts_ns) / 1000);
	else
		report(&k, q, m, dp, DNSLAT_RESPONSE, bpf_ktime_get_ns());
	bpf_map_delete_elem(&queries, &k);
	return 0;
}

/* Queries of a local socket only: forwarded ones are another host's. */
static __always_inline bool local_sender(const struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, sk) && tgid_ok(current_tgid());
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(dnslat_tx, struct sk_buff *skb)
{
	struct dns_msg m;

	if (!local_sender(skb) || !dns_parse(skb, skb_tx_l3_ptr(skb), &m))
		return 0;
	return on_tx(skb, &m, NULL);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(dnslat_rx, struct sk_buff *skb)
{
	struct dns_msg m;

	if (!dns_parse(skb, skb_rx_l3_ptr(skb), &m))
		return 0;
	return on_rx(skb, &m, NULL);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(dnslat_tcp_tx, struct sk_buff *skb)
{
	struct bpf_dynptr dp;
	struct dns_msg m;

	if (!local_sender(skb) || !dns_tcp_parse(skb, skb_tx_l3_ptr(skb), &dp, &m))
		return 0;
	return on_tx(skb, &m, &dp);
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(dnslat_tcp_rx, struct sk_buff *skb)
{
	struct bpf_dynptr dp;
	struct dns_msg m;

	if (!dns_tcp_parse(skb, skb_rx_l3_ptr(skb), &dp, &m))
		return 0;
	return on_rx(skb, &m, &dp);
}
