// SPDX-License-Identifier: GPL-2.0
/* tcplife: one record per TCP session when it closes, with its lifespan and payload bytes. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "common/export.bpf.h"
#include "tcplife.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcplife_event);

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

/* Exporter mode (common/export.bpf.h): sessions summed instead of streamed, labelled by family
 * (bit 0: IPv6) and direction (bit 1: passive open). The port label (--port-labels) is the
 * service port: the remote one of an active open, the local one of a passive open. A session
 * that never reached ESTABLISHED is a failed open, not a closed session. The exporter makes
 * `sessions` a plain hash, so a full map is a counted loss instead of a silent eviction. */
enum { EXP_OPENED, EXP_CLOSED, EXP_FAILED, EXP_TX_BYTES, EXP_RX_BYTES };
enum { EXP_DURATION };

static __always_inline __u32 export_label(const struct sock *sk, __u32 seen, __u16 *port)
{
	struct sock_tuple t = {};
	__u32 passive = !(seen & SEEN(TCP_SYN_SENT));

	sk_read_tuple(sk, &t);
	*port = passive ? t.lport : t.rport;
	return (t.family == AF_INET6) | (passive << 1);
}

static __always_inline void export_close(const struct sock *sk, const struct session *s)
{
	struct tcplife_event bytes = {};
	__u16 port;
	__u32 label = export_label(sk, s->states_seen, &port);

	if (!(s->states_seen & SEEN(TCP_ESTABLISHED))) {
		export_count(EXP_FAILED, label, port, 1);
		return;
	}
	payload_bytes(sk, s->states_seen, &bytes);
	export_count(EXP_CLOSED, label, port, 1);
	export_count(EXP_TX_BYTES, label, port, bytes.tx_bytes);
	export_count(EXP_RX_BYTES, label, port, bytes.rx_bytes);
	export_hist_add(EXP_DURATION, label, port, (bpf_ktime_get_ns() - s->birth_ns) / 1000);
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

	owner = export_mode ? NULL : owner_track(sk, oldstate, newstate);
	s = bpf_map_lookup_elem(&sessions, &key);
	if (!s) {
		if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
			fresh.birth_ns = bpf_ktime_get_ns();
			fresh.states_seen = SEEN(newstate);
			if (bpf_map_update_elem(&sessions, &key, &fresh, BPF_NOEXIST) && export_mode)
				export_lost();
			if (export_mode) {
				__u16 port;
				__u32 label = export_label(sk, fresh.states_seen, &port);

				export_count(EXP_OPENED, label, port, 1);
			}
		}
		if (newstate == TCP_CLOSE)
			owner_forget(sk);
		return 0;
	}
	s->states_seen |= SEEN(newstate);
	if (newstate != TCP_CLOSE)
		return 0;

	if (export_mode) {
		export_close(sk, s);
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
