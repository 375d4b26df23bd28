/* SPDX-License-Identifier: GPL-2.0 */
/* log2 histograms, aggregated in the kernel as bpftrace's hist() does. */
#ifndef NETBPF_HIST_BPF_H
#define NETBPF_HIST_BPF_H

#include "common/hist.h"
#include "common/maps.bpf.h"

/* 1 when x != 0, else 0, for x < 2^63, without a branch: x | -x has its top bit set exactly
 * when x is not 0. The barrier keeps clang from folding it back into a comparison, which the BPF
 * backend emits as a jump. */
static __always_inline __u64 nonzero(__u64 x)
{
	__u64 neg = 0 - x;

	barrier_var(neg);
	return (x | neg) >> 63;
}

/* floor(log2(v)) for v > 0 (0 for 0), without clz (the BPF backend has none) and without
 * branches: with one per bit of the result, the verifier walked each of the 64 paths apart
 * (their results differ, and the slot indexes a map value) at every histogram update of a
 * program, the bulk of what qdisc's dequeue program cost it to verify (~40k instructions,
 * 0.6-0.8 s of the exporter's start). Each step shifts v down by its width when v has a bit
 * above it. */
static __always_inline __u32 log2_floor(__u64 v)
{
	__u64 r = 0, s;

	s = nonzero(v >> 32) << 5; v >>= s; r |= s;
	s = nonzero(v >> 16) << 4; v >>= s; r |= s;
	s = nonzero(v >> 8) << 3; v >>= s; r |= s;
	s = nonzero(v >> 4) << 2; v >>= s; r |= s;
	s = nonzero(v >> 2) << 1; v >>= s; r |= s;
	return r | (v >> 1);
}

/* The slot of v: 0 for 0, else floor(log2(v)) + 1 (matches core::hist::log2_slot), masked so
 * that the verifier sees its bound wherever it indexes a histogram. The mask changes nothing
 * (the slot is < HIST_SLOTS already; HIST_SLOTS is a power of 2), but log2_floor() has no
 * branches, so the verifier only knows the result's range from an operation it can see, and
 * clang may clamp a copy of the register instead ("invalid access to map value"). The barrier
 * keeps clang from dropping the mask as redundant. */
static __always_inline __u32 hist_slot(__u64 v)
{
	__u32 slot = v ? log2_floor(v) + 1 : 0;

	slot = slot < HIST_SLOTS ? slot : HIST_SLOTS - 1;
	barrier_var(slot);
	return slot & (HIST_SLOTS - 1);
}

static __always_inline void hist_add(struct hist *h, __u64 v)
{
	__sync_fetch_and_add(&h->slots[hist_slot(v)], 1);
}

/* Adds v to the histogram at key of a hash map of struct hist (created empty). */
static __always_inline void hist_map_add(void *map, const void *key, __u64 v)
{
	static const struct hist empty = {};
	struct hist *h = lookup_or_init(map, key, &empty);

	if (h)
		hist_add(h, v);
}

#endif
