/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCKSTAT_H
#define NETBPF_SOCKSTAT_H

/* Slots of the per-CPU counter array: one per traced call. */
enum sockstat_slot {
	SOCKSTAT_ACCEPT,
	SOCKSTAT_ACCEPT4,
	SOCKSTAT_CONNECT,
	SOCKSTAT_BIND,
	SOCKSTAT_SOCKET,
	SOCKSTAT_SOCKETPAIR,
	SOCKSTAT_SEND,
	SOCKSTAT_RECV,
	SOCKSTAT_SLOTS,
};

#endif
