/* SPDX-License-Identifier: GPL-2.0 */
/* The id of a network namespace, as every tool filters and keys by it, and the --netns checks.
 *
 * The id is the namespace's cookie where struct net carries it as a u64 (5.12 on: set when the
 * namespace is made, unique for the life of the system), else its nsfs inode (what
 * `ls -l /proc/PID/ns/net` shows; every kernel has it). Before 5.12 the cookie is an atomic64_t
 * assigned lazily, so it is 0 for nearly every namespace there: it is not read. User space makes
 * the same choice from kernel BTF (core/netns.rs), so --netns, keys and output agree. */
#ifndef NETBPF_NETNS_BPF_H
#define NETBPF_NETNS_BPF_H

#include "common/filter.bpf.h"

static __always_inline __u64 net_id(const struct net *net)
{
	if (!net)
		return 0;
	/* libbpf matches a field only with a compatible type: this existence check of the u64
	 * field is false where the field is the older atomic64_t (a struct), so the read below is
	 * dead code there and its failed relocation is never reached. */
	if (bpf_core_field_exists(net->net_cookie))
		return BPF_CORE_READ(net, net_cookie);
	return BPF_CORE_READ(net, ns.inum);
}

static __always_inline __u64 sk_netns_id(const struct sock *sk)
{
	return net_id(BPF_CORE_READ(sk, __sk_common.skc_net.net));
}

static __always_inline __u64 dev_netns_id(const struct net_device *dev)
{
	return dev ? net_id(BPF_CORE_READ(dev, nd_net.net)) : 0;
}

static __always_inline __u64 current_netns_id(void)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return net_id(BPF_CORE_READ(task, nsproxy, net_ns));
}

/* --netns checks: the namespace is read only when the filter is set. */
static __always_inline bool sk_netns_ok(const struct sock *sk)
{
	return !filter_netns || (sk && sk_netns_id(sk) == filter_netns);
}

static __always_inline bool dev_netns_ok(const struct net_device *dev)
{
	return !filter_netns || dev_netns_id(dev) == filter_netns;
}

static __always_inline bool current_netns_ok(void)
{
	return !filter_netns || current_netns_id() == filter_netns;
}

/* Whether sk is a TCP socket in the namespace and cgroup the filters ask for (the first test of
 * the tools that follow sockets through inet_sock_set_state); its namespace's id in *netns. */
static __always_inline bool tcp_sk_selected(const struct sock *sk, __u64 *netns)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	*netns = sk_netns_id(sk);
	return netns_ok(*netns) && sk_cgroup_ok(sk);
}

#endif
