// SPDX-License-Identifier: GPL-2.0
/* tcptracer: TCP connections as they are made and closed: connect (an active open reaching
 * ESTABLISHED), accept (a passive open reaching ESTABLISHED: queued for accept()), close (an
 * established connection reaching CLOSE), each with its owner and network namespace.
 *
 * All from sock:inet_sock_set_state; the owner lives in the socket's storage
 * (common/sk_owner.bpf.h: the connecting process, a passive child's listener, refined by the
 * process that closes it), as tcplife's does (before 5.11, in a hash by socket address:
 * common/sk_state.bpf.h). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sk_owner.bpf.h"
#include "common/sk_state.bpf.h"
#include "tcptracer.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcptracer_event);

struct conn {
	struct owner_id owner;
	__u32 established; /* a connect or accept was reported: its close will be */
};

DEFINE_SK_STATE(struct conn)

/* Connections not followed because the kernel had no memory for their storage (read at exit). */
__u64 untracked = 0;

/* Whether the event was reported (it passed the filters). */
static __always_inline bool report(const struct sock *sk, const struct conn *c, __u32 type)
{
	struct tcptracer_event *e;
	struct sock_tuple t = {};

	if (filter_tgid && c->owner.pid != filter_tgid)
		return false;
	tcp_read_tuple(sk, &t);
	tuple_unmap_v4(&t);
	if (!family_ok(t.family))
		return false;
	e = reserve_event(sizeof(*e));
	if (!e)
		return true;
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->netns_cookie = sk_netns_id(sk);
	e->netns_ino = sk_netns_ino(sk);
	e->pid = c->owner.pid;
	__builtin_memcpy(e->comm, c->owner.comm, sizeof(e->comm));
	e->cgroup = sk_cgroup_id(sk);
	submit_event(e);
	return true;
}

static __always_inline int set_state(struct sock *sk, int oldstate, int newstate, bool hashed)
{
	struct owner_id listener = {};
	struct conn *c;
	__u64 netns;

	/* SYN_SENT / SYN_RECV start following a connection, ESTABLISHED reports its open, LISTEN
	 * names a listener's owner, FIN_WAIT1 / LAST_ACK the closing process, CLOSE the end. */
	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
	case TCP_ESTABLISHED:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
	case TCP_CLOSE:
		break;
	default:
		return 0;
	}
	if (!tcp_sk_selected(sk, &netns))
		return 0;

	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)) {
		owner_update(sk, netns, oldstate, newstate, &listener);
		return 0;
	}
	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		c = sk_state_create(sk, hashed);
		if (!c) {
			__sync_fetch_and_add(&untracked, 1);
			return 0;
		}
		/* A socket connecting again keeps nothing from before. */
		c->owner.pid = 0;
		c->established = 0;
		owner_update(sk, netns, oldstate, newstate, &c->owner);
		return 0;
	}
	c = sk_state_lookup(sk, hashed);
	if (!c)
		return 0;
	switch (newstate) {
	case TCP_ESTABLISHED:
		if (oldstate == TCP_SYN_SENT)
			c->established = report(sk, c, TCPTRACER_CONNECT);
		else if (oldstate == TCP_SYN_RECV)
			c->established = report(sk, c, TCPTRACER_ACCEPT);
		return 0;
	case TCP_CLOSE:
		if (c->established)
			report(sk, c, TCPTRACER_CLOSE);
		c->established = 0;
		sk_state_forget(sk, hashed);
		return 0;
	default:
		owner_update(sk, netns, oldstate, newstate, &c->owner);
		return 0;
	}
}

SK_STATE_PROGRAMS(tcptracer)
