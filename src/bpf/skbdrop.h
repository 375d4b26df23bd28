/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SKBDROP_H
#define NETBPF_SKBDROP_H

/* Drops are counted per (reason, kernel stack). */
struct skbdrop_key {
	__u32 reason;   /* enum skb_drop_reason: values differ between kernels, named from BTF */
	__s32 stack_id; /* in the stacks map; negative when the stack could not be taken */
};

#endif
