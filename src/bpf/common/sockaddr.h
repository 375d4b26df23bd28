/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCKADDR_H
#define NETBPF_SOCKADDR_H

/* A user-space sockaddr as read at a syscall: port in host order; addr holds the IPv4 address
 * in its first 4 bytes, or the IPv6 address. Other families: family only. */
struct user_sockaddr {
	__u8 addr[16];
	__u16 family;
	__u16 port;
};

#endif
