// SPDX-License-Identifier: GPL-2.0
/* socketio: socket send/receive calls counted in the kernel per process, direction, protocol and
 * port.
 *
 * The port: a TCP socket whose local port came from bind() or listen() (a server's connections
 * share their listener's port) is counted by that local port, others by their remote port: a
 * server's calls count under its service port instead of one line per client's ephemeral port,
 * a client's under the server's port. The kernel tells them apart by the port's bind bucket:
 * connect() makes the buckets of the ports it picks with fastreuse = -1, which bind() and
 * listen() never set.
 *
 * Three ways to see a call, one per plan (the unused ones are not loaded):
 * - tp_btf sock_send_length / sock_recv_length (6.3+): fired for every sendmsg/recvmsg a socket
 *   gets, whatever the path (write, send*, read, recv*, splice, sendmmsg's each message).
 * - fentry/fexit, or kprobes, around sock_sendmsg() / sock_recvmsg() (the book's hooks) on
 *   older kernels: every message of the same paths, as common/sockmsg.bpf.h explains (before
 *   6.5, splice(2) and sendfile(2) to a socket use sendpage, which neither plan sees). */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/maps.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockmsg.bpf.h"
#include "socketio.h"

char LICENSE[] SEC("license") = "GPL";

/* Whether sk is a TCP socket on a port of its own choosing (bound, or listening): its bind
 * bucket was not made by connect(), which marks its buckets fastreuse = -1. */
static __always_inline bool tcp_port_chosen(const struct sock *sk)
{
	const struct inet_connection_sock *icsk = (const struct inet_connection_sock *)sk;
	const struct inet_bind_bucket *tb;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	tb = BPF_CORE_READ(icsk, icsk_bind_hash);
	return tb && BPF_CORE_READ(tb, fastreuse) != -1;
}

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct socketio_key);
	__type(value, __u64);
} io SEC(".maps");

static __always_inline void count_io(struct sock *sk, __u8 dir)
{
	struct socketio_key key = {};
	__u32 pid = current_tgid();

	if (!sk || !tgid_ok(pid) || !sk_netns_ok(sk))
		return;
	if (!sk_cgroup_ok(sk))
		return;
	key.pid = pid;
	key.dir = dir;
	if (tcp_port_chosen(sk))
		key.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	else
		key.rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	sk_proto_name(sk, key.proto, sizeof(key.proto));
	key.cgroup = sk_cgroup_id(sk);
	counter_add(&io, &key, 1);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(socketio_send, struct sock *sk, int ret, int flags)
{
	count_io(sk, SOCKETIO_WRITE);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(socketio_recv, struct sock *sk, int ret, int flags)
{
	count_io(sk, SOCKETIO_READ);
	return 0;
}

/* Plans fentry and kprobe (before 6.3): see common/sockmsg.bpf.h. */
static __always_inline void sockmsg_seen(struct sock *sk, long ret, __u32 dir)
{
	count_io(sk, dir == SOCKMSG_SEND ? SOCKETIO_WRITE : SOCKETIO_READ);
}
