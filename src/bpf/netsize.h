/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_NETSIZE_H
#define NETBPF_NETSIZE_H

#include "common/hist.h"

/* The four measuring points, as indexes of the per-CPU histogram array. */
enum netsize_point {
	NETSIZE_RECV = 0,     /* net:netif_receive_skb, into the stack */
	NETSIZE_SEND = 1,     /* net:net_dev_queue, out of the stack */
	NETSIZE_NIC_RECV = 2, /* net:napi_gro_receive_entry, from the driver */
	NETSIZE_NIC_SEND = 3, /* net:net_dev_xmit, to the driver */
	NETSIZE_POINTS = 4,
};

#endif
