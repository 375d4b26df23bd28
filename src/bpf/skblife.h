/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SKBLIFE_H
#define NETBPF_SKBLIFE_H

#include "common/hist.h"

/* What a slab cache holds, as far as skblife cares. */
enum skblife_cache {
	CACHE_UNKNOWN = 0,
	CACHE_OTHER = 1,
	CACHE_SKB = 2,        /* skbuff_head_cache, or an unmerged skbuff_fclone_cache */
	CACHE_SKB_SHARED = 3, /* a merged cache that also holds skbuff_fclone_cache's objects */
	CACHE_SMALL_HEAD = 4, /* skb data heads: never an sk_buff */
};

/* Counts kept beside the histogram (indexes of the stats array). */
enum skblife_stat {
	STAT_ALLOCS = 0,     /* sk_buff allocations seen (every namespace and device) */
	STAT_FREES = 1,      /* frees of an sk_buff whose allocation was seen (in the histogram) */
	STAT_FREES_UNSEEN = 2, /* frees of an sk_buff allocated before the run or without an event
				* (not counted when filtering: where such an skb went is unknown) */
	STAT_EXCLUDED = 3,   /* frees of skbs that crossed no device accepted by --netns / -i */
	STATS = 4,
};

#endif
