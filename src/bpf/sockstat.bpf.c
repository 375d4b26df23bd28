// SPDX-License-Identifier: GPL-2.0
/* sockstat: counts of socket syscalls and socket I/O, summed per CPU in the kernel; user space
 * reads the running totals every interval and prints the differences.
 *
 * Syscalls are counted at entry and filtered by the calling task's network namespace (no socket
 * exists yet for socket()/socketpair()). Socket I/O is counted where the kernel hands a message to
 * the protocol: the sock:sock_{send,recv}_length tracepoints (Linux 6.3+, every send/recv path),
 * or, on older kernels, around sock_sendmsg()/sock_recvmsg() (the book's hooks) by fentry or
 * kprobe, as common/sockmsg.bpf.h explains; it is filtered by the socket's own namespace. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockmsg.bpf.h"
#include "sockstat.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SOCKSTAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &slot);

	if (n)
		*n += 1; /* per-CPU slot: no other writer */
}

static __always_inline int count_syscall(__u32 slot)
{
	if (tgid_ok(current_tgid()) && current_netns_ok() && current_cgroup_ok())
		count(slot);
	return 0;
}

static __always_inline int count_io(const struct sock *sk, __u32 slot)
{
	if (tgid_ok(current_tgid()) && sk_netns_ok(sk) && sk_cgroup_ok(sk))
		count(slot);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int sockstat_accept(void *ctx)
{
	return count_syscall(SOCKSTAT_ACCEPT);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int sockstat_accept4(void *ctx)
{
	return count_syscall(SOCKSTAT_ACCEPT4);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sockstat_connect(void *ctx)
{
	return count_syscall(SOCKSTAT_CONNECT);
}

SEC("tracepoint/syscalls/sys_enter_bind")
int sockstat_bind(void *ctx)
{
	return count_syscall(SOCKSTAT_BIND);
}

SEC("tracepoint/syscalls/sys_enter_socket")
int sockstat_socket(void *ctx)
{
	return count_syscall(SOCKSTAT_SOCKET);
}

SEC("tracepoint/syscalls/sys_enter_socketpair")
int sockstat_socketpair(void *ctx)
{
	return count_syscall(SOCKSTAT_SOCKETPAIR);
}

/* Plan "tracepoint": every message handed to a protocol, whatever the syscall. */
SEC("tracepoint/sock/sock_send_length")
int sockstat_send_tp(struct trace_event_raw_sock_msg_length *ctx)
{
	return count_io(ctx->sk, SOCKSTAT_SEND);
}

SEC("tracepoint/sock/sock_recv_length")
int sockstat_recv_tp(struct trace_event_raw_sock_msg_length *ctx)
{
	return count_io(ctx->sk, SOCKSTAT_RECV);
}

/* Plans "fentry" and "kprobe" (kernels before 6.3): see common/sockmsg.bpf.h. */
static __always_inline void sockmsg_seen(struct sock *sk, long ret, __u32 dir)
{
	count_io(sk, dir == SOCKMSG_SEND ? SOCKSTAT_SEND : SOCKSTAT_RECV);
}
