/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOFAMILY_H
#define NETBPF_SOFAMILY_H

#define SOFAMILY_CONNECT 0
#define SOFAMILY_ACCEPT 1

/* Count key: which call, by which process, for which address family. */
struct sofamily_key {
	char comm[16];
	__u16 family;
	__u8 call; /* SOFAMILY_CONNECT or SOFAMILY_ACCEPT */
	__u8 pad[5];
};

#endif
