// SPDX-License-Identifier: GPL-2.0
/* tcpstates: every TCP state change with the time spent in the previous state. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "tcpstates.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpstates_event);

/* Exporter mode: count transitions in `transitions` instead of streaming them. */
const volatile bool aggregate = false;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCP_STATE_SLOTS * TCP_STATE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} transitions SEC(".maps");

/* sk -> time of its last state change */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} last_change SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpstates_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_ns(), *last;
	struct tcpstates_event *e;
	struct sk_owner *owner;
	struct sock_tuple t = {};

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !netns_ok(sk_netns_cookie(sk)))
		return 0;
	if (aggregate) {
		__u32 idx = (oldstate & (TCP_STATE_SLOTS - 1)) * TCP_STATE_SLOTS + (newstate & (TCP_STATE_SLOTS - 1));
		__u64 *n = bpf_map_lookup_elem(&transitions, &idx);

		if (n)
			*n += 1;
		return 0;
	}
	owner = owner_track(sk, oldstate, newstate);
	last = bpf_map_lookup_elem(&last_change, &key);

	sk_read_tuple(sk, &t);
	/* -p: the owner's, or (owner not known yet) the task on CPU. */
	if (!tgid_ok(owner ? owner->pid : current_tgid()) || !family_ok(t.family) || !lport_ok(t.lport) ||
	    !rport_ok(t.rport))
		goto out;

	e = reserve_event(sizeof(*e));
	if (!e)
		goto out;
	e->tuple = t;
	e->ts_ns = now;
	e->skaddr = key;
	e->prev_state_ns = last ? now - *last : 0;
	e->cpid = current_tgid();
	bpf_get_current_comm(e->ccomm, sizeof(e->ccomm));
	if (owner) {
		e->pid = owner->pid;
		__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->comm[0] = 0;
	}
	e->oldstate = oldstate;
	e->newstate = newstate;
	submit_event(e);
out:
	if (newstate == TCP_CLOSE) {
		bpf_map_delete_elem(&last_change, &key);
		owner_forget(sk);
	} else {
		bpf_map_update_elem(&last_change, &key, &now, BPF_ANY);
	}
	return 0;
}
