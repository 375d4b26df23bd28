// SPDX-License-Identifier: GPL-2.0
/* tcplife: one record per TCP session when it closes, with its lifespan and payload bytes.
 *
 * Cost per state change matters (a connection makes ten of them): changes that tell nothing are
 * left before anything is read, and the session lives in the socket's own storage (before 5.11,
 * in a hash by socket address: common/sk_state.bpf.h). */
#include "common/netbpf.bpf.h"
/* One record per session (~100 bytes, two per connection): 128 KiB holds over 1,200 of them, and
 * the reader is woken at a quarter of that. */
#define EVENTS_RING_BYTES (128 * 1024)
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sk_owner.bpf.h"
#include "common/sk_state.bpf.h"
#include "common/export.bpf.h"
#include "tcplife.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcplife_event);

#define SEEN(s) (1u << (s))

/* enum sock_flags' SOCK_DONE (the peer's FIN arrived), 1 since Linux 2.6. Not relocated with
 * bpf_core_enum_value(): that alone makes libbpf scan all of kernel BTF once more at load. */
#define SOCK_DONE_BIT 1

struct session {
	__u64 birth_ns; /* 0: no session (not seen opening, or closed) */
	__u32 seen; /* bit per TCP state entered that payload_bytes() cares about */
	struct owner_id owner;
};

DEFINE_SK_STATE(struct session)

/* Sessions not timed because the kernel had no memory for their storage (read at exit). */
__u64 untracked = 0;

/* bytes_acked counts sequence space: our SYN (when we opened actively and it was answered) and
 * our FIN (once acknowledged). bytes_received counts the peer's FIN. Take them out so TX/RX are
 * exactly the payload. */
static __always_inline void payload_bytes(const struct sock *sk, __u32 seen, __u64 *tx, __u64 *rx)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);

	/* An active open's SYN is in bytes_acked once answered (a refused or timed-out SYN leaves
	 * bytes_acked at 0). */
	if ((seen & SEEN(TCP_SYN_SENT)) && acked)
		acked--;
	if ((seen & (SEEN(TCP_FIN_WAIT1) | SEEN(TCP_LAST_ACK) | SEEN(TCP_CLOSING))) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && acked)
		acked--;
	if ((BPF_CORE_READ(sk, __sk_common.skc_flags) & (1ULL << SOCK_DONE_BIT)) && received)
		received--;
	*tx = acked;
	*rx = received;
}

/* Exporter mode (common/export.bpf.h): sessions summed instead of streamed, labelled by family
 * (bit 0: IPv6) and direction (bit 1: passive open). The port label (--port-labels) is the
 * service port: the remote one of an active open, the local one of a passive open. A session
 * that closes from SYN_SENT or SYN_RECV is a failed open, not a closed session. */
enum { EXP_OPENED, EXP_CLOSED, EXP_FAILED, EXP_TX_BYTES, EXP_RX_BYTES };
enum { EXP_DURATION };

static __always_inline __u32 export_label(const struct sock *sk, __u32 seen, __u16 *port)
{
	struct sock_tuple t = {};
	__u32 passive = !(seen & SEEN(TCP_SYN_SENT));

	tcp_read_tuple(sk, &t);
	*port = passive ? t.lport : t.rport;
	return (t.family == AF_INET6) | (passive << 1);
}

static __always_inline void export_close(const struct sock *sk, const struct session *s,
					 int oldstate)
{
	__u64 tx, rx;
	__u16 port;
	__u32 label = export_label(sk, s->seen, &port);

	if (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV) {
		export_count_sk(EXP_FAILED, label, port, sk, 1);
		return;
	}
	payload_bytes(sk, s->seen, &tx, &rx);
	export_count_sk(EXP_CLOSED, label, port, sk, 1);
	export_count_sk(EXP_TX_BYTES, label, port, sk, tx);
	export_count_sk(EXP_RX_BYTES, label, port, sk, rx);
	export_hist_add_sk(EXP_DURATION, label, port, sk, (bpf_ktime_get_ns() - s->birth_ns) / 1000);
}

static __always_inline void report(const struct sock *sk, const struct session *s)
{
	struct tcplife_event *e;
	struct sock_tuple t = {};

	if (filter_tgid && s->owner.pid != filter_tgid)
		return;
	tcp_read_tuple(sk, &t);
	if (!family_ok(t.family) || !lport_ok(t.lport) || !rport_ok(t.rport))
		return;
	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->cgroup = sk_cgroup_id(sk);
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->span_ns = e->ts_ns - s->birth_ns;
	payload_bytes(sk, s->seen, &e->tx_bytes, &e->rx_bytes);
	if (s->owner.pid) {
		e->pid = s->owner.pid;
		__builtin_memcpy(e->comm, s->owner.comm, sizeof(e->comm));
	} else {
		e->pid = current_tgid();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	submit_event(e);
}

static __always_inline int set_state(struct sock *sk, int oldstate, int newstate, bool hashed)
{
	struct session *s;
	struct owner_id listener = {};
	__u64 netns;

	/* What each change is needed for: SYN_SENT / SYN_RECV open a session, LISTEN names a
	 * listener's owner, FIN_WAIT1 / LAST_ACK refine the owner, FIN_WAIT1, LAST_ACK and CLOSING
	 * say that our FIN is in bytes_acked, CLOSE ends it. The others (ESTABLISHED, FIN_WAIT2,
	 * CLOSE_WAIT, TIME_WAIT) are left before anything is read. */
	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
	case TCP_CLOSING:
	case TCP_CLOSE:
		break;
	default:
		return 0;
	}
	if (!tcp_sk_selected(sk, &netns))
		return 0;

	/* (A passive child's first change is LISTEN -> SYN_RECV: it starts as a listener's clone.) */
	if (newstate == TCP_LISTEN || (oldstate == TCP_LISTEN && newstate == TCP_CLOSE)) {
		/* A listener: not a session, only its owner (for its children) matters. */
		if (!export_mode)
			owner_update(sk, netns, oldstate, newstate, &listener);
		return 0;
	}
	if (newstate == TCP_SYN_SENT || newstate == TCP_SYN_RECV) {
		s = sk_state_create(sk, hashed);
		if (!s) {
			__sync_fetch_and_add(&untracked, 1);
			if (export_mode)
				export_lost();
			return 0;
		}
		s->birth_ns = bpf_ktime_get_ns();
		s->seen = SEEN(newstate);
		if (export_mode) {
			__u16 port;
			__u32 label = export_label(sk, s->seen, &port);

			export_count_sk(EXP_OPENED, label, port, sk, 1);
			return 0;
		}
		/* A socket connecting again keeps no owner from before. */
		s->owner.pid = 0;
		owner_update(sk, netns, oldstate, newstate, &s->owner);
		return 0;
	}
	s = sk_state_lookup(sk, hashed);
	if (!s || !s->birth_ns)
		return 0;
	s->seen |= SEEN(newstate);
	if (newstate != TCP_CLOSE) {
		if (!export_mode)
			owner_update(sk, netns, oldstate, newstate, &s->owner);
		return 0;
	}
	if (export_mode)
		export_close(sk, s, oldstate);
	else
		report(sk, s);
	s->birth_ns = 0;
	sk_state_forget(sk, hashed);
	return 0;
}

SK_STATE_PROGRAMS(tcplife)
