/* SPDX-License-Identifier: GPL-2.0 */
/* A log2 histogram as stored in maps; shared with user space (core/hist.rs reads it). */
#ifndef NETBPF_HIST_H
#define NETBPF_HIST_H

#define HIST_SLOTS 64

/* slots[0] counts the value 0, slots[k] (k >= 1) counts [2^(k-1), 2^k). */
struct hist {
	__u64 slots[HIST_SLOTS];
};

#endif
