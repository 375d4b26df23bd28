/* SPDX-License-Identifier: GPL-2.0 */
/* netbpf exporter: what a tool sums in the kernel in exporter mode, shared with user space
 * (src/exporter reads it through the generated skeleton types). */
#ifndef NETBPF_EXPORT_H
#define NETBPF_EXPORT_H

#include "common/hist.h"

/* One series: the tool's metric number and a small label value (family, state, drop reason,
 * direction, ...), each decoded by the tool's collector; the port only with --port-labels. */
struct export_key {
	__u32 metric;
	__u32 label;
	__u32 port;
	__u32 pad;
	__u64 cgroup; /* the socket's cgroup v2 id with --labels (export_cgroups), else 0 */
};

/* A log2 histogram (slots as struct hist) and the sum of the values added. */
struct export_hist {
	__u64 slots[HIST_SLOTS];
	__u64 sum;
};

/* export_stats indexes */
#define EXPORT_STAT_LOST 0 /* updates lost: a map was full (or an entry could not be tracked) */
#define EXPORT_STATS 1

#endif
