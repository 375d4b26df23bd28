// SPDX-License-Identifier: GPL-2.0
/* tcpstates: every TCP state change with the time spent in the previous state.
 *
 * The time of a socket's last change and its owner live in the socket's own storage (before 5.11,
 * in a hash by socket address: common/sk_state.bpf.h). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sk_owner.bpf.h"
#include "common/sk_state.bpf.h"
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

struct sk_state {
	__u64 last_ns; /* time of the last change; 0 when none was seen */
	struct owner_id owner;
};

DEFINE_SK_STATE(struct sk_state)

/* Changes whose socket got no storage (no memory): shown without MS or owner (read at exit). */
__u64 untracked = 0;

static __always_inline int set_state(struct sock *sk, int oldstate, int newstate, bool hashed)
{
	__u64 now = bpf_ktime_get_ns();
	struct tcpstates_event *e;
	struct sk_state *st;
	struct sock_tuple t = {};
	__u32 owner;
	__u64 netns;

	if (!tcp_sk_selected(sk, &netns))
		return 0;
	if (aggregate) {
		__u32 idx = (oldstate & (TCP_STATE_SLOTS - 1)) * TCP_STATE_SLOTS + (newstate & (TCP_STATE_SLOTS - 1));
		__u64 *n = bpf_map_lookup_elem(&transitions, &idx);

		if (n)
			*n += 1;
		return 0;
	}
	st = sk_state_create(sk, hashed);
	if (st)
		owner_update(sk, netns, oldstate, newstate, &st->owner);
	else
		__sync_fetch_and_add(&untracked, 1);
	/* -p: the owner's, or (owner not known yet) the task on CPU. */
	owner = st && st->owner.pid ? st->owner.pid : 0;
	if (!tgid_ok(owner ? owner : current_tgid()))
		goto out;
	tcp_read_tuple(sk, &t);
	if (!family_ok(t.family) || !lport_ok(t.lport) || !rport_ok(t.rport))
		goto out;

	e = reserve_event(sizeof(*e));
	if (!e)
		goto out;
	e->cgroup = sk_cgroup_id(sk);
	e->tuple = t;
	e->ts_ns = now;
	e->skaddr = (__u64)sk;
	e->prev_state_ns = st && st->last_ns ? now - st->last_ns : 0;
	e->cpid = current_tgid();
	bpf_get_current_comm(e->ccomm, sizeof(e->ccomm));
	e->pid = owner;
	if (owner)
		__builtin_memcpy(e->comm, st->owner.comm, sizeof(e->comm));
	else
		e->comm[0] = 0;
	e->oldstate = oldstate;
	e->newstate = newstate;
	submit_event(e);
out:
	if (st)
		st->last_ns = newstate == TCP_CLOSE ? 0 : now;
	if (newstate == TCP_CLOSE)
		sk_state_forget(sk, hashed);
	return 0;
}

SK_STATE_PROGRAMS(tcpstates)
