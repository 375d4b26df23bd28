/* SPDX-License-Identifier: GPL-2.0 */
/* log2 histograms, aggregated in the kernel as bpftrace's hist() does. */
#ifndef NETBPF_HIST_BPF_H
#define NETBPF_HIST_BPF_H

#include "common/hist.h"
#include "common/maps.bpf.h"

/* floor(log2(v)) for v > 0, without clz (the BPF backend has none). */
static __always_inline __u32 log2_floor(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

/* The slot of v: 0 for 0, else floor(log2(v)) + 1 (matches core::hist::log2_slot). */
static __always_inline __u32 hist_slot(__u64 v)
{
	__u32 slot = v ? log2_floor(v) + 1 : 0;

	return slot < HIST_SLOTS ? slot : HIST_SLOTS - 1;
}

static __always_inline void hist_add(struct hist *h, __u64 v)
{
	__u32 slot = hist_slot(v);

	/* The mask changes nothing (the slot is < HIST_SLOTS already) but gives the verifier a bound
	 * it can see: clang may compute the slot without branches and clamp a copy of the register,
	 * and the store is then refused ("invalid access to map value"). The barrier keeps clang
	 * from dropping the mask as redundant. HIST_SLOTS is a power of 2. */
	barrier_var(slot);
	__sync_fetch_and_add(&h->slots[slot & (HIST_SLOTS - 1)], 1);
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
