/* SPDX-License-Identifier: GPL-2.0 */
/* Socket addresses passed to syscalls, read from user memory (copy them at syscall entry: the
 * buffer can change before the syscall returns), or from the kernel's copy of them. */
#ifndef NETBPF_SOCKADDR_BPF_H
#define NETBPF_SOCKADDR_BPF_H

#include "common/sockaddr.h"

/* The address family of a user sockaddr (AF_UNSPEC is 0), or -1 when it could not be read. */
static __always_inline int read_user_family(const void *uaddr)
{
	__u16 family = 0;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), uaddr))
		return -1;
	return family;
}

static __always_inline long read_addr_mem(void *dst, __u32 size, const void *src, bool user)
{
	return user ? bpf_probe_read_user(dst, size, src) : bpf_probe_read_kernel(dst, size, src);
}

/* Reads family, port (host order) and address of a sockaddr in user memory (`user`) or in the
 * kernel's copy of it. Returns the family, or 0 when the memory could not be read. */
static __always_inline __u16 read_sockaddr(const void *addr, struct user_sockaddr *out, bool user)
{
	struct sockaddr_in6 sa6 = {};
	struct sockaddr_in *sa4 = (struct sockaddr_in *)&sa6;

	__builtin_memset(out, 0, sizeof(*out));
	if (!addr || read_addr_mem(&sa6.sin6_family, sizeof(sa6.sin6_family), addr, user))
		return 0;
	out->family = sa6.sin6_family;
	if (out->family == AF_INET) {
		if (read_addr_mem(sa4, sizeof(*sa4), addr, user))
			return 0;
		out->port = bpf_ntohs(sa4->sin_port);
		__builtin_memcpy(out->addr, &sa4->sin_addr.s_addr, 4);
	} else if (out->family == AF_INET6) {
		if (read_addr_mem(&sa6, sizeof(sa6), addr, user))
			return 0;
		out->port = bpf_ntohs(sa6.sin6_port);
		__builtin_memcpy(out->addr, &sa6.sin6_addr, 16);
	}
	return out->family;
}

static __always_inline __u16 read_user_sockaddr(const void *uaddr, struct user_sockaddr *out)
{
	return read_sockaddr(uaddr, out, true);
}

/* A sockaddr the kernel copied in (the argument of a protocol's connect function). */
static __always_inline __u16 read_kernel_sockaddr(const void *kaddr, struct user_sockaddr *out)
{
	return read_sockaddr(kaddr, out, false);
}

#endif
