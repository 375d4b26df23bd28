/* SPDX-License-Identifier: GPL-2.0 */
/* Per-event output: one ring buffer per tool, with batched wakeups.
 *
 * Waking the reader costs an IRQ-work self-interrupt plus a cross-CPU wakeup per event (~6 us on a
 * small VM, which halves a connection storm). So events are submitted without a wakeup and user
 * space drains the ring on a short timer; only when the ring fills past WAKEUP_BYTES is the reader
 * woken at once, so a burst never overflows while it sleeps. Lost events are counted, not hidden.
 *
 * Past WAKEUP_BYTES, one forced wakeup per WAKEUP_GAP_NS at most, not one per event: a reader
 * slower than the events keeps the ring past the mark, and every event then paid the
 * self-interrupt (irq_work_queue re-raises it as soon as the previous one ran), 3-4 us per event
 * in a VM, where the interrupt traps to the hypervisor (tcpstates on a storm: 3.5 us per run
 * against 0.6 us without wakeups). A woken reader drains until the ring is empty and polls
 * again without sleeping while data is left, so more wakeups in between do nothing; a reader
 * that drained and went back to sleep is woken by the first event past the mark once the gap has
 * passed. */
#ifndef NETBPF_EVENTS_BPF_H
#define NETBPF_EVENTS_BPF_H

/* A tool may define EVENTS_RING_BYTES (a power of two, at least a page) before including this:
 * its mapping is resident memory from the start (twice the size: the kernel maps the data pages
 * twice), against a 5 MB budget for the whole tool. 256 KiB holds ~2,000 records of ~120 bytes;
 * the reader is woken at a quarter of it. */
#ifndef EVENTS_RING_BYTES
#define EVENTS_RING_BYTES (256 * 1024)
#endif
#define WAKEUP_BYTES (EVENTS_RING_BYTES / 4)
/* 1 ms: at most 1,000 forced wakeups a second. The reader sleeps only after emptying the ring, so
 * to overflow while it waits out the gap, events would have to fill the whole ring within 1 ms
 * (~2,000 events of 128 bytes in 256 KiB: 2 million a second, more than a reader drains awake). */
#define WAKEUP_GAP_NS 1000000

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_BYTES);
} events SEC(".maps");

/* Makes the skeleton generator emit a Rust definition of an event struct (skel::types::NAME), so
 * user space never hand-copies the layout. Costs one zeroed instance in .bss. */
#define EXPORT_EVENT_TYPE(name) struct name __export_##name = {}

/* Read by user space at exit: events the ring had no room for. */
__u64 lost_events = 0;

/* bpf_ktime_get_ns() of the last forced wakeup (shared by the CPUs: written at most once per
 * WAKEUP_GAP_NS; two CPUs racing past the gap both wake, which is harmless). */
__u64 last_wakeup_ns = 0;

static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		__sync_fetch_and_add(&lost_events, 1);
	return e;
}

static __always_inline void submit_event(void *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 now;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES) {
		now = bpf_ktime_get_ns();
		if (now - last_wakeup_ns >= WAKEUP_GAP_NS) {
			last_wakeup_ns = now;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(e, flags);
}

#endif
