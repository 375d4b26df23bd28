// SPDX-License-Identifier: GPL-2.0
/* tcpconnlat: how long active TCP opens take, from connect() sending the SYN to the handshake's
 * end.
 *
 * CLOSE -> SYN_SENT runs inside connect(), just before the SYN is built: the start time and the
 * caller. SYN_SENT -> ESTABLISHED runs when the SYN-ACK is processed (softirq): the end. A
 * handshake that fails (SYN_SENT -> CLOSE) with an error ends there too: a reset (ECONNREFUSED,
 * the time to the RST, as bcc shows it), the SYN retries running out (ETIMEDOUT), an ICMP error.
 * One the application abandoned (closed the socket: no error) is forgotten. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/export.bpf.h"
#include "tcpconnlat.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpconnlat_event);

/* Only connections slower than this (the positional threshold). */
const volatile __u64 min_lat_ns = 0;

struct connect_start {
	__u64 ts_ns;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connect_start);
} starts SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpconnlat_set_state, struct sock *sk, int oldstate, int newstate)
{
	struct connect_start *st, fresh = {};
	struct tcpconnlat_event *e;
	__u64 key = (__u64)sk, now;
	int err = 0;

	if (oldstate != TCP_SYN_SENT && newstate != TCP_SYN_SENT)
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		struct sock_tuple t = {};

		fresh.pid = current_tgid();
		if (!tgid_ok(fresh.pid) || !sk_netns_ok(sk))
			return 0;
		if (!sk_cgroup_ok(sk))
			return 0;
		/* connect() has set the destination: a dual-stack socket connecting to a v4-mapped
		 * address makes an IPv4 connection. */
		sk_read_tuple(sk, &t);
		tuple_unmap_v4(&t);
		if (!family_ok(t.family))
			return 0;
		fresh.ts_ns = bpf_ktime_get_ns();
		bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
		if (bpf_map_update_elem(&starts, &key, &fresh, BPF_ANY) && export_mode)
			export_lost();
		return 0;
	}

	st = bpf_map_lookup_elem(&starts, &key);
	if (!st)
		return 0;
	now = bpf_ktime_get_ns();
	/* The kernel stores the error before the state (tcp_done_with_error()). */
	if (newstate == TCP_CLOSE)
		err = BPF_CORE_READ(sk, sk_err);
	/* Exporter mode (common/export.bpf.h; the exporter makes `starts` a plain hash, so a full
	 * map is a counted loss): one histogram of microseconds per family (label 1: IPv6), the
	 * port label being the remote port. */
	if (newstate == TCP_ESTABLISHED && export_mode) {
		export_hist_add_sk(0, BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6,
				   bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)), sk,
				   (now - st->ts_ns) / 1000);
	} else if ((newstate == TCP_ESTABLISHED || err) && !export_mode &&
		   now - st->ts_ns >= min_lat_ns) {
		e = reserve_event(sizeof(*e));
		if (e) {
			e->cgroup = sk_cgroup_id(sk);
			sk_read_tuple(sk, &e->tuple);
			tuple_unmap_v4(&e->tuple);
			e->ts_ns = now;
			e->lat_ns = now - st->ts_ns;
			e->pid = st->pid;
			e->result = -err;
			__builtin_memcpy(e->comm, st->comm, sizeof(e->comm));
			submit_event(e);
		}
	}
	bpf_map_delete_elem(&starts, &key);
	return 0;
}
