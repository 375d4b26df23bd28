/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_BINDSNOOP_H
#define NETBPF_BINDSNOOP_H

/* Socket options in force at bind() that change what it may do (bits of bindsnoop_event.opts). */
#define BIND_OPT_FREEBIND 1 /* IP_FREEBIND */
#define BIND_OPT_TRANSPARENT 2 /* IP_TRANSPARENT */
#define BIND_OPT_NO_PORT 4 /* IP_BIND_ADDRESS_NO_PORT */
#define BIND_OPT_REUSEADDR 8 /* SO_REUSEADDR */
#define BIND_OPT_REUSEPORT 16 /* SO_REUSEPORT */

/* One bind() on an IPv4/IPv6 socket, reported when it returns. */
struct bindsnoop_event {
	__u8 addr[16]; /* the address asked for (IPv4 in the first 4 bytes) */
	__u64 ts_ns; /* bpf_ktime_get_ns() at return */
	__u32 pid;
	__u32 uid;
	__s32 ret; /* 0 or -errno */
	__s32 bound_dev_if; /* SO_BINDTODEVICE's interface index, 0 for none */
	__u16 family; /* the address's family (AF_INET, AF_INET6) */
	__u16 port; /* the port bound (the kernel's pick for port 0); on failure, the one asked */
	__u16 protocol; /* IPPROTO_* of the socket */
	__u16 opts; /* BIND_OPT_* */
	char comm[16];
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
};

#endif
