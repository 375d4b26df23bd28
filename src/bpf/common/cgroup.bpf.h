/* SPDX-License-Identifier: GPL-2.0 */
/* cgroup v2 ids of the current task and of a socket, and the "this cgroup or below" test of the
 * --cgroup/--container/--pod filters. CO-RE covers the layouts from 5.10 on:
 * - struct sock_cgroup_data: a `struct cgroup *cgroup` field since 5.15; before, one u64 `val`
 *   that is the cgroup pointer, or (low bit set) net_cls/net_prio v1 data, in which case the
 *   kernel itself counts the socket as the root cgroup's;
 * - struct cgroup: `ancestors[]` (cgroup pointers) since 6.0, `ancestor_ids[]` (ids) before;
 *   both indexed by level, the root at 0;
 * - the cgroup id is kernfs_node::id (a u64, the directory's inode number, since 5.5). */
#ifndef NETBPF_CGROUP_BPF_H
#define NETBPF_CGROUP_BPF_H

struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));

struct cgroup___old {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/* The deepest level the filter accepts: bounds the ancestor read for the verifier (kubelet's
 * deepest layouts are about 6 below the root). */
#define MAX_CGROUP_LEVEL 64

/* The cgroup id of the root of the v2 hierarchy. */
#define ROOT_CGROUP_ID 1

static __always_inline __u64 cgroup_id_of(const struct cgroup *cgrp)
{
	return cgrp ? BPF_CORE_READ(cgrp, kn, id) : ROOT_CGROUP_ID;
}

#define CG_TCP_TIME_WAIT 6
#define CG_TCP_NEW_SYN_RECV 12

/* The v2 cgroup a socket was created in (kept in the socket, so it is right in softirq too). A
 * request socket (a connection being accepted) answers for its listener; a time-wait socket has
 * no cgroup (NULL: the root's). */
static __always_inline const struct cgroup *sk_cgroup(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	if (state == CG_TCP_TIME_WAIT)
		return NULL;
	if (state == CG_TCP_NEW_SYN_RECV)
		sk = BPF_CORE_READ(sk, __sk_common.skc_listener);
	if (!sk)
		return NULL;
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup);

	struct sock_cgroup_data___old *old = (void *)&sk->sk_cgrp_data;
	__u64 v = BPF_CORE_READ(old, val);

	/* Low bit: v1 classid/prioidx data, no pointer. */
	return (v & 1) ? NULL : (const struct cgroup *)(unsigned long)(v & ~3ULL);
}

static __always_inline const struct cgroup *current_cgroup(void)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, cgroups, dfl_cgrp);
}

static __always_inline __u64 sk_cgroup_id(const struct sock *sk)
{
	return sk ? cgroup_id_of(sk_cgroup(sk)) : 0;
}

static __always_inline __u64 current_cgroup_id(void)
{
	return bpf_get_current_cgroup_id();
}

/* The cgroup an event is attributed to (its events' `cgroup` field): the socket's when it has
 * one, right in softirq too; else the current task's. Call it with NULL only in process context
 * (a syscall): in softirq the current task is unrelated, use pkt_cgroup_id() there. */
static __always_inline __u64 event_cgroup_id(const struct sock *sk)
{
	return sk ? sk_cgroup_id(sk) : current_cgroup_id();
}

/* A packet's: its socket's (skb->sk, set on transmit and once a socket took it); 0 without one
 * (received below the socket layer), never the task's. */
static __always_inline __u64 pkt_cgroup_id(const struct sk_buff *skb)
{
	return sk_cgroup_id(BPF_CORE_READ(skb, sk));
}

/* The id of cgrp's ancestor at `level` (cgrp itself at its own level); 0 when cgrp is above. */
static __always_inline __u64 cgroup_ancestor_id(const struct cgroup *cgrp, __u32 level)
{
	if (!cgrp || level >= MAX_CGROUP_LEVEL)
		return 0;
	if (bpf_core_field_exists(struct cgroup, ancestors)) {
		if (BPF_CORE_READ(cgrp, level) < (int)level)
			return 0;
		const struct cgroup *anc = NULL;
		__u32 off = bpf_core_field_offset(struct cgroup, ancestors);

		bpf_probe_read_kernel(&anc, sizeof(anc), (void *)cgrp + off + level * sizeof(anc));
		return cgroup_id_of(anc);
	}
	const struct cgroup___old *old = (const void *)cgrp;
	__u64 id = 0;

	if (BPF_CORE_READ(old, level) < (int)level)
		return 0;
	bpf_probe_read_kernel(&id, sizeof(id),
			      (void *)old + bpf_core_field_offset(struct cgroup___old, ancestor_ids) +
				      level * sizeof(id));
	return id;
}

#endif
