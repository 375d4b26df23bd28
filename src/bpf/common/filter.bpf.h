/* SPDX-License-Identifier: GPL-2.0 */
/* The common filters, set by user space in .rodata before load so the verifier prunes what is
 * unused. Zero means "no filter". */
#ifndef NETBPF_FILTER_BPF_H
#define NETBPF_FILTER_BPF_H

#include "common/cgroup.bpf.h"

#define MAX_FILTER_PORTS 8

const volatile __u32 filter_tgid = 0;
const volatile __u64 filter_netns = 0; /* netns cookie */
/* --cgroup/--container/--pod: a cgroup v2 id and its level; its subtree matches. */
const volatile __u64 filter_cgroup = 0;
const volatile __u32 filter_cgroup_level = 0;
/* --cgroupmap / --mntnsmap (bcc's): sets of ids in a hash map the user pinned in bpffs, keyed
 * by cgroup v2 id (u64 -> u64) / mount namespace inode (u64 -> u32). User space puts the pinned
 * map in slot 0 of cgroup_map / mntns_map once loaded (a map of maps: reusing the map itself
 * would rename it to the user's name) and sets the flag; each event looks its id up, so ids
 * added or removed while a tool runs count at once. */
const volatile bool filter_cgroup_map = false;
const volatile bool filter_mntns_map = false;
const volatile __u16 filter_family = 0; /* AF_INET or AF_INET6 */
const volatile __u16 filter_lports[MAX_FILTER_PORTS] = {};
const volatile __u16 filter_rports[MAX_FILTER_PORTS] = {};

struct cgroup_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); /* a template: the pinned map's size is its own */
	__type(key, __u64);
	__type(value, __u64);
};

struct mntns_set {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cgroup_set);
} cgroup_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct mntns_set);
} mntns_map SEC(".maps");

/* Whether `id` is a key of the set in slot 0 of `sets` (none there: nothing is). */
static __always_inline bool in_set(void *sets, __u64 id)
{
	__u32 slot = 0;
	void *set = bpf_map_lookup_elem(sets, &slot);

	return set && bpf_map_lookup_elem(set, &id);
}

static __always_inline bool port_in(const volatile __u16 *set, __u16 port)
{
	if (!set[0])
		return true;
	for (int i = 0; i < MAX_FILTER_PORTS; i++) {
		if (!set[i])
			return false;
		if (set[i] == port)
			return true;
	}
	return false;
}

static __always_inline bool lport_ok(__u16 port)
{
	return port_in(filter_lports, port);
}

static __always_inline bool rport_ok(__u16 port)
{
	return port_in(filter_rports, port);
}

static __always_inline bool family_ok(__u16 family)
{
	return !filter_family || filter_family == family;
}

static __always_inline bool tgid_ok(__u32 tgid)
{
	return !filter_tgid || filter_tgid == tgid;
}

static __always_inline bool netns_ok(__u64 cookie)
{
	return !filter_netns || filter_netns == cookie;
}

/* Whether any cgroup filter is set (--cgroup/--container/--pod, --cgroupmap): callers may skip
 * finding the socket when not. */
static __always_inline bool cgroup_filtered(void)
{
	return filter_cgroup || filter_cgroup_map;
}

/* One id compare, and one map look-up with --cgroupmap (its ids match exactly, as bcc's); the
 * verifier drops what is not set (the flags are .rodata). */
static __always_inline bool cgroup_ok(const struct cgroup *cgrp)
{
	if (filter_cgroup && cgroup_ancestor_id(cgrp, filter_cgroup_level) != filter_cgroup)
		return false;
	return !filter_cgroup_map || in_set(&cgroup_map, cgroup_id_of(cgrp));
}

/* Attributed through the socket: the cgroup that created it, right in softirq too. */
static __always_inline bool sk_cgroup_ok(const struct sock *sk)
{
	return !cgroup_filtered() || (sk && cgroup_ok(sk_cgroup(sk)));
}

/* A packet: through its socket (skb->sk, set on transmit); a packet without one (received, below
 * the socket layer) belongs to no container and is left out while the filter is set. */
static __always_inline bool skb_cgroup_ok(const struct sk_buff *skb)
{
	return !cgroup_filtered() || sk_cgroup_ok(BPF_CORE_READ(skb, sk));
}

/* Attributed to the current task (events without a socket). */
static __always_inline bool current_cgroup_ok(void)
{
	return !cgroup_filtered() || cgroup_ok(current_cgroup());
}

/* --mntnsmap: the current task's mount namespace is in the set. Only in the process the event is
 * about (where -p's current_tgid() check is right too): in softirq the current task is another. */
static __always_inline bool current_mntns_ok(void)
{
	if (!filter_mntns_map)
		return true;
	struct task_struct *task = (void *)bpf_get_current_task();

	return in_set(&mntns_map, BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum));
}

#endif
