// SPDX-License-Identifier: GPL-2.0
/* udpconnect: UDP sockets being connected (a default destination set with connect()).
 *
 * UDP connect() changes the socket without a state-change tracepoint, so the syscall is traced:
 * at entry the destination is copied from user memory and the socket checked to be UDP (ICMP
 * "ping" and raw sockets share the kernel's datagram connect code; they are left out); at exit
 * a successful connect is reported with the local address the kernel picked. An unconnected
 * sendto() never passes here. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.bpf.h"
#include "udpconnect.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(udpconnect_event);

struct pending {
	struct user_sockaddr raddr;
	__u64 sk;
};

/* thread in connect() on a UDP socket -> destination and socket */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct pending);
} connecting SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_connect")
int udpconnect_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct pending p = {};
	struct sock *sk;
	__u32 tid = current_tid();

	if (!tgid_ok(current_tgid()))
		return 0;
	sk = sock_from_fd((int)ctx->args[0]);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_UDP ||
	    BPF_CORE_READ(sk, sk_type) != SOCK_DGRAM || !netns_ok(sk_netns_cookie(sk)))
		return 0;
	if (!sk_is_inet(read_user_sockaddr((const void *)ctx->args[1], &p.raddr)))
		return 0; /* AF_UNSPEC dissolves the association: not a connect */
	p.sk = (__u64)sk;
	bpf_map_update_elem(&connecting, &tid, &p, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int udpconnect_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct pending *p = bpf_map_lookup_elem(&connecting, &tid);
	struct udpconnect_event *e;
	struct sock_tuple t = {};

	if (!p)
		return 0;
	if (ctx->ret == 0) {
		e = reserve_event(sizeof(*e));
		if (e) {
			/* The socket is alive: connect() holds a reference on its file. */
			sk_read_tuple((struct sock *)p->sk, &t);
			e->raddr = p->raddr;
			__builtin_memcpy(e->laddr, t.saddr, sizeof(e->laddr));
			e->lport = t.lport;
			e->family = t.family;
			e->ts_ns = bpf_ktime_get_ns();
			e->pid = current_tgid();
			bpf_get_current_comm(e->comm, sizeof(e->comm));
			submit_event(e);
		}
	}
	bpf_map_delete_elem(&connecting, &tid);
	return 0;
}
