// SPDX-License-Identifier: GPL-2.0
/* qdisc: time packets spend queued in the qdiscs of one kind (tbf, fq, fq_codel, ...), from
 * enqueue to dequeue, as a log2 histogram in microseconds.
 *
 * Two ways, chosen by user space:
 * - kprobe (kernels with kprobes): the kind's own enqueue function and a kretprobe on its
 *   dequeue function, as the book did. Sees the kind wherever it sits, also as a child qdisc
 *   (e.g. fq_codel under htb classes), and every packet of a bulk dequeue.
 * - tracepoints: qdisc:qdisc_enqueue fires after a successful enqueue on a device's root qdisc,
 *   qdisc:qdisc_dequeue when that qdisc hands packets to the driver; the kind is chosen by the
 *   qdisc's ops->id. Root qdiscs only, and a bulk dequeue names only its first packet.
 * Either way, packets that bypass the queue (TCQ_F_CAN_BYPASS on an empty qdisc) are never
 * enqueued, so never timed. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/pkt.bpf.h"
#include "common/export.bpf.h"
#include "qdisc.h"

char LICENSE[] SEC("license") = "GPL";

#define QDISC_KIND_LEN 16

/* The kind to time, e.g. "tbf" (ops->id), and an optional device name; set before load. */
const volatile char qdisc_kind[QDISC_KIND_LEN] = {};
const volatile char filter_ifname[IFNAMSIZ] = {};

/* skb -> enqueue time. LRU: packets dequeued behind a bulk head are never seen again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} queued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct qdisc_hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

/* Read at exit: packets dequeued behind the head of a bulk dequeue (not timed). */
__u64 bulk_untimed = 0;

/* One packet's time in the queue, in microseconds; in exporter mode (common/export.bpf.h)
 * histogram 0 of export_hists. */
static __always_inline void queued_for(const struct qdisc_hist_key *hkey, __u64 us)
{
	if (export_mode)
		export_hist_add(0, 0, 0, us);
	else
		hist_map_add(&hists, hkey, us);
}

static __always_inline bool same_name(const char *a, const volatile char *b, int len)
{
	for (int i = 0; i < len; i++) {
		if (a[i] != b[i])
			return false;
		if (!a[i])
			return true;
	}
	return true;
}

static __always_inline bool qdisc_wanted(const struct Qdisc *q)
{
	const struct Qdisc_ops *ops = BPF_CORE_READ(q, ops);
	struct net_device *dev = BPF_CORE_READ(q, dev_queue, dev);
	char id[QDISC_KIND_LEN] = {};
	char name[IFNAMSIZ] = {};

	bpf_core_read_str(id, sizeof(id), &ops->id);
	if (!same_name(id, qdisc_kind, QDISC_KIND_LEN))
		return false;
	if (!netns_ok(dev_netns_cookie(dev)))
		return false;
	if (filter_ifname[0]) {
		dev_name(dev, name);
		if (!same_name(name, filter_ifname, IFNAMSIZ))
			return false;
	}
	return true;
}

/* The kind's enqueue function: int KIND_enqueue(struct sk_buff *skb, struct Qdisc *sch, ...).
 * Only the qdisc filters apply: the function belongs to the kind. A packet the qdisc drops
 * leaves an entry that the LRU ages out. */
SEC("kprobe")
int BPF_KPROBE(qdisc_kind_enqueue, struct sk_buff *skb, struct Qdisc *q)
{
	struct net_device *dev = BPF_CORE_READ(q, dev_queue, dev);
	char name[IFNAMSIZ] = {};
	__u64 key = (__u64)skb, now;

	if (!netns_ok(dev_netns_cookie(dev)))
		return 0;
	if (filter_ifname[0]) {
		dev_name(dev, name);
		if (!same_name(name, filter_ifname, IFNAMSIZ))
			return 0;
	}
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&queued, &key, &now, BPF_ANY);
	return 0;
}

/* The kind's dequeue function returns the packet (or NULL); only packets its enqueue recorded
 * (so already filtered) are timed. */
SEC("kretprobe")
int BPF_KRETPROBE(qdisc_kind_dequeue, struct sk_buff *skb)
{
	struct qdisc_hist_key hkey = {};
	__u64 key = (__u64)skb, *start;

	if (!skb)
		return 0;
	start = bpf_map_lookup_elem(&queued, &key);
	if (!start)
		return 0;
	queued_for(&hkey, (bpf_ktime_get_ns() - *start) / 1000);
	bpf_map_delete_elem(&queued, &key);
	return 0;
}

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(qdisc_enqueued, struct Qdisc *q, const struct netdev_queue *txq, struct sk_buff *skb)
{
	__u64 key = (__u64)skb, now;

	if (!qdisc_wanted(q))
		return 0;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&queued, &key, &now, BPF_ANY);
	return 0;
}

SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(qdisc_dequeued, struct Qdisc *q, const struct netdev_queue *txq, int packets,
	     struct sk_buff *skb)
{
	struct qdisc_hist_key hkey = {};
	__u64 key = (__u64)skb, *start;

	if (!skb || !qdisc_wanted(q))
		return 0;
	if (packets > 1)
		__sync_fetch_and_add(&bulk_untimed, packets - 1);
	start = bpf_map_lookup_elem(&queued, &key);
	if (!start)
		return 0;
	queued_for(&hkey, (bpf_ktime_get_ns() - *start) / 1000);
	bpf_map_delete_elem(&queued, &key);
	return 0;
}
