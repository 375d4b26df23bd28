// SPDX-License-Identifier: GPL-2.0
/* tcpcong: the time each TCP connection spends in each congestion-control state (Open,
 * Disorder, CWR, Recovery, Loss).
 *
 * tcp_cong_state_set fires in tcp_set_ca_state() just before icsk_ca_state changes (also when it
 * is set to the state it already has: such calls are no change). A connection's clock starts when
 * it becomes ESTABLISHED, in Open; a connection already open when the tool started starts at its
 * first state change, from the state it leaves. At TCP_CLOSE the open period is closed and the
 * connection's totals are one event; the periods, as they end, also go to per-state log2
 * histograms (-d). The periods of a connection are contiguous, so its totals add up to its life.
 *
 * tp_btf is the best plan; raw_tp runs the same code on kernels that refuse tp_btf. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/hist.bpf.h"
#include "tcpcong.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpcong_event);

/* -d: histogram units (1000: microseconds, 1000000: milliseconds); 0: no histograms. */
const volatile __u64 hist_unit_ns = 0;
/* -d without per-connection lines. */
const volatile bool hist_only = false;

struct conn {
	__u64 first_ns;
	__u64 since_ns; /* start of the current period */
	__u64 state_ns[TCPCONG_STATES];
	__u32 changes;
	__u8 state;
	__u8 whole;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* Key: the state; value: log2 histogram of its periods, in hist_unit_ns. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPCONG_STATES);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

static __always_inline bool sk_selected(const struct sock *sk)
{
	struct sock_tuple t = {};

	if (!sk_netns_ok(sk) || !sk_cgroup_ok(sk))
		return false;
	sk_read_tuple(sk, &t);
	tuple_unmap_v4(&t);
	return family_ok(t.family) && lport_ok(t.lport) && rport_ok(t.rport);
}

/* Ends the current period of c at now. */
static __always_inline void period_end(struct conn *c, __u64 now)
{
	__u32 state = c->state;
	__u64 d = now - c->since_ns;

	if (state >= TCPCONG_STATES)
		return;
	c->state_ns[state] += d;
	if (hist_unit_ns)
		hist_map_add(&hists, &state, d / hist_unit_ns);
	c->since_ns = now;
}

static __always_inline int on_cong_state(struct sock *sk, __u8 new_state)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_ns();
	struct conn *c = bpf_map_lookup_elem(&conns, &key);

	if (!c) {
		struct inet_connection_sock *icsk = (void *)sk;
		struct conn fresh = {};

		if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_ESTABLISHED ||
		    BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_selected(sk))
			return 0;
		fresh.first_ns = now;
		fresh.since_ns = now;
		fresh.state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
		bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&conns, &key);
		if (!c)
			return 0;
	}
	if (new_state == c->state || new_state >= TCPCONG_STATES)
		return 0;
	period_end(c, now);
	c->state = new_state;
	c->changes++;
	return 0;
}

static __always_inline int on_set_state(struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk, now;
	struct tcpcong_event *e;
	struct conn *c;

	if (newstate == TCP_ESTABLISHED) {
		struct conn fresh = {};

		if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_selected(sk))
			return 0;
		fresh.first_ns = fresh.since_ns = bpf_ktime_get_ns();
		fresh.state = TCP_CA_Open;
		fresh.whole = 1;
		bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	now = bpf_ktime_get_ns();
	period_end(c, now);
	if (!hist_only) {
		e = reserve_event(sizeof(*e));
		if (e) {
			sk_read_tuple(sk, &e->tuple);
			tuple_unmap_v4(&e->tuple);
			e->ts_ns = now;
			e->cgroup = sk_cgroup_id(sk);
			__builtin_memcpy(e->state_ns, c->state_ns, sizeof(e->state_ns));
			e->life_ns = now - c->first_ns;
			e->changes = c->changes;
			e->whole = c->whole;
			submit_event(e);
		}
	}
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

SEC("tp_btf/tcp_cong_state_set")
int BPF_PROG(tcpcong_state, struct sock *sk, __u8 ca_state)
{
	return on_cong_state(sk, ca_state);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpcong_sock_state, struct sock *sk, int oldstate, int newstate)
{
	return on_set_state(sk, oldstate, newstate);
}

SEC("raw_tp/tcp_cong_state_set")
int BPF_PROG(tcpcong_state_raw, struct sock *sk, __u8 ca_state)
{
	return on_cong_state(sk, ca_state);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(tcpcong_sock_state_raw, struct sock *sk, int oldstate, int newstate)
{
	return on_set_state(sk, oldstate, newstate);
}
