/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_DNSLAT_H
#define NETBPF_DNSLAT_H

/* Bytes of the question section copied: a QNAME of up to 132 bytes in wire form, or a shorter
 * one followed by its QTYPE and QCLASS. Longer names are shown cut. */
#define DNS_QUESTION_MAX 136

/* With answers_too (tcpconnect --dns): the message's bytes after question[], up to 512 in all. */
#define DNS_REST_MAX 376

#define DNSLAT_QUERY 0
#define DNSLAT_RESPONSE 1

/* One DNS message over UDP, seen at the device: a query sent by a local socket (at
 * net_dev_queue), or the response to one (at netif_receive_skb). Addresses in network byte
 * order, IPv4 in the first 4 bytes; ports host order. */
struct dnslat_event {
	__u8 caddr[16]; /* the querying socket's address */
	__u8 raddr[16]; /* the resolver's */
	__u64 ts_ns; /* bpf_ktime_get_ns() when the packet passed */
	__u64 lat_ns; /* response: from its query passing net_dev_queue */
	__u64 netns; /* of the device, on the querying side */
	__u64 cgroup; /* the querying socket's cgroup v2 id */
	__u32 pid; /* the task sending the query */
	__u16 family;
	__u16 cport;
	__u16 rport;
	__u16 id; /* DNS message id */
	__u16 flags; /* DNS header bytes 2-3: QR, opcode, AA, TC, RD, RA, RCODE */
	__u16 qdcount;
	__u16 ancount;
	__u16 qlen; /* bytes in question[] */
	__u8 kind; /* DNSLAT_QUERY or DNSLAT_RESPONSE */
	__u8 tcp; /* 1: over TCP (the message after its 2-byte length) */
	__u8 pad[2];
	char comm[16]; /* of the task sending the query */
	__u8 question[DNS_QUESTION_MAX]; /* the message's question section, raw */
	__u16 rlen; /* bytes in rest[] */
	__u8 rest[DNS_REST_MAX]; /* answers_too: what follows question[] (the answers), raw */
};

/* Exporter mode: a resolver's address (and port), numbered in `resolver_ids` so a series label
 * (a u32) can name it; user space reads the numbers back. */
struct dnslat_resolver {
	__u8 addr[16];
	__u16 family;
	__u16 port;
	__u32 pad;
};

/* Exporter series (common/export.h): metric DNSLAT_M_LATENCY, a histogram of response latency
 * in microseconds, label (resolver number << 8) | rcode; DNSLAT_M_QUERIES, a count of queries,
 * label resolver number << 8. Resolver number 0: the numbering map was full. */
#define DNSLAT_M_LATENCY 0
#define DNSLAT_M_QUERIES 1
#define DNSLAT_RESOLVERS 256

#endif
