// SPDX-License-Identifier: GPL-2.0
/* soprotocol: connect() and accept() counts by process and transport protocol, summed in the
 * kernel. The socket is found from the syscall's fd: for connect() the connecting socket, at
 * entry (attempts, failed ones included); for accept() the socket it returned, at exit (so an
 * accept that found nothing is not counted, and the protocol is the new connection's). */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/maps.bpf.h"
#include "common/sock.bpf.h"
#include "soprotocol.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct soprotocol_key);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(__u8 call, int fd)
{
	struct soprotocol_key key = { .call = call };
	struct sock *sk;

	if (!tgid_ok(current_tgid()))
		return;
	sk = sock_from_fd(fd);
	if (!sk || !sk_netns_ok(sk))
		return;
	if (!sk_cgroup_ok(sk))
		return;
	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key.protocol = BPF_CORE_READ(sk, sk_protocol);
	sk_proto_name(sk, key.kproto, sizeof(key.kproto));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	counter_add(&counts, &key, 1);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int soprotocol_connect(struct trace_event_raw_sys_enter *ctx)
{
	count(SOPROTOCOL_CONNECT, (int)ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int soprotocol_accept(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		count(SOPROTOCOL_ACCEPT, ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int soprotocol_accept4(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret >= 0)
		count(SOPROTOCOL_ACCEPT, ctx->ret);
	return 0;
}
