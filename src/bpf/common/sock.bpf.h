/* SPDX-License-Identifier: GPL-2.0 */
/* Reading sockets: addresses of a struct sock and the fd -> sock walk (its namespace: netns.bpf.h). */
#ifndef NETBPF_SOCK_BPF_H
#define NETBPF_SOCK_BPF_H

#include "common/netns.bpf.h"
#include "common/sock.h"

/* The inode number of sk's network namespace, as `lsns` and /proc/PID/ns/net show it. */
static __always_inline __u32 sk_netns_ino(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Fills family, ports (host order) and both addresses of an inet sock. The local port comes from
 * inet_sport, not skc_num: on the way to TCP_CLOSE the kernel releases the port (skc_num = 0)
 * before the state-change tracepoint fires. */
static __always_inline void sk_read_tuple(const struct sock *sk, struct sock_tuple *t)
{
	t->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (t->family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		/* Typed as __u32 so exactly 4 bytes are copied (the macro copies sizeof(*dst)). */
		BPF_CORE_READ_INTO((__u32 *)t->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t->daddr, sk, __sk_common.skc_daddr);
	}
}

/* The kernel's name for sk's protocol (its struct proto: "TCP", "UDPv6", "UNIX-STREAM", "MPTCP",
 * ...), NUL-terminated in buf; empty when unknown. */
static __always_inline void sk_proto_name(const struct sock *sk, char *buf, __u32 size)
{
	struct proto *prot = sk ? BPF_CORE_READ(sk, __sk_common.skc_prot) : NULL;

	buf[0] = 0;
	if (prot)
		bpf_probe_read_kernel_str(buf, size, prot->name);
}

/* Whether a connect() on sk asks about a connection already under way (or made) rather than
 * starting one: a stream socket that has left TCP_CLOSE. Applications call connect() again on a
 * non-blocking socket to learn its result; that call (0, EALREADY, EISCONN) is no new connection. */
static __always_inline bool sk_connect_started(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_type) == SOCK_STREAM &&
	       BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_CLOSE;
}

static __always_inline bool addr_is_v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;

	return !w[0] && !w[1] && w[2] == bpf_htonl(0xffff);
}

/* An AF_INET6 socket talking to an IPv4 peer (a dual-stack socket: ::ffff:a.b.c.d) carries
 * IPv4 traffic: rewrites such a tuple as AF_INET, IPv4 addresses in the first 4 bytes, so that
 * family filters (-4/-6) and keys treat it as the IPv4 connection it is. A listener (no remote
 * address) is unmapped by its local address. */
static __always_inline void tuple_unmap_v4(struct sock_tuple *t)
{
	const __u32 *d = (const __u32 *)t->daddr;
	bool remote_unset = !d[0] && !d[1] && !d[2] && !d[3];

	if (t->family != AF_INET6 || !addr_is_v4_mapped(remote_unset ? t->saddr : t->daddr))
		return;
	t->family = AF_INET;
	__builtin_memcpy(t->saddr, &t->saddr[12], 4);
	__builtin_memcpy(t->daddr, &t->daddr[12], 4);
	__builtin_memset(&t->saddr[4], 0, 12);
	__builtin_memset(&t->daddr[4], 0, 12);
}

static __always_inline bool sk_is_inet(__u16 family)
{
	return family == AF_INET || family == AF_INET6;
}

/* Current task's fd -> struct sock, or NULL when fd is not a socket. Best effort: the fd table may
 * change under us; reads are probe reads, so a race yields NULL or a stale sock, never a fault. */
static __always_inline struct sock *sock_from_fd(int fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;

	if (fd < 0 || !fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

#endif
