/* SPDX-License-Identifier: GPL-2.0 */
/* Map helpers. */
#ifndef NETBPF_MAPS_BPF_H
#define NETBPF_MAPS_BPF_H

#include "common/errno.bpf.h"

/* Read by user space at exit (core::run::report_full): new keys a full map had no room for. */
__u64 map_full_drops = 0;

/* The value at key, inserting *init first when absent; NULL only when the map is full. */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *val = bpf_map_lookup_elem(map, key);
	long err;

	if (val)
		return val;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		__sync_fetch_and_add(&map_full_drops, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(map, key);
}

/* Adds n to the u64 counter at key (created at 0). */
static __always_inline void counter_add(void *map, const void *key, __u64 n)
{
	__u64 zero = 0, *val = lookup_or_init(map, key, &zero);

	if (val)
		__sync_fetch_and_add(val, n);
}

#endif
