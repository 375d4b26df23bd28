// SPDX-License-Identifier: GPL-2.0
/* bindsnoop: bind() on IP sockets, with the address and port asked for, the port bound, the
 * socket options that change what bind may do, and the result.
 *
 * At entry: the socket (fd -> sock), the caller's sockaddr (copied then: the buffer may change)
 * and the options, as they stand before the call. At exit: the result and, on success, the port
 * the kernel bound (its own pick when port 0 was asked). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/sockaddr.bpf.h"
#include "common/sock_call.bpf.h"
#include "bindsnoop.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(bindsnoop_event);

/* Failed binds too (-x). */
const volatile bool with_failed = false;
/* Only this user (-u); (u32)-1: every user. */
const volatile __u32 filter_uid = (__u32)-1;

/* Before 6.6 the inet options were bit fields of inet_sock. */
struct inet_sock___bits {
	__u8 freebind : 1;
	__u8 transparent : 1;
	__u8 bind_address_no_port : 1;
} __attribute__((preserve_access_index));

static __always_inline __u16 bind_options(struct sock *sk)
{
	struct inet_sock *inet = (struct inet_sock *)sk;
	__u16 opts = 0;

	if (bpf_core_field_exists(inet->inet_flags)) {
		/* The bit numbers are an anonymous enum (no CO-RE relocation); unchanged since the
		 * flags word came in 6.6. */
		__u64 flags = BPF_CORE_READ(inet, inet_flags);

		if (flags & (1ULL << INET_FLAGS_FREEBIND))
			opts |= BIND_OPT_FREEBIND;
		if (flags & (1ULL << INET_FLAGS_TRANSPARENT))
			opts |= BIND_OPT_TRANSPARENT;
		if (flags & (1ULL << INET_FLAGS_BIND_ADDRESS_NO_PORT))
			opts |= BIND_OPT_NO_PORT;
	} else {
		struct inet_sock___bits *old = (void *)sk;

		if (BPF_CORE_READ_BITFIELD_PROBED(old, freebind))
			opts |= BIND_OPT_FREEBIND;
		if (BPF_CORE_READ_BITFIELD_PROBED(old, transparent))
			opts |= BIND_OPT_TRANSPARENT;
		if (BPF_CORE_READ_BITFIELD_PROBED(old, bind_address_no_port))
			opts |= BIND_OPT_NO_PORT;
	}
	if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuse))
		opts |= BIND_OPT_REUSEADDR;
	if (BPF_CORE_READ_BITFIELD_PROBED(&sk->__sk_common, skc_reuseport))
		opts |= BIND_OPT_REUSEPORT;
	return opts;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int bindsnoop_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct sock_call c = {};
	struct sock *sk;

	if (filter_uid != (__u32)-1 && (__u32)bpf_get_current_uid_gid() != filter_uid)
		return 0;
	sk = filtered_inet_sock((int)ctx->args[0]);
	if (!sk)
		return 0;
	read_user_sockaddr((const void *)ctx->args[1], &c.addr);
	c.sk = (__u64)sk;
	c.opts = bind_options(sk);
	sock_call_enter(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int bindsnoop_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct sock *sk;
	struct sock_call c;
	struct bindsnoop_event *e;
	__u16 port;

	if (!sock_call_exit(&c))
		return 0;
	if (ctx->ret && !with_failed)
		return 0;
	sk = (struct sock *)c.sk;
	/* bind() holds the socket's file: sk is alive. */
	port = ctx->ret ? c.addr.port : BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!lport_ok(port))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memcpy(e->addr, c.addr.addr, sizeof(e->addr));
	e->family = c.addr.family ?: BPF_CORE_READ(sk, __sk_common.skc_family);
	e->port = port;
	e->opts = c.opts;
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	e->bound_dev_if = BPF_CORE_READ(sk, __sk_common.skc_bound_dev_if);
	e->ret = ctx->ret;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->cgroup = event_cgroup_id(sk);
	submit_event(e);
	return 0;
}
