/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPDROP_H
#define NETBPF_TCPDROP_H

#define TCPDROP_STACK_DEPTH 32
/* Drop reasons below this can be hidden as routine (core::drop_reason::ROUTINE); the core enum
 * has ~130 values, subsystem reasons (bits 16+) are never routine. */
#define TCPDROP_ROUTINE_MAX 256

/* One TCP packet the kernel dropped. Addresses as on the wire (source -> destination). */
struct tcpdrop_event {
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u64 ts_ns; /* bpf_ktime_get_ns() of the drop */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 stack[TCPDROP_STACK_DEPTH]; /* kernel stack, innermost first, zero-terminated */
	__u32 pid; /* whatever ran: often a softirq on top of an unrelated task */
	__u32 reason; /* enum skb_drop_reason, named from kernel BTF by user space */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 state; /* TCP state of the socket involved, 0 when none */
	__u8 flags; /* TCP header flags */
};

#endif
