/* SPDX-License-Identifier: GPL-2.0 */
/* The drop reason of skb:kfree_skb, for tp_btf programs declared with the two arguments every
 * kernel's tracepoint has (skb, location). The reason is its third argument from 5.17 (enum
 * skb_drop_reason); before, there is none, and a program must not read past the tracepoint's
 * last argument: the read is reached only where the tracepoint has it (CO-RE), and where the
 * tool's plan uses reasons (core::drop_reason: user space then names them "unknown"). */
#ifndef NETBPF_DROP_REASON_BPF_H
#define NETBPF_DROP_REASON_BPF_H

/* Cleared by user space for the plan without reasons. */
const volatile bool drop_reasons = true;

static __always_inline bool kfree_skb_has_reason(void)
{
	return drop_reasons && bpf_core_field_exists(struct trace_event_raw_kfree_skb, reason);
}

/* The reason of this kfree_skb, 0 where there is none. */
static __always_inline __u32 kfree_skb_reason(const __u64 *ctx)
{
	return kfree_skb_has_reason() ? (__u32)ctx[2] : 0;
}

#endif
