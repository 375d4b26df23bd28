/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by BPF and user space (through the generated skeleton types). */
#ifndef NETBPF_SOCK_H
#define NETBPF_SOCK_H

/* An IPv4 or IPv6 connection as seen from this host; ports in host byte order. IPv4 addresses
 * sit in the first 4 bytes. */
struct sock_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad;
};

#endif
