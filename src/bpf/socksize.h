/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCKSIZE_H
#define NETBPF_SOCKSIZE_H

#include "common/hist.h"

#define SOCKSIZE_READ 0
#define SOCKSIZE_WRITE 1

/* One log2 histogram of I/O sizes (bytes) per process name and direction. */
struct socksize_key {
	char comm[16];
	__u32 dir; /* SOCKSIZE_READ or SOCKSIZE_WRITE */
};

#endif
