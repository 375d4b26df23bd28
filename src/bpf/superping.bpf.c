// SPDX-License-Identifier: GPL-2.0
/* superping: ICMP and ICMPv6 echo round trips timed inside the kernel: from the request being
 * queued to the device (net:net_dev_queue) to the reply arriving from the device
 * (net:netif_receive_skb), matched by network namespace, identifier and sequence number.
 *
 * Both ends are keyed by the netns of the device: on loopback the request and the reply cross
 * the same device, and across a veth pair the request leaves and the reply arrives on the
 * pinging side's device, so the pinging namespace is the key in both cases. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/pkt.bpf.h"
#include "superping.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(superping_event);

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct ping_key {
	__u64 netns;
	__u16 family;
	__u16 id;
	__u16 seq;
	__u16 pad;
};

struct ping_sent {
	__u64 ts_ns;
	__u32 pid;
	char comm[TASK_COMM_LEN];
	__u64 cgroup;
};

/* Requests waiting for their reply; LRU, so unanswered pings age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ping_key);
	__type(value, struct ping_sent);
} pings SEC(".maps");

/* Read by user space at exit: echo replies received for no request seen (sent before tracing
 * began, forwarded by this host, or aged out of pings): not timed, so counted and said. */
__u64 unmatched_replies = 0;

/* Fills key id/seq when l3 holds an echo message of type want (echo request or reply, per
 * family). */
static __always_inline bool echo_of(const void *l3, const struct l3_hdr *h, bool request,
				    struct ping_key *key)
{
	__u8 icmp[8];
	__u8 want;

	if (h->family == AF_INET) {
		if (h->proto != IPPROTO_ICMP || h->frag_off)
			return false;
		want = request ? ICMP_ECHO : ICMP_ECHOREPLY;
	} else if (h->family == AF_INET6) {
		if (h->proto != IPPROTO_ICMPV6_NR || h->frag_off)
			return false;
		want = request ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
	} else {
		return false;
	}
	if (bpf_probe_read_kernel(icmp, sizeof(icmp), l3 + h->hdr_len) || icmp[0] != want ||
	    icmp[1] != 0)
		return false;
	key->family = h->family;
	key->id = (icmp[4] << 8) | icmp[5];
	key->seq = (icmp[6] << 8) | icmp[7];
	key->pad = 0;
	return true;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(superping_send, struct sk_buff *skb)
{
	const void *l3 = skb_tx_l3_ptr(skb);
	struct ping_key key = {};
	struct ping_sent sent = {};
	struct l3_hdr h;

	/* Requests from a local socket only: forwarded pings are someone else's. */
	if (!BPF_CORE_READ(skb, sk))
		return 0;
	if (!parse_l3(l3, BPF_CORE_READ(skb, protocol), &h) || !family_ok(h.family))
		return 0;
	key.netns = dev_netns_id(BPF_CORE_READ(skb, dev));
	if (!netns_ok(key.netns) || !echo_of(l3, &h, true, &key))
		return 0;
	if (!skb_cgroup_ok(skb))
		return 0; /* the pinging socket's (replies match the requests recorded here) */
	sent.ts_ns = bpf_ktime_get_ns();
	sent.pid = current_tgid();
	sent.cgroup = pkt_cgroup_id(skb);
	bpf_get_current_comm(sent.comm, sizeof(sent.comm));
	bpf_map_update_elem(&pings, &key, &sent, BPF_ANY);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(superping_receive, struct sk_buff *skb)
{
	const void *l3 = skb_rx_l3_ptr(skb);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct superping_event *e;
	struct ping_key key = {};
	struct ping_sent *sent;
	struct l3_hdr h;
	__u64 now;

	if (!parse_l3(l3, BPF_CORE_READ(skb, protocol), &h) || !echo_of(l3, &h, false, &key))
		return 0;
	key.netns = dev_netns_id(dev);
	sent = bpf_map_lookup_elem(&pings, &key);
	if (!sent) {
		/* Under a cgroup filter, other cgroups' requests are not recorded: their replies
		 * are not ours to count. */
		if (family_ok(h.family) && netns_ok(key.netns) && !filter_cgroup)
			__sync_fetch_and_add(&unmatched_replies, 1);
		return 0;
	}
	now = bpf_ktime_get_ns();
	e = reserve_event(sizeof(*e));
	if (e) {
		__builtin_memcpy(e->raddr, h.saddr, sizeof(e->raddr));
		e->ts_ns = now;
		e->rtt_ns = now - sent->ts_ns;
		e->pid = sent->pid;
		e->family = key.family;
		e->id = key.id;
		e->seq = key.seq;
		e->pad = 0;
		__builtin_memcpy(e->comm, sent->comm, sizeof(e->comm));
		dev_name(dev, e->ifname);
		e->cgroup = sent->cgroup;
		submit_event(e);
	}
	bpf_map_delete_elem(&pings, &key);
	return 0;
}
