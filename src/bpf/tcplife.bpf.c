// SPDX-License-Identifier: GPL-2.0
/* tcplife: one record per TCP session when it closes, with its lifespan and payload bytes. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "common/hist.bpf.h"
#include "tcplife.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcplife_event);

/* Exporter mode: sum sessions into `totals` instead of streaming them. */
const volatile bool aggregate = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct tcplife_totals);
} totals SEC(".maps");

struct session {
	__u64 birth_ns;
	__u32 states_seen; /* bit per TCP state entered */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct session);
} sessions SEC(".maps");

#define SEEN(s) (1u << (s))

/* bytes_acked counts sequence space: our SYN (when we opened actively and it was answered) and
 * our FIN (once acknowledged). bytes_received counts the peer's FIN. Take them out so TX/RX are
 * exactly the payload. */
static __always_inline void payload_bytes(const struct sock *sk, __u32 seen, struct tcplife_event *e)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	__u64 sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);

	if ((seen & SEEN(TCP_SYN_SENT)) && (seen & SEEN(TCP_ESTABLISHED)) && acked)
		acked--;
	if ((seen & (SEEN(TCP_FIN_WAIT1) | SEEN(TCP_LAST_ACK) | SEEN(TCP_CLOSING))) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && acked)
		acked--;
	if ((sk_flags & (1ULL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) && received)
		received--;
	e->tx_bytes = acked;
	e->rx_bytes = received;
}

static __always_inline void add_to_totals(const struct sock *sk, const struct session *s)
{
	struct tcplife_event bytes = {};
	__u32 idx = BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6;
	struct tcplife_totals *t = bpf_map_lookup_elem(&totals, &idx);
	__u64 span_us = (bpf_ktime_get_ns() - s->birth_ns) / 1000;

	if (!t)
		return;
	payload_bytes(sk, s->states_seen, &bytes);
	hist_add(&t->span_us, span_us);
	__sync_fetch_and_add(&t->span_us_sum, span_us);
	__sync_fetch_and_add(&t->sessions, 1);
	__sync_fetch_and_add(&t->tx_bytes, bytes.tx_bytes);
	__sync_fetch_and_add(&t->rx_bytes, bytes.rx_bytes);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcplife_set_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct session *s, fresh = {};
	struct sk_owner *owner;
	struct tcplife_event *e;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !netns_ok(sk_netns_cookie(sk)))
		return 0;

	owner = owner_track(sk, oldstate, newstate);
	s = bpf_map_lookup_elem(&sessions, &key);
	if (!s) {
		if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
			fresh.birth_ns = bpf_ktime_get_ns();
			fresh.states_seen = SEEN(newstate);
			bpf_map_update_elem(&sessions, &key, &fresh, BPF_NOEXIST);
		}
		if (newstate == TCP_CLOSE)
			owner_forget(sk);
		return 0;
	}
	s->states_seen |= SEEN(newstate);
	if (newstate != TCP_CLOSE)
		return 0;

	if (aggregate) {
		add_to_totals(sk, s);
		goto done;
	}
	e = NULL;
	if (!filter_tgid || (owner && owner->pid == filter_tgid))
		e = reserve_event(sizeof(*e));
	if (e) {
		sk_read_tuple(sk, &e->tuple);
		if (family_ok(e->tuple.family) && lport_ok(e->tuple.lport) && rport_ok(e->tuple.rport)) {
			e->ts_ns = bpf_ktime_get_ns();
			e->span_ns = e->ts_ns - s->birth_ns;
			payload_bytes(sk, s->states_seen, e);
			if (owner) {
				e->pid = owner->pid;
				__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
			} else {
				e->pid = current_tgid();
				bpf_get_current_comm(e->comm, sizeof(e->comm));
			}
			submit_event(e);
		} else {
			bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		}
	}
done:
	bpf_map_delete_elem(&sessions, &key);
	owner_forget(sk);
	return 0;
}
