// SPDX-License-Identifier: GPL-2.0
/* qdisc: time packets spend queued in the qdiscs of one kind (tbf, fq, fq_codel, ...), from
 * enqueue to dequeue, as a log2 histogram in microseconds.
 *
 * Three ways, chosen by user space, with the same bookkeeping behind them:
 * - fexit (kernels with BPF trampolines) on the kind's own enqueue and dequeue functions: they
 *   give the qdisc, the packet and the result. Sees the kind wherever it sits, also as a child
 *   qdisc (e.g. fq_codel under an htb class or a tbf).
 * - kprobe + kretprobe on the same functions (kernels with kprobes, without trampolines): the
 *   entry probes keep the arguments per CPU for the return probes (qdiscs of one device are run
 *   under its lock with bottom halves off, so nothing else runs on that CPU in between).
 * - tracepoints: qdisc:qdisc_enqueue fires after a successful enqueue on a device's root qdisc,
 *   qdisc:qdisc_dequeue when that qdisc hands packets to the driver (a bulk dequeue names its
 *   first packet; the others follow on skb->next). Root qdiscs only; the kind is ops->id.
 * Either way, packets that bypass the queue (TCQ_F_CAN_BYPASS on an empty qdisc) are never
 * enqueued, so never timed.
 *
 * tbf splits a GSO packet larger than its burst into segments (tbf_segment): the original skb is
 * freed at enqueue and the segments, new skbs, are what it dequeues. tbf's queue is a FIFO, so
 * for tbf the split packets are kept in order per qdisc, with how many skbs each became (the
 * qdisc's queue length grew by that much), and a dequeued skb that was not recorded is the next
 * segment of the oldest split packet. (The freed skb is never read: only its queue length
 * change tells it was split.) */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/netdev.bpf.h"
#include "common/export.bpf.h"
#include "qdisc.h"

char LICENSE[] SEC("license") = "GPL";

#define QDISC_KIND_LEN 16
#define NET_XMIT_SUCCESS 0
#define NET_XMIT_CN 2
#define NET_XMIT_MASK 0x0f
/* Packets of one bulk dequeue followed on skb->next (the kernel's slow path takes 8 at most;
 * BQL-driven bulks are bounded by bytes). */
#define BULK_MAX 64
/* Split packets remembered per qdisc. */
#define GSO_FIFO_LEN 256

/* The kind to time, e.g. "tbf" (ops->id); set before load. */
const volatile char qdisc_kind[QDISC_KIND_LEN] = {};
/* The kind splits GSO packets into segments queued in FIFO order (tbf). */
const volatile bool split_gso = false;

/* skb -> enqueue time. LRU: packets the qdisc drops after accepting them are never dequeued. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} queued SEC(".maps");

struct gso_packet {
	__u64 ts_ns;
	__u32 skbs;	/* how many skbs it became in the queue */
	__u32 taken;	/* of those, dequeued so far */
};

struct gso_fifo {
	__u32 head;	/* oldest entry (free-running; index with & (GSO_FIFO_LEN - 1)) */
	__u32 tail;	/* next free entry */
	__u32 qlen;	/* the qdisc's queue length after the last event seen */
	__u32 qlen_known;
	struct gso_packet e[GSO_FIFO_LEN];
};

/* qdisc -> its split packets, for split_gso kinds. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct gso_fifo);
} gso_fifos SEC(".maps");

/* A zeroed gso_fifo to create entries from (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gso_fifo);
} fifo_zero SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct qdisc_hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

/* With the tracepoints, what a root qdisc's own counters said at the last event seen on it, to
 * find the dequeues the kernel did not hand to the programs (see dequeued_tp()). */
#define RECENT_LEN 16
struct qdisc_books {
	__u64 packets;		/* bstats.packets: packets dequeued (GSO skbs count their segments) */
	__u32 requeues;		/* qstats.requeues */
	__u32 pending_requeues;	/* requeued skbs not yet handed out again */
	__u32 recent_next;
	__u32 pad;
	__u64 recent[RECENT_LEN];	/* the last skbs handed out: a requeued one is among them */
	__u64 seen_segs;	/* what the current event's skbs add to bstats.packets */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, struct qdisc_books);
} books SEC(".maps");

/* Read at exit. */
__u64 untimed = 0;	/* dequeued without a recorded enqueue (queued before the run, missed) */
__u64 missed = 0;	/* of those, dequeues the programs never saw (the qdisc's counters moved) */
__u64 gso_segments_timed = 0;	/* segments of split GSO packets, timed from their packet */
__u64 gso_fifo_full = 0;	/* split packets not remembered: more than GSO_FIFO_LEN queued */

