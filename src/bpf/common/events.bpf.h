/* SPDX-License-Identifier: GPL-2.0 */
/* Per-event output: one ring buffer per tool, with batched wakeups.
 *
 * Waking the reader costs an IRQ-work self-interrupt plus a cross-CPU wakeup per event (~6 us on a
 * small VM, which halves a connection storm). So events are submitted without a wakeup and user
 * space drains the ring on a short timer; only when the ring fills past WAKEUP_BYTES is the reader
 * woken at once, so a burst never overflows while it sleeps. Lost events are counted, not hidden. */
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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_BYTES);
} events SEC(".maps");

/* Makes the skeleton generator emit a Rust definition of an event struct (skel::types::NAME), so
 * user space never hand-copies the layout. Costs one zeroed instance in .bss. */
#define EXPORT_EVENT_TYPE(name) struct name __export_##name = {}

/* Read by user space at exit: events the ring had no room for. */
__u64 lost_events = 0;

static __always_inline void *reserve_event(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		__sync_fetch_and_add(&lost_events, 1);
	return e;
}

static __always_inline void submit_event(void *e)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;

	bpf_ringbuf_submit(e, flags);
}

#endif
