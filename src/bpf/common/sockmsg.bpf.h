/* SPDX-License-Identifier: GPL-2.0 */
/* Every message a socket's protocol is handed (its sendmsg or recvmsg), with the socket and the
 * protocol's result, on kernels without the sock:sock_{send,recv}_length tracepoints (before
 * 6.3): the fentry and kprobe plans of sockstat, socketio and socksize.
 *
 * Receiving: sock_recvmsg() sees every message (it is exported, never inlined) but those after
 * the first of a recvmmsg(2), which ____sys_recvmsg() hands over itself (nosec): both are hooked.
 *
 * Sending is harder:
 * - Since "net: prevent rewrite of msg_name in sock_sendmsg()" (6.6, backported to the stable
 *   kernels down to 4.14), write(2), send(2)/sendto(2) and sendmsg(2) call __sock_sendmsg(),
 *   not sock_sendmsg(), which only kernel users still call. __sock_sendmsg() is static: some
 *   builds keep it (Debian's 6.1: it is hooked, and sees every send), others inline it into its
 *   callers (Debian's 6.12).
 * - Without __sock_sendmsg() (inlined, or a kernel before the fix) a message is seen in two
 *   steps: security_socket_sendmsg() returned 0 (every sending path calls it, and it is never
 *   inlined), which notes the socket for the thread; then the innermost of sock_sendmsg(),
 *   sock_write_iter(), __sys_sendto() and ____sys_sendmsg() to return takes the note with the
 *   protocol's result, so the callers further out find none and each message counts once,
 *   whichever of them the kernel inlined. These programs are named sockmsg_*_lsm_*.
 * - sendmmsg(2) sends a message to the same address as the one before it without the LSM check
 *   and without __sock_sendmsg(): ____sys_sendmsg()'s entry notes it (tested as the kernel tests
 *   it), its return takes the note.
 * A call the LSM refuses counts where __sock_sendmsg() or sock_recvmsg() is hooked (with the
 * LSM's error), not with the tracepoints; an early failure (bad fd, EFAULT) never counts.
 *
 * The tool defines sockmsg_seen() after including this file. Programs are named sockmsg_fx_*
 * (fentry/fexit) and sockmsg_kp_* (kprobes); user space loads one set (tools/sockmsg.rs), less
 * the programs whose function this kernel does not have, and less sockmsg_*_lsm_* where
 * __sock_sendmsg() exists. */
#ifndef NETBPF_SOCKMSG_BPF_H
#define NETBPF_SOCKMSG_BPF_H

#include "common/filter.bpf.h"

#define SOCKMSG_RECV 0
#define SOCKMSG_SEND 1

/* Defined by the tool: one message handed to sk's protocol, and the protocol's result. */
static __always_inline void sockmsg_seen(struct sock *sk, long ret, __u32 dir);

struct sockmsg_key {
	__u32 tid;
	__u32 dir;
};

/* (thread, direction) -> the socket a message is on its way to (step 1) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sockmsg_key);
	__type(value, __u64);
} sockmsg_pending SEC(".maps");

/* kprobe plan: (thread, direction) -> the socket in security_socket_*msg(), until it returns */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sockmsg_key);
	__type(value, __u64);
} sockmsg_checking SEC(".maps");

