/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOPROTOCOL_H
#define NETBPF_SOPROTOCOL_H

#define SOPROTOCOL_CONNECT 0
#define SOPROTOCOL_ACCEPT 1

/* Count key: which call, by which process, on which kind of socket. */
struct soprotocol_key {
	char comm[16];
	char kproto[32]; /* the kernel's protocol name, sk->sk_prot->name: "TCP", "UDPv6", ... */
	__u16 family;
	__u16 protocol; /* sk->sk_protocol: 16 bits, IPPROTO_MPTCP is 262 */
	__u8 call; /* SOPROTOCOL_CONNECT or SOPROTOCOL_ACCEPT */
	__u8 pad[3];
};

#endif