static __always_inline void count_untimed(__u64 n)
{
	__sync_fetch_and_add(&untimed, n);
	if (export_mode)
		export_count(QDISC_EXPORT_UNTIMED, 0, 0, n);
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

static __always_inline bool kind_is_wanted(const struct Qdisc *q)
{
	const struct Qdisc_ops *ops = BPF_CORE_READ(q, ops);
	char id[QDISC_KIND_LEN] = {};

	bpf_core_read_str(id, sizeof(id), &ops->id);
	return same_name(id, qdisc_kind, QDISC_KIND_LEN);
}

/* The device filters (--netns, -i). */
static __always_inline bool qdisc_dev_ok(const struct Qdisc *q)
{
	return dev_ok(BPF_CORE_READ(q, dev_queue, dev));
}

static __always_inline void add_sample(const struct sk_buff *skb, __u64 start_ns, __u64 now)
{
	struct qdisc_hist_key hkey = {};

	/* --cgroup and the like: the packet's socket, at its dequeue (the timing bookkeeping
	 * above sees every packet). */
	if (!skb_cgroup_ok(skb))
		return;

	/* Exporter mode (common/export.bpf.h): histogram 0 of export_hists. */
	if (export_mode)
		export_hist_add(QDISC_EXPORT_LATENCY, 0, 0, (now - start_ns) / 1000);
	else
		hist_map_add(&hists, &hkey, (now - start_ns) / 1000);
}

static __always_inline struct gso_fifo *fifo_of(const struct Qdisc *q, bool create)
{
	__u64 key = (__u64)q;
	struct gso_fifo *f = bpf_map_lookup_elem(&gso_fifos, &key);
	__u32 zero = 0;

	if (f || !create)
		return f;
	f = bpf_map_lookup_elem(&fifo_zero, &zero);
	if (!f)
		return NULL;
	bpf_map_update_elem(&gso_fifos, &key, f, BPF_NOEXIST);
	return bpf_map_lookup_elem(&gso_fifos, &key);
}

/* The packets in the kind's own queue: q.qlen also counts those the driver refused and the
 * qdisc holds aside to resend (requeued: a veth whose peer's ring is full), which are not. */
static __always_inline __u32 kind_qlen(const struct Qdisc *q)
{
	return BPF_CORE_READ(q, q.qlen) - BPF_CORE_READ(q, gso_skb.qlen) -
	       BPF_CORE_READ(q, skb_bad_txq.qlen);
}

/* A packet the qdisc accepted, at time ts. */
static __always_inline void enqueued(const struct Qdisc *q, const struct sk_buff *skb, __u64 ts,
				     __u64 missed_before)
{
	__u64 key = (__u64)skb;
	struct gso_packet *p;
	struct gso_fifo *f;
	__u32 qlen, skbs;

	f = split_gso ? fifo_of(q, true) : NULL;
	if (!f) {
		bpf_map_update_elem(&queued, &key, &ts, BPF_ANY);
		return;
	}
	qlen = kind_qlen(q);
	/* Dequeues missed since the last event took skbs out unseen. */
	qlen += missed_before;
	skbs = f->qlen_known && qlen > f->qlen ? qlen - f->qlen : 1;
	qlen -= missed_before;
	f->qlen = qlen;
	f->qlen_known = 1;
	if (skbs == 1) {
		bpf_map_update_elem(&queued, &key, &ts, BPF_ANY);
		return;
	}
	if (f->tail - f->head >= GSO_FIFO_LEN) {
		__sync_fetch_and_add(&gso_fifo_full, 1);
		return;
	}
	p = &f->e[f->tail & (GSO_FIFO_LEN - 1)];
	p->ts_ns = ts;
	p->skbs = skbs;
	p->taken = 0;
	f->tail++;
}

/* Packets timed when a parent peeked at them (see peeked()), whose dequeue is still to come:
 * skb -> 1. LRU: kinds whose peek already took the packet out never dequeue it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} peeked_skbs SEC(".maps");

/* One packet leaving the qdisc: a recorded one, else a segment of the oldest split packet. */
static __always_inline __u32 requeues_of(const struct Qdisc *q)
{
	return BPF_CORE_READ(q, qstats.requeues);
}

static __always_inline void dequeued_one(const struct Qdisc *q, struct gso_fifo *f,
					 const struct sk_buff *skb, __u64 now)
{
	__u64 key = (__u64)skb, *start;
	struct gso_packet *p;

	start = bpf_map_lookup_elem(&queued, &key);
	if (start) {
		add_sample(skb, *start, now);
		bpf_map_delete_elem(&queued, &key);
		return;
	}
	if (bpf_map_lookup_elem(&peeked_skbs, &key)) {
		bpf_map_delete_elem(&peeked_skbs, &key);
		return;
	}
	if (!f || f->head == f->tail) {
		count_untimed(1);
		return;
	}
	p = &f->e[f->head & (GSO_FIFO_LEN - 1)];
	add_sample(skb, p->ts_ns, now);
	__sync_fetch_and_add(&gso_segments_timed, 1);
	if (++p->taken >= p->skbs)
		f->head++;
}

/* ---- Dequeues the tracepoint programs never saw. On 6.18 a few events in a thousand on the
 * qdisc tracepoints do not reach the programs (more while other programs attach to or detach
 * from the same tracepoints). The root qdisc counts what it dequeued (bstats.packets, a GSO skb
 * as its segments), so at each event seen the increase of that count beyond what the seen
 * dequeues account for is dequeues missed: counted as untimed. Not for qdiscs whose bstats
 * also count packets sent without queueing (TCQ_F_CAN_BYPASS) or stay 0 (per-CPU stats). */
#define TCQ_F_CAN_BYPASS 4
#define TCQ_F_CPUSTATS 0x20
/* Split packets skipped at once for missed dequeues (bounded loop). */
#define SKIP_MAX 8

static __always_inline bool counters_usable(const struct Qdisc *q)
{
	return !(BPF_CORE_READ(q, flags) & (TCQ_F_CAN_BYPASS | TCQ_F_CPUSTATS));
}

static __always_inline __u64 packets_of(const struct Qdisc *q)
{
	__u64 n = 0;

	bpf_core_read(&n, bpf_core_field_size(q->bstats.packets), &q->bstats.packets);
	return n;
}

/* What one skb adds to bstats.packets. */
static __always_inline __u64 segs_of(const struct sk_buff *skb)
{
	const unsigned char *head = BPF_CORE_READ(skb, head);
	__u64 end = BPF_CORE_READ(skb, end);
	const struct skb_shared_info *sh = (const void *)(head + end);
	__u16 gso_size = BPF_CORE_READ(sh, gso_size), gso_segs = BPF_CORE_READ(sh, gso_segs);

	return gso_size && gso_segs ? gso_segs : 1;
}

/* n dequeues were missed: untimed. For tbf they were the next skbs of its FIFO; where those
 * were segments of split packets, the packets' list moves on by as many. */
static __always_inline void missed_dequeues(const struct Qdisc *q, __u64 n)
{
	struct gso_packet *p;
	struct gso_fifo *f;
	__u32 left;

	__sync_fetch_and_add(&missed, n);
	count_untimed(n);
	f = split_gso ? fifo_of(q, false) : NULL;
	if (!f)
		return;
	for (int i = 0; i < SKIP_MAX && n && f->head != f->tail; i++) {
		p = &f->e[f->head & (GSO_FIFO_LEN - 1)];
		left = p->skbs - p->taken;
		if (n < left) {
			p->taken += n;
			return;
		}
		n -= left;
		f->head++;
	}
}

/* At an event on q: account the dequeues missed since the last one (seen_segs is what this
 * event's own dequeues added to bstats.packets) and take the qdisc's requeues into the books.
 * Returns the dequeues missed. */
static __always_inline __u64 settle_books(const struct Qdisc *q)
{
	__u64 key = (__u64)q, now = packets_of(q), lost = 0, seen;
	struct qdisc_books *b = bpf_map_lookup_elem(&books, &key), fresh = {};
	__u32 requeues = requeues_of(q);

	if (!b) {
		fresh.packets = now;
		fresh.requeues = requeues;
		bpf_map_update_elem(&books, &key, &fresh, BPF_NOEXIST);
		return 0;
	}
	seen = b->seen_segs;
	b->seen_segs = 0;
	if (now > b->packets + seen) {
		lost = now - b->packets - seen;
		missed_dequeues(q, lost);
	}
	b->packets = now;
	b->pending_requeues += requeues - b->requeues;
	b->requeues = requeues;
	return lost;
}

/* The driver refused skbs (a veth whose peer's ring is full) and the qdisc put them aside
 * (qstats.requeues moved); it hands them out again first, each seen a second time here. They
 * were counted at their first dequeue, and bstats does not count them again: one of the last
 * skbs handed out, while requeues are pending, is one of those. */
static __always_inline bool handed_out_again(struct qdisc_books *b, __u64 key)
{
	if (!b->pending_requeues || bpf_map_lookup_elem(&queued, &key))
		return false;
	for (int i = 0; i < RECENT_LEN; i++) {
		if (b->recent[i] == key) {
			b->pending_requeues--;
			b->recent[i] = 0;
			return true;
		}
	}
	return false;
}

struct bulk {
	__u64 skb;	/* the next one to time */
	__u64 q;
	__u64 now;
	bool tp;	/* seen at the qdisc_dequeue tracepoint */
};

/* One packet of a bulk dequeue (a bpf_loop callback: verified once, whatever the bulk's size;
 * an open-coded loop made the 6.1 verifier walk every iteration's paths). */
static int dequeued_next(__u32 i, void *data)
{
	struct bulk *b = data;
	const struct sk_buff *skb = (const void *)b->skb;
	struct qdisc_books *bk = NULL;
	struct gso_fifo *f = NULL;
	__u64 key = b->skb;

	if (!skb)
		return 1;
	b->skb = (__u64)BPF_CORE_READ(skb, next);
	if (b->tp) {
		bk = bpf_map_lookup_elem(&books, &b->q);
		if (bk && handed_out_again(bk, key))
			return 0;
		/* Summed in the map, not in *b: the verifier tracks a sum on the stack and walked
		 * this callback again for each of its values (~100k instructions, seconds of the
		 * exporter's start on a busy host); map memory it does not track. */
		if (bk) {
			bk->seen_segs += segs_of(skb);
			bk->recent[bk->recent_next++ & (RECENT_LEN - 1)] = key;
		}
	}
	if (split_gso)
		f = fifo_of((const struct Qdisc *)b->q, false);
	dequeued_one((const struct Qdisc *)b->q, f, skb, b->now);
	return 0;
}

/* The qdisc handed `packets` skbs, chained on skb->next, to the driver. */
static __always_inline void dequeued(const struct Qdisc *q, const struct sk_buff *skb, int packets,
				     bool tp)
{
	struct bulk b = { .skb = (__u64)skb, .q = (__u64)q, .now = bpf_ktime_get_ns(), .tp = tp };
	bool books_usable = tp && counters_usable(q);
	struct gso_fifo *f;

	if (split_gso) {
		f = fifo_of(q, false);
		if (f)
			f->qlen = kind_qlen(q);
	}
	if (books_usable) {
		__u64 key = (__u64)q;
		struct qdisc_books *bk = bpf_map_lookup_elem(&books, &key);
		__u32 requeues = requeues_of(q);

		/* Requeues since the last event are handed out first: take them in before. */
		if (bk) {
			bk->pending_requeues += requeues - bk->requeues;
			bk->requeues = requeues;
		}
	}
	if (packets <= 1)
		dequeued_next(0, &b);
	else
		bpf_loop(packets < BULK_MAX ? packets : BULK_MAX, dequeued_next, &b, 0);
	if (books_usable)
		settle_books(q);
}

/* A parent (tbf, htb) looks at a child's head packet before taking it. Some kinds' own peek
 * functions (fq_codel's and codel's on recent kernels) take the packet out of their queue there,
 * keep it aside and hand it over at the parent's dequeue without calling their dequeue function;
 * others (red) only look. Either way the packet is timed at its first peek, and marked so that
 * the dequeue that may follow is not counted again. Later peeks of it find nothing recorded. */
static __always_inline void peeked(const struct sk_buff *skb)
{
	__u64 key = (__u64)skb, *start;
	__u8 one = 1;

	start = bpf_map_lookup_elem(&queued, &key);
	if (!start)
		return;
	add_sample(skb, *start, bpf_ktime_get_ns());
	bpf_map_delete_elem(&queued, &key);
	bpf_map_update_elem(&peeked_skbs, &key, &one, BPF_ANY);
}

/* ---- fexit on the kind's functions: int KIND_enqueue(skb, sch, to_free), struct sk_buff
 * *KIND_dequeue(sch), and struct sk_buff *KIND_peek(sch) where the kind has its own. The
 * functions are the kind's own: only the device filters apply. */

SEC("fexit")
int BPF_PROG(qdisc_fexit_enqueue, struct sk_buff *skb, struct Qdisc *q, struct sk_buff **to_free,
	     int ret)
{
	int rc = ret & NET_XMIT_MASK;

	/* NET_XMIT_CN: accepted, though the qdisc dropped another packet (or this one: the LRU
	 * ages such entries out). */
	if ((rc != NET_XMIT_SUCCESS && rc != NET_XMIT_CN) || !qdisc_dev_ok(q))
		return 0;
	enqueued(q, skb, bpf_ktime_get_ns(), 0);
	return 0;
}

SEC("fexit")
int BPF_PROG(qdisc_fexit_dequeue, struct Qdisc *q, struct sk_buff *skb)
{
	if (skb && qdisc_dev_ok(q))
		dequeued(q, skb, 1, false);
	return 0;
}

SEC("fexit")
int BPF_PROG(qdisc_fexit_peek, struct Qdisc *q, struct sk_buff *skb)
{
	if (skb && qdisc_dev_ok(q))
		peeked(skb);
	return 0;
}

/* ---- kprobe + kretprobe on the same functions. */

struct pending {
	__u64 skb;
	__u64 q;
	__u64 ts_ns;
};

/* The arguments of the enqueue (and of the dequeue) in progress on this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct pending);
} pending SEC(".maps");

#define PENDING_ENQUEUE 0
#define PENDING_DEQUEUE 1
#define PENDING_PEEK 2

static __always_inline void remember(__u32 which, const struct sk_buff *skb, const struct Qdisc *q)
{
	struct pending *p = bpf_map_lookup_elem(&pending, &which);

	if (!p)
		return;
	p->skb = (__u64)skb;
	p->q = qdisc_dev_ok(q) ? (__u64)q : 0;
	p->ts_ns = bpf_ktime_get_ns();
}

static __always_inline struct Qdisc *recall(__u32 which, struct pending *out)
{
	struct pending *p = bpf_map_lookup_elem(&pending, &which);
	struct Qdisc *q;

	if (!p || !p->q)
		return NULL;
	*out = *p;
	q = (struct Qdisc *)p->q;
	p->q = 0;
	return q;
}

SEC("kprobe")
int BPF_KPROBE(qdisc_kprobe_enqueue, struct sk_buff *skb, struct Qdisc *q)
{
	remember(PENDING_ENQUEUE, skb, q);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(qdisc_kretprobe_enqueue, int ret)
{
	struct pending p;
	struct Qdisc *q = recall(PENDING_ENQUEUE, &p);
	int rc = ret & NET_XMIT_MASK;

	if (q && (rc == NET_XMIT_SUCCESS || rc == NET_XMIT_CN))
		enqueued(q, (const struct sk_buff *)p.skb, p.ts_ns, 0);
	return 0;
}

SEC("kprobe")
int BPF_KPROBE(qdisc_kprobe_dequeue, struct Qdisc *q)
{
	remember(PENDING_DEQUEUE, NULL, q);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(qdisc_kretprobe_dequeue, struct sk_buff *skb)
{
	struct pending p;
	struct Qdisc *q = recall(PENDING_DEQUEUE, &p);

	if (q && skb)
		dequeued(q, skb, 1, false);
	return 0;
}

SEC("kprobe")
int BPF_KPROBE(qdisc_kprobe_peek, struct Qdisc *q)
{
	remember(PENDING_PEEK, NULL, q);
	return 0;
}

SEC("kretprobe")
int BPF_KRETPROBE(qdisc_kretprobe_peek, struct sk_buff *skb)
{
	struct pending p;
	struct Qdisc *q = recall(PENDING_PEEK, &p);

	if (q && skb)
		peeked(skb);
	return 0;
}

/* ---- tracepoints: root qdiscs, any kind, chosen by ops->id. */

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(qdisc_enqueued, struct Qdisc *q, const struct netdev_queue *txq, struct sk_buff *skb)
{
	__u64 missed_before = 0;

	if (!kind_is_wanted(q) || !qdisc_dev_ok(q))
		return 0;
	/* No dequeue was seen since the last event: any bstats increase is dequeues missed. */
	if (counters_usable(q))
		missed_before = settle_books(q);
	enqueued(q, skb, bpf_ktime_get_ns(), missed_before);
	return 0;
}

SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(qdisc_dequeued, struct Qdisc *q, const struct netdev_queue *txq, int packets,
	     struct sk_buff *skb)
{
	struct gso_fifo *f;

	if (!kind_is_wanted(q) || !qdisc_dev_ok(q))
		return 0;
	if (skb) {
		dequeued(q, skb, packets, true);
		return 0;
	}
	/* The qdisc had nothing (more) to send: a run of it ends here, so dequeues missed at the
	 * end of a burst are found now rather than at the next packet, which may never come. */
	if (!counters_usable(q))
		return 0;
	settle_books(q);
	f = split_gso ? fifo_of(q, false) : NULL;
	if (f)
		f->qlen = kind_qlen(q);
	return 0;
}
