/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPRTT_H
#define NETBPF_TCPRTT_H

#include "common/hist.h"

/* Histogram key: the local or remote address with -b/-B, all zero otherwise. */
struct tcprtt_key {
	__u8 addr[16]; /* IPv4 in the first 4 bytes */
	__u16 family;
	__u16 pad[3];
};

/* One histogram and the sum of its samples (for the average, -e), in one map value so that
 * both are read at the same moment. */
struct tcprtt_hist {
	struct hist hist;
	__u64 total;
};

#endif
