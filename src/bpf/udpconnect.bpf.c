// SPDX-License-Identifier: GPL-2.0
/* udpconnect: UDP sockets being connected (a default destination set with connect()).
 *
 * UDP connect() changes the socket without a state-change tracepoint. Three plans:
 * - fexit, or kprobe + kretprobe, on the .connect of udp_prot and udpv6_prot: ip4_datagram_connect /
 *   ip6_datagram_connect (as the book traced), or udp_connect / udpv6_connect from 6.13 on (user
 *   space points the programs there): every connect of a UDP socket, io_uring's included, with
 *   the kernel's copy of the address and the result;
 * - the connect syscall: at entry the destination is copied from user memory and the socket
 *   checked to be UDP; at exit a successful connect is reported.
 * ICMP "ping" and raw sockets share the datagram connect code: they are left out. Either way the
 * local address is the one the kernel picked. An unconnected sendto() never passes here. */
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

static __always_inline bool udp_wanted(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_protocol) == IPPROTO_UDP &&
	       BPF_CORE_READ(sk, sk_type) == SOCK_DGRAM && tgid_ok(current_tgid()) &&
	       sk_netns_ok(sk) && sk_cgroup_ok(sk);
}

static __always_inline void report_connected(struct sock *sk, const struct user_sockaddr *raddr)
{
	struct udpconnect_event *e;
	struct sock_tuple t = {};

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->cgroup = sk_cgroup_id(sk);
	sk_read_tuple(sk, &t);
	e->raddr = *raddr;
	__builtin_memcpy(e->laddr, t.saddr, sizeof(e->laddr));
	e->lport = t.lport;
	e->family = t.family;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	submit_event(e);
}

/* A connect returned ret: reported when it succeeded (the socket is alive: connect() holds a
 * reference on its file). */
static __always_inline void connect_returned(int ret)
{
	__u32 tid = current_tid();
	struct pending *p = bpf_map_lookup_elem(&connecting, &tid);

	if (!p)
		return;
	if (ret == 0)
		report_connected((struct sock *)p->sk, &p->raddr);
	bpf_map_delete_elem(&connecting, &tid);
}

/* ---- tracepoint plan: the connect syscall. */

SEC("tracepoint/syscalls/sys_enter_connect")
int udpconnect_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct pending p = {};
	struct sock *sk;
	__u32 tid = current_tid();

	if (!tgid_ok(current_tgid()))
		return 0;
	sk = sock_from_fd((int)ctx->args[0]);
	if (!sk || !udp_wanted(sk))
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
	connect_returned(ctx->ret);
	return 0;
}

/* ---- fexit and kprobe plans: the protocol's connect function itself. */

static __always_inline void fexit_connected(struct sock *sk, const struct sockaddr *uaddr, int ret)
{
	struct user_sockaddr raddr;

	if (ret || !udp_wanted(sk) || !sk_is_inet(read_kernel_sockaddr(uaddr, &raddr)))
		return;
	report_connected(sk, &raddr);
}

SEC("fexit/ip4_datagram_connect")
int BPF_PROG(udpconnect_fexit4, struct sock *sk, struct sockaddr *uaddr, int addr_len, int ret)
{
	fexit_connected(sk, uaddr, ret);
	return 0;
}

SEC("fexit/ip6_datagram_connect")
int BPF_PROG(udpconnect_fexit6, struct sock *sk, struct sockaddr *uaddr, int addr_len, int ret)
{
	fexit_connected(sk, uaddr, ret);
	return 0;
}

/* The address lives in the caller's frame (sockaddr_storage of __sys_connect or io_uring's
 * request) until the function returns: copied at entry all the same. */
static __always_inline void kprobe_connecting(struct sock *sk, const struct sockaddr *uaddr)
{
	struct pending p = {};
	__u32 tid = current_tid();

	if (!udp_wanted(sk) || !sk_is_inet(read_kernel_sockaddr(uaddr, &p.raddr)))
		return;
	p.sk = (__u64)sk;
	bpf_map_update_elem(&connecting, &tid, &p, BPF_ANY);
}

SEC("kprobe/ip4_datagram_connect")
int BPF_KPROBE(udpconnect_kprobe4, struct sock *sk, struct sockaddr *uaddr)
{
	kprobe_connecting(sk, uaddr);
	return 0;
}

SEC("kprobe/ip6_datagram_connect")
int BPF_KPROBE(udpconnect_kprobe6, struct sock *sk, struct sockaddr *uaddr)
{
	kprobe_connecting(sk, uaddr);
	return 0;
}

SEC("kretprobe/ip4_datagram_connect")
int BPF_KRETPROBE(udpconnect_kretprobe4, int ret)
{
	connect_returned(ret);
	return 0;
}

SEC("kretprobe/ip6_datagram_connect")
int BPF_KRETPROBE(udpconnect_kretprobe6, int ret)
{
	connect_returned(ret);
	return 0;
}
