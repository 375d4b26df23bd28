// SPDX-License-Identifier: GPL-2.0
/* tcpconnect: active TCP opens.
 *
 * CLOSE -> SYN_SENT runs inside connect(), so it tells who connects; but the local port is not
 * chosen yet. The record is completed once the tuple is whole: when the handshake ends
 * (SYN_SENT -> ESTABLISHED or CLOSE, any context), or, when syscall tracepoints are attached, at
 * connect()'s return for a non-blocking connect still in progress, so it shows up at once. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcpconnect.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpconnect_event);

const volatile bool count_mode = false;
const volatile bool count_lport = false; /* -c -s: the local port is part of the count key */
const volatile __u32 filter_uid = (__u32)-1;

struct connector {
	__u32 pid;
	__u32 uid;
	char comm[16];
};

/* sk in SYN_SENT -> who called connect() */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connector);
} connecting SEC(".maps");

/* thread in connect() -> its sk, for the syscall-exit path */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} connecting_tid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcpconnect_count_key);
	__type(value, __u64);
} counts SEC(".maps");

/* Connects not counted because `counts` was full (read at exit). */
__u64 count_dropped = 0;

static __always_inline void report(const struct sock *sk, const struct connector *c, int result)
{
	struct tcpconnect_event *e;
	struct sock_tuple t = {};

	sk_read_tuple(sk, &t);
	if (!rport_ok(t.rport))
		return;
	if (count_mode) {
		struct tcpconnect_count_key key = {
			.family = t.family,
			.rport = t.rport,
			.lport = count_lport ? t.lport : 0,
		};
		__u64 one = 1, *n;

		__builtin_memcpy(key.saddr, t.saddr, sizeof(key.saddr));
		__builtin_memcpy(key.daddr, t.daddr, sizeof(key.daddr));
		n = bpf_map_lookup_elem(&counts, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
		else if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST) &&
			 !(n = bpf_map_lookup_elem(&counts, &key)))
			__sync_fetch_and_add(&count_dropped, 1);
		else if (n)
			__sync_fetch_and_add(n, 1); /* another CPU added the key first */
		return;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->cgroup = sk_cgroup_id(sk);
	e->netns = sk_netns_id(sk);
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = c->pid;
	e->uid = c->uid;
	e->result = result;
	__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
	submit_event(e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpconnect_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct connector *c, fresh = {};
	__u32 tid;

	if (oldstate != TCP_SYN_SENT && newstate != TCP_SYN_SENT)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		/* In connect(): the caller is current. */
		fresh.pid = current_tgid();
		fresh.uid = (__u32)bpf_get_current_uid_gid();
		if (!tgid_ok(fresh.pid) || (filter_uid != (__u32)-1 && fresh.uid != filter_uid) ||
		    !family_ok(BPF_CORE_READ(sk, __sk_common.skc_family)) || !sk_netns_ok(sk))
			return 0;
		if (!sk_cgroup_ok(sk) || !current_mntns_ok())
			return 0;
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		bpf_map_update_elem(&connecting, &key, &fresh, BPF_ANY);
		tid = current_tid();
		bpf_map_update_elem(&connecting_tid, &tid, &key, BPF_ANY);
		return 0;
	}

	/* Leaving SYN_SENT: the tuple is complete (the port is released only after this). */
	c = bpf_map_lookup_elem(&connecting, &key);
	if (!c)
		return 0;
	if (newstate == TCP_ESTABLISHED) {
		report(sk, c, 0);
	} else if (BPF_CORE_READ((struct inet_sock *)sk, inet_sport)) {
		/* No source port: connect() failed before the SYN went out; not a connection. An
		 * error of 0 means the application closed the socket before the handshake ended. */
		int err = BPF_CORE_READ(sk, sk_err);

		report(sk, c, err ? -err : -ECONNABORTED);
	}
	bpf_map_delete_elem(&connecting, &key);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int tcpconnect_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	__u64 *skp = bpf_map_lookup_elem(&connecting_tid, &tid);
	struct connector *c;
	struct sock *sk;
	__u64 key;

	if (!skp)
		return 0;
	key = *skp;
	bpf_map_delete_elem(&connecting_tid, &tid);
	if (ctx->ret != -EINPROGRESS)
		return 0; /* done already, or failed; the handshake's end reports it */
	c = bpf_map_lookup_elem(&connecting, &key);
	if (!c)
		return 0;
	sk = (struct sock *)key;
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT) {
		report(sk, c, -EINPROGRESS);
		bpf_map_delete_elem(&connecting, &key);
	}
	return 0;
}