static __always_inline struct sock *sockmsg_sk(struct socket *sock)
{
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* Step 1: a message is on its way to sk's protocol. */
static __always_inline void sockmsg_note(struct sock *sk, __u32 dir)
{
	struct sockmsg_key key = { .tid = current_tid(), .dir = dir };
	__u64 skp = (__u64)sk;

	if (sk && tgid_ok(current_tgid()))
		bpf_map_update_elem(&sockmsg_pending, &key, &skp, BPF_ANY);
}

/* Step 2: the innermost return after a note hands the message over, once. `sk`, when the
 * function tells it, must be the noted socket: a note left by a message no function here
 * returned for (a path this file does not know) is dropped rather than given this result. */
static __always_inline void sockmsg_done(struct sock *sk, long ret, __u32 dir)
{
	struct sockmsg_key key = { .tid = current_tid(), .dir = dir };
	__u64 *noted = bpf_map_lookup_elem(&sockmsg_pending, &key);
	struct sock *nsk;

	if (!noted)
		return;
	nsk = (struct sock *)*noted;
	bpf_map_delete_elem(&sockmsg_pending, &key);
	if (sk && sk != nsk)
		return;
	sockmsg_seen(nsk, ret, dir);
}

/* ____sys_sendmsg() skips the LSM check when sendmmsg(2) sends to the address the previous
 * message went to: the kernel's test, on its copies of both addresses. */
static __always_inline bool sendmmsg_skips_lsm(struct msghdr *msg, struct used_address *used)
{
	char a[sizeof(struct __kernel_sockaddr_storage)], b[sizeof(a)];
	void *name;
	int len;

	if (!used)
		return false;
	name = BPF_CORE_READ(msg, msg_name);
	len = BPF_CORE_READ(msg, msg_namelen);
	if (!name || len <= 0 || len > (int)sizeof(a) || BPF_CORE_READ(used, name_len) != (unsigned int)len)
		return false;
	/* Both are whole sockaddr_storage buffers (the kernel's copy of the user's address, and
	 * used_address's), so reading the full size is safe. */
	if (bpf_probe_read_kernel(a, sizeof(a), name) || bpf_probe_read_kernel(b, sizeof(b), &used->name))
		return false;
	for (int i = 0; i < (int)sizeof(a); i++) {
		if (i >= len)
			break;
		if (a[i] != b[i])
			return false;
	}
	return true;
}

/* ---- fentry/fexit plan ---- */

SEC("fexit/sock_recvmsg")
int BPF_PROG(sockmsg_fx_recv, struct socket *sock, struct msghdr *msg, int flags, int ret)
{
	if (tgid_ok(current_tgid()))
		sockmsg_seen(sockmsg_sk(sock), ret, SOCKMSG_RECV);
	return 0;
}

SEC("fexit/____sys_recvmsg")
int BPF_PROG(sockmsg_fx_mmsg_recv, struct socket *sock, struct msghdr *msg, void *umsg, void *uaddr,
	     unsigned int flags, int nosec, int ret)
{
	if (nosec && tgid_ok(current_tgid()))
		sockmsg_seen(sockmsg_sk(sock), ret, SOCKMSG_RECV);
	return 0;
}

SEC("fexit/__sock_sendmsg")
int BPF_PROG(sockmsg_fx_send, struct socket *sock, struct msghdr *msg, int ret)
{
	if (tgid_ok(current_tgid()))
		sockmsg_seen(sockmsg_sk(sock), ret, SOCKMSG_SEND);
	return 0;
}

SEC("fentry/____sys_sendmsg")
int BPF_PROG(sockmsg_fx_mmsg_send, struct socket *sock, struct msghdr *msg, unsigned int flags,
	     struct used_address *used)
{
	if (sendmmsg_skips_lsm(msg, used))
		sockmsg_note(sockmsg_sk(sock), SOCKMSG_SEND);
	return 0;
}

SEC("fexit/____sys_sendmsg")
int BPF_PROG(sockmsg_fx_mmsg_send_ret, struct socket *sock, struct msghdr *msg, unsigned int flags,
	     struct used_address *used, unsigned int allowed, int ret)
{
	sockmsg_done(sockmsg_sk(sock), ret, SOCKMSG_SEND);
	return 0;
}

SEC("fexit/security_socket_sendmsg")
int BPF_PROG(sockmsg_fx_lsm_send, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (!ret)
		sockmsg_note(sockmsg_sk(sock), SOCKMSG_SEND);
	return 0;
}

SEC("fexit/sock_sendmsg")
int BPF_PROG(sockmsg_fx_lsm_sock_sendmsg, struct socket *sock, struct msghdr *msg, int ret)
{
	sockmsg_done(sockmsg_sk(sock), ret, SOCKMSG_SEND);
	return 0;
}

SEC("fexit/sock_write_iter")
int BPF_PROG(sockmsg_fx_lsm_sock_write_iter, struct kiocb *iocb, struct iov_iter *from, long ret)
{
	struct socket *sock = BPF_CORE_READ(iocb, ki_filp, private_data);

	sockmsg_done(sockmsg_sk(sock), ret, SOCKMSG_SEND);
	return 0;
}

SEC("fexit/__sys_sendto")
int BPF_PROG(sockmsg_fx_lsm_sys_sendto, int fd, void *buff, size_t len, unsigned int flags,
	     void *addr, int addr_len, int ret)
{
	sockmsg_done(NULL, ret, SOCKMSG_SEND);
	return 0;
}

/* ---- kprobe plan: the same, the socket noted at entry for the return probe ---- */

static __always_inline void sockmsg_checking_enter(struct socket *sock)
{
	struct sockmsg_key key = { .tid = current_tid(), .dir = SOCKMSG_SEND };
	__u64 skp = (__u64)sockmsg_sk(sock);

	if (skp && tgid_ok(current_tgid()))
		bpf_map_update_elem(&sockmsg_checking, &key, &skp, BPF_ANY);
}

static __always_inline void sockmsg_checking_exit(int ret)
{
	struct sockmsg_key key = { .tid = current_tid(), .dir = SOCKMSG_SEND };
	__u64 *skp = bpf_map_lookup_elem(&sockmsg_checking, &key);
	struct sock *sk;

	if (!skp)
		return;
	sk = (struct sock *)*skp;
	bpf_map_delete_elem(&sockmsg_checking, &key);
	if (!ret)
		sockmsg_note(sk, SOCKMSG_SEND);
}

SEC("kprobe/sock_recvmsg")
int BPF_KPROBE(sockmsg_kp_recv, struct socket *sock)
{
	sockmsg_note(sockmsg_sk(sock), SOCKMSG_RECV);
	return 0;
}

SEC("kretprobe/sock_recvmsg")
int BPF_KRETPROBE(sockmsg_kp_recv_ret, int ret)
{
	sockmsg_done(NULL, ret, SOCKMSG_RECV);
	return 0;
}

/* Outside recvmmsg's nosec path, ____sys_recvmsg calls sock_recvmsg, whose return takes the
 * note first: this return then finds none. */
SEC("kprobe/____sys_recvmsg")
int BPF_KPROBE(sockmsg_kp_mmsg_recv, struct socket *sock, struct msghdr *msg, void *umsg, void *uaddr,
	       unsigned int flags, int nosec)
{
	if (nosec)
		sockmsg_note(sockmsg_sk(sock), SOCKMSG_RECV);
	return 0;
}

SEC("kretprobe/____sys_recvmsg")
int BPF_KRETPROBE(sockmsg_kp_mmsg_recv_ret, int ret)
{
	sockmsg_done(NULL, ret, SOCKMSG_RECV);
	return 0;
}

SEC("kprobe/__sock_sendmsg")
int BPF_KPROBE(sockmsg_kp_send, struct socket *sock)
{
	sockmsg_note(sockmsg_sk(sock), SOCKMSG_SEND);
	return 0;
}

SEC("kretprobe/__sock_sendmsg")
int BPF_KRETPROBE(sockmsg_kp_send_ret, int ret)
{
	sockmsg_done(NULL, ret, SOCKMSG_SEND);
	return 0;
}

SEC("kprobe/____sys_sendmsg")
int BPF_KPROBE(sockmsg_kp_mmsg_send, struct socket *sock, struct msghdr *msg, unsigned int flags,
	       struct used_address *used)
{
	if (sendmmsg_skips_lsm(msg, used))
		sockmsg_note(sockmsg_sk(sock), SOCKMSG_SEND);
	return 0;
}

SEC("kretprobe/____sys_sendmsg")
int BPF_KRETPROBE(sockmsg_kp_mmsg_send_ret, int ret)
{
	sockmsg_done(NULL, ret, SOCKMSG_SEND);
	return 0;
}

SEC("kprobe/security_socket_sendmsg")
int BPF_KPROBE(sockmsg_kp_lsm_send, struct socket *sock)
{
	sockmsg_checking_enter(sock);
	return 0;
}

SEC("kretprobe/security_socket_sendmsg")
int BPF_KRETPROBE(sockmsg_kp_lsm_send_ret, int ret)
{
	sockmsg_checking_exit(ret);
	return 0;
}

/* Return probes see only the result: the noted socket is taken as is. */
#define SOCKMSG_LSM_KRETPROBE(func, type)                                     \
	SEC("kretprobe/" #func)                                               \
	int BPF_KRETPROBE(sockmsg_kp_lsm_##func, type ret)                    \
	{                                                                     \
		sockmsg_done(NULL, ret, SOCKMSG_SEND);                        \
		return 0;                                                     \
	}

SOCKMSG_LSM_KRETPROBE(sock_sendmsg, int)
SOCKMSG_LSM_KRETPROBE(sock_write_iter, long)
SOCKMSG_LSM_KRETPROBE(__sys_sendto, int)

#endif
