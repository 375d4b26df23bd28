/* SPDX-License-Identifier: GPL-2.0 */
/* Device-level filters: an interface name and the device's network namespace. For tools hooked
 * where there is an skb and a net_device but not always a socket (net:*, skb:* tracepoints). */
#ifndef NETBPF_NETDEV_BPF_H
#define NETBPF_NETDEV_BPF_H

#include "common/filter.bpf.h"
#include "common/netns.bpf.h"

#define IFNAMSIZ 16

/* Set by user space before load; an empty name means every interface. */
const volatile char filter_ifname[IFNAMSIZ] = {};

static __always_inline bool ifname_ok(const struct net_device *dev)
{
	char name[IFNAMSIZ];

	if (!filter_ifname[0])
		return true;
	if (!dev || BPF_CORE_READ_INTO(&name, dev, name))
		return false;
	for (int i = 0; i < IFNAMSIZ; i++) {
		if (name[i] != filter_ifname[i])
			return false;
		if (!name[i])
			break;
	}
	return true;
}

/* The interface and netns filters for a device; a NULL device passes only when neither is set. */
static __always_inline bool dev_ok(const struct net_device *dev)
{
	if (!dev)
		return !filter_netns && !filter_ifname[0];
	return dev_netns_ok(dev) && ifname_ok(dev);
}

#endif
