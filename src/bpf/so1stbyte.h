/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SO1STBYTE_H
#define NETBPF_SO1STBYTE_H

#include "common/hist.h"

/* One log2 histogram (microseconds from connect() to the first byte read) per process. */
struct so1stbyte_key {
	__u32 pid;
	char comm[16];
};

#endif
