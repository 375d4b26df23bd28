/* SPDX-License-Identifier: GPL-2.0 */
/* netbpf exporter mode: instead of streaming events or keying by process/stack, a tool sums what
 * the exporter publishes into two small maps of low-cardinality series (export_counts,
 * export_hists), keyed by struct export_key. User space sets export_mode (and export_ports for
 * --port-labels) before load, and may resize the maps. Whatever cannot be counted (a full map)
 * is counted in export_stats[EXPORT_STAT_LOST], never dropped silently. */
#ifndef NETBPF_EXPORT_BPF_H
#define NETBPF_EXPORT_BPF_H

#include "common/cgroup.bpf.h"
#include "common/export.h"
#include "common/hist.bpf.h"
#include "common/maps.bpf.h"

const volatile bool export_mode = false;
const volatile bool export_ports = false;
/* --labels container,pod,namespace: series are also keyed by the socket's cgroup id (summed
 * per cgroup here; user space names them and caps their number). */
const volatile bool export_cgroups = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct export_key);
	__type(value, __u64);
} export_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct export_key);
	__type(value, struct export_hist);
} export_hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EXPORT_STATS);
	__type(key, __u32);
	__type(value, __u64);
} export_stats SEC(".maps");

static __always_inline void export_lost(void)
{
	__u32 idx = EXPORT_STAT_LOST;
	__u64 *n = bpf_map_lookup_elem(&export_stats, &idx);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void export_count_cg(__u32 metric, __u32 label, __u16 port, __u64 cgroup,
					   __u64 n)
{
	struct export_key key = { .metric = metric, .label = label, .port = export_ports ? port : 0,
				  .cgroup = cgroup };
	__u64 zero = 0, *val = lookup_or_init(&export_counts, &key, &zero);

	if (val)
		__sync_fetch_and_add(val, n);
	else
		export_lost();
}

static __always_inline void export_count(__u32 metric, __u32 label, __u16 port, __u64 n)
{
	export_count_cg(metric, label, port, 0, n);
}

/* A series of socket sk's: with --labels, keyed by its cgroup too (right in softirq). */
static __always_inline void export_count_sk(__u32 metric, __u32 label, __u16 port,
					   const struct sock *sk, __u64 n)
{
	export_count_cg(metric, label, port, export_cgroups ? sk_cgroup_id(sk) : 0, n);
}

static __always_inline void export_hist_add_cg(__u32 metric, __u32 label, __u16 port,
					      __u64 cgroup, __u64 v)
{
	static const struct export_hist empty = {};
	struct export_key key = { .metric = metric, .label = label, .port = export_ports ? port : 0,
				  .cgroup = cgroup };
	struct export_hist *h = lookup_or_init(&export_hists, &key, &empty);
	__u32 slot = hist_slot(v);

	if (!h) {
		export_lost();
		return;
	}
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum, v);
}

static __always_inline void export_hist_add(__u32 metric, __u32 label, __u16 port, __u64 v)
{
	export_hist_add_cg(metric, label, port, 0, v);
}

static __always_inline void export_hist_add_sk(__u32 metric, __u32 label, __u16 port,
					      const struct sock *sk, __u64 v)
{
	export_hist_add_cg(metric, label, port, export_cgroups ? sk_cgroup_id(sk) : 0, v);
}

#endif
