/* SPDX-License-Identifier: GPL-2.0 */
/* For kprobe + kretprobe pairs: what the entry saw, handed to the matching return.
 *
 * A kretprobe has only the return value, so the entry keeps what the return needs per thread.
 * The same function can nest on one thread: a softirq that runs when a transmit re-enables
 * bottom halves (loopback delivers right there) can call it again for another socket. A plain
 * per-thread slot would then be overwritten by the inner call and the outer return would find
 * nothing, so the slots form a small stack per thread: each return takes the innermost entry.
 *
 * Every entry must be pushed, even one the tool does not want (push with wanted = false), so
 * that the returns stay matched with their entries. Deeper nesting than CALL_STACK_DEPTH keeps
 * the count but not the frames. */
#ifndef NETBPF_CALL_STACK_BPF_H
#define NETBPF_CALL_STACK_BPF_H

#define CALL_STACK_DEPTH 4 /* a power of 2 */

struct call_frame {
	__u64 a;
	__u64 b;
	__u32 wanted;
	__u32 pad;
};

struct call_stack {
	__u32 depth;
	__u32 pad;
	struct call_frame frames[CALL_STACK_DEPTH];
};

#define DEFINE_CALL_STACKS(name)                                                                  \
	struct {                                                                                  \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                                              \
		__uint(max_entries, 16384);                                                       \
		__type(key, __u32);                                                               \
		__type(value, struct call_stack);                                                 \
	} name SEC(".maps")

static __always_inline void call_push(void *stacks, __u64 a, __u64 b, bool wanted)
{
	static const struct call_stack empty = {};
	__u32 tid = current_tid(), d;
	struct call_stack *st;

	st = bpf_map_lookup_elem(stacks, &tid);
	if (!st) {
		if (!wanted)
			return; /* nothing below to keep matched */
		bpf_map_update_elem(stacks, &tid, &empty, BPF_NOEXIST);
		st = bpf_map_lookup_elem(stacks, &tid);
		if (!st)
			return;
	}
	d = st->depth;
	st->depth = d + 1;
	if (d < CALL_STACK_DEPTH) {
		/* The mask changes nothing but gives older verifiers a bound on this very register
		 * (clang may check a copy); the barrier keeps clang from dropping it. */
		barrier_var(d);
		d &= CALL_STACK_DEPTH - 1;
		st->frames[d].a = a;
		st->frames[d].b = b;
		st->frames[d].wanted = wanted;
	}
}

/* The innermost entry of this thread, removed; false when there is none or it is not wanted. */
static __always_inline bool call_pop(void *stacks, struct call_frame *f)
{
	__u32 tid = current_tid(), d;
	struct call_stack *st;

	st = bpf_map_lookup_elem(stacks, &tid);
	if (!st || !st->depth)
		return false;
	d = st->depth - 1;
	st->depth = d;
	if (!d) {
		/* The outermost return: read the frame, then drop the thread's entry. */
		*f = st->frames[0];
		bpf_map_delete_elem(stacks, &tid);
		return f->wanted;
	}
	if (d >= CALL_STACK_DEPTH)
		return false;
	barrier_var(d);
	d &= CALL_STACK_DEPTH - 1;
	*f = st->frames[d];
	return f->wanted;
}

#endif
