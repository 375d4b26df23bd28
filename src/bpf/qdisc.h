/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_QDISC_H
#define NETBPF_QDISC_H

#include "common/hist.h"

/* Key of the histogram map: one histogram (the book's @us). */
struct qdisc_hist_key {
	__u32 zero;
};

#endif
