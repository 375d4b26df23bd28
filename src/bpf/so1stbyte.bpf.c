// SPDX-License-Identifier: GPL-2.0
/* so1stbyte: time from an IP socket's connect() to the first read that returns data on it, as a
 * log2 histogram of microseconds per process, built in the kernel.
 *
 * A connect() on an AF_INET/AF_INET6 address starts a clock keyed by (process, fd) and remembers
 * the socket. The first read-family syscall on that fd returning > 0 stops it. The clock is
 * dropped when connect() fails at once, when the fd is closed, and when the fd no longer names
 * the same socket (dup2 over it, or a close we did not see): so a stale fd number never times an
 * unrelated read. A connect() again on a socket whose connection is under way (applications ask
 * a non-blocking socket for its result this way) keeps the first call's clock; one on a stream
 * socket we did not see start (already connected, say) starts none. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.bpf.h"
#include "so1stbyte.h"

char LICENSE[] SEC("license") = "GPL";

struct conn_key {
	__u32 pid;
	__s32 fd;
};

struct conn {
	__u64 start_ns;
	__u64 sk;
};

/* (process, fd) -> connect() time, until the first byte is read */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn);
} conns SEC(".maps");

/* thread in connect() -> fd */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} connecting SEC(".maps");

/* thread in a read of a timed fd -> fd */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} reading SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct so1stbyte_key);
	__type(value, struct hist);
} hists SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_connect")
int so1stbyte_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = current_tgid(), tid = current_tid();
	struct conn_key key = { .pid = pid, .fd = (__s32)ctx->args[0] };
	struct conn c = {}, *known;
	struct sock *sk;

	if (!tgid_ok(pid))
		return 0;
	if (!sk_is_inet(read_user_family((const void *)ctx->args[1])))
		return 0;
	sk = sock_from_fd(key.fd);
	if (!sk || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	if (sk_connect_started(sk)) {
		/* Its result asked for: the clock of the connect() that started it runs on. */
		known = bpf_map_lookup_elem(&conns, &key);
		if (!known || known->sk != (__u64)sk)
			return 0;
	} else {
		c.start_ns = bpf_ktime_get_ns();
		c.sk = (__u64)sk;
		bpf_map_update_elem(&conns, &key, &c, BPF_ANY);
	}
	bpf_map_update_elem(&connecting, &tid, &key.fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int so1stbyte_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	__s32 *fd = bpf_map_lookup_elem(&connecting, &tid);
	struct conn_key key = { .pid = current_tgid() };

	if (!fd)
		return 0;
	key.fd = *fd;
	bpf_map_delete_elem(&connecting, &tid);
	/* The connection failed. Not when it goes on: EINPROGRESS, EALREADY (still connecting),
	 * EISCONN (connected), or a signal's restart code. */
	if (ctx->ret < 0 && ctx->ret != -EINPROGRESS && ctx->ret != -EALREADY &&
	    ctx->ret != -EISCONN && !ret_is_restart(ctx->ret))
		bpf_map_delete_elem(&conns, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int so1stbyte_close(struct trace_event_raw_sys_enter *ctx)
{
	struct conn_key key = { .pid = current_tgid(), .fd = (__s32)ctx->args[0] };

	if (tgid_ok(key.pid))
		bpf_map_delete_elem(&conns, &key);
	return 0;
}

static __always_inline int on_read_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct conn_key key = { .pid = current_tgid(), .fd = (__s32)ctx->args[0] };
	__u32 tid;

	if (!tgid_ok(key.pid) || !bpf_map_lookup_elem(&conns, &key))
		return 0;
	tid = current_tid();
	bpf_map_update_elem(&reading, &tid, &key.fd, BPF_ANY);
	return 0;
}

static __always_inline int on_read_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	__s32 *fd = bpf_map_lookup_elem(&reading, &tid);
	struct conn_key key = { .pid = current_tgid() };
	struct so1stbyte_key hkey = {};
	struct conn *c;
	__u64 now = bpf_ktime_get_ns();

	if (!fd)
		return 0;
	key.fd = *fd;
	bpf_map_delete_elem(&reading, &tid);
	if (ctx->ret <= 0)
		return 0; /* no data yet (EAGAIN, error, end of stream): keep waiting */
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if ((__u64)sock_from_fd(key.fd) == c->sk) {
		hkey.pid = key.pid;
		bpf_get_current_comm(hkey.comm, sizeof(hkey.comm));
		hist_map_add(&hists, &hkey, (now - c->start_ns) / 1000);
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

#define READ_SYSCALL(name)                                                    \
	SEC("tracepoint/syscalls/sys_enter_" #name)                           \
	int so1stbyte_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                                     \
		return on_read_enter(ctx);                                    \
	}                                                                     \
	SEC("tracepoint/syscalls/sys_exit_" #name)                            \
	int so1stbyte_exit_##name(struct trace_event_raw_sys_exit *ctx)       \
	{                                                                     \
		return on_read_exit(ctx);                                     \
	}

READ_SYSCALL(read)
READ_SYSCALL(readv)
READ_SYSCALL(pread64)
READ_SYSCALL(preadv)
READ_SYSCALL(preadv2)
READ_SYSCALL(recvfrom)
READ_SYSCALL(recvmsg)
READ_SYSCALL(recvmmsg)
