/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCONNLAT_H
#define NETBPF_SOCONNLAT_H

#include "common/hist.h"

/* One log2 histogram of connect latency (microseconds) per user stack and process. */
struct soconnlat_key {
	__s32 stack_id; /* in the stacks map; < 0 when the stack could not be taken */
	__u32 pid;
	char comm[16];
	__u64 caller; /* return address into connect()'s caller, from the stack top (0: none) */
};

/* Sent once per new histogram key, so user space symbolizes the stack while the process lives. */
struct soconnlat_stack_event {
	__u32 pid;
	__s32 stack_id;
	__u64 caller;
};

#endif
