/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_QDISC_H
#define NETBPF_QDISC_H

#include "common/hist.h"

/* Key of the histogram map: one histogram (the book's @us). */
struct qdisc_hist_key {
	__u32 zero;
};

/* Exporter mode: metric numbers of export_hists/export_counts (read as the same names in
 * qdisc.rs). */
enum qdisc_export_metric {
	QDISC_EXPORT_LATENCY = 0,	/* histogram: queueing latency */
	QDISC_EXPORT_UNTIMED = 1,	/* counter: dequeued packets not timed */
};

#endif
