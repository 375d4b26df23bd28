// SPDX-License-Identifier: GPL-2.0
/* sock_owners: the TCP sockets every process holds, read once when a tool starts (core's
 * sock_owners.rs), so that tools which learn owners from listen(), connect() and accept() also
 * know the sockets opened before tracing began: a daemon's listeners above all.
 *
 * A task_file iterator (Linux 5.8+) visits each open file of each process once (threads that
 * share their descriptor table are skipped by the kernel); for a socket file it writes a record
 * to the reader. Nothing is attached anywhere: the program runs only while user space reads. */
#include "common/netbpf.bpf.h"
#include "common/sock.bpf.h"
#include "common/cgroup.bpf.h"
#include "sock_owners.h"

char LICENSE[] SEC("license") = "GPL";
/* Makes the skeleton generate the record type (no map references it). */
struct sock_owner_record __export_sock_owner_record = {};

#define S_IFMT 00170000
#define S_IFSOCK 0140000

SEC("iter/task_file")
int sock_owners_iter(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct sock_owner_record r = {};
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!task || !file)
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	sk_read_tuple(sk, &r.tuple);
	r.sk = (__u64)sk;
	r.netns = sk_netns_id(sk);
	r.pid = BPF_CORE_READ(task, tgid);
	r.uid = BPF_CORE_READ(sk, sk_uid.val);
	r.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	r.cgroup = sk_cgroup_id(sk);
	BPF_CORE_READ_STR_INTO(&r.comm, task, comm);
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
