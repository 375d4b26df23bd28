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
const volatile __u16 filter_family = 0; /* AF_INET or AF_INET6 */
const volatile __u16 filter_lports[MAX_FILTER_PORTS] = {};
const volatile __u16 filter_rports[MAX_FILTER_PORTS] = {};

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

/* One id compare when set; the verifier drops it all when not (filter_cgroup is .rodata). */
static __always_inline bool cgroup_ok(const struct cgroup *cgrp)
{
	return !filter_cgroup || cgroup_ancestor_id(cgrp, filter_cgroup_level) == filter_cgroup;
}

/* Attributed through the socket: the cgroup that created it, right in softirq too. */
static __always_inline bool sk_cgroup_ok(const struct sock *sk)
{
	return !filter_cgroup || (sk && cgroup_ok(sk_cgroup(sk)));
}

/* A packet: through its socket (skb->sk, set on transmit); a packet without one (received, below
 * the socket layer) belongs to no container and is left out while the filter is set. */
static __always_inline bool skb_cgroup_ok(const struct sk_buff *skb)
{
	return !filter_cgroup || sk_cgroup_ok(BPF_CORE_READ(skb, sk));
}

/* Attributed to the current task (events without a socket). */
static __always_inline bool current_cgroup_ok(void)
{
	return !filter_cgroup || cgroup_ok(current_cgroup());
}

#endif
