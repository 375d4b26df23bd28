// SPDX-License-Identifier: GPL-2.0
/* tcpretrans: TCP retransmits (and, with -l, tail loss probes), one line each or counted per
 * connection in the kernel (-c).
 *
 * Retransmits mostly run from timers and ACK processing in softirq, where the task on CPU is
 * unrelated to the socket. The owner is learned instead from the socket's own state changes
 * (connect, listen, close: common/tcp_owner.bpf.h), which are cheap and rare, and from accept()
 * where the plan can hook it (fexit/kretprobe on inet_csk_accept, else the accept syscalls):
 * with SO_REUSEPORT the listener's owner is only a guess for an accepted connection. */
#include "common/netbpf.bpf.h"
#include "common/call_stack.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/maps.bpf.h"
#include "common/tcp_owner.bpf.h"
#include "common/export.bpf.h"
#include "tcpretrans.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpretrans_event);

const volatile bool count_mode = false;
/* Whether the tracepoint has its err argument (recent kernels); set from BTF by user space. */
const volatile bool tp_has_err = true;

#define EBUSY 16

/* Retransmits not attempted because the original was still in a host queue (-EBUSY): nothing
 * was sent and the kernel does not count them, so they are not shown; user space reports the
 * number. Other failures (e.g. a local qdisc dropped the segment) are retransmits the kernel
 * counts (RetransSegs, tcpi_total_retrans): they are shown, with their error. */
__u64 busy_skipped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcpretrans_count_key);
	__type(value, struct tcpretrans_count);
} counts SEC(".maps");

/* What one retransmit sent: the connection, the state shown, the segments (what RetransSegs
 * counts) and the first sequence number. */
struct retransmit {
	struct sock_tuple t;
	int state;
	int err;
	__u32 seq;
	__u16 segs;
	__u8 kind;
};

/* sk: the socket whose namespace, cgroup and owner count (for a SYN-ACK, the listener). */
static __always_inline void report(const struct sock *sk, struct retransmit *r)
{
	static const struct tcpretrans_count zero = {};
	struct tcpretrans_count *n;
	struct tcpretrans_event *e;
	struct sk_owner *owner;
	__u64 key = (__u64)sk;

	if (!sk_netns_ok(sk))
		return;
	if (!sk_cgroup_ok(sk))
		return;
	tuple_unmap_v4(&r->t);
	if (!sk_is_inet(r->t.family) || !family_ok(r->t.family))
		return;
	/* Exporter mode (common/export.bpf.h): segments retransmitted (metric 0) and tail loss
	 * probes (metric 1), by the socket's state. */
	if (export_mode) {
		export_count_sk(r->kind == TCPRETRANS_LOSS_PROBE, r->state, 0, sk, r->segs);
		return;
	}
	owner = bpf_map_lookup_elem(&sk_owners, &key);
	if (filter_tgid && (!owner || owner->pid != filter_tgid))
		return;

	if (count_mode) {
		struct tcpretrans_count_key k = {
			.family = r->t.family, .lport = r->t.lport, .rport = r->t.rport, .kind = r->kind,
		};

		__builtin_memcpy(k.saddr, r->t.saddr, sizeof(k.saddr));
		__builtin_memcpy(k.daddr, r->t.daddr, sizeof(k.daddr));
		n = lookup_or_init(&counts, &k, &zero);
		if (n) {
			__sync_fetch_and_add(&n->events, 1);
			__sync_fetch_and_add(&n->segs, r->segs);
		}
		return;
	}

	e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->cgroup = sk_cgroup_id(sk);
	e->tuple = r->t;
	e->ts_ns = bpf_ktime_get_ns();
	e->state = r->state;
	e->kind = r->kind;
	e->err = r->err;
	e->seq = r->seq;
	e->segs = r->segs;
	if (owner) {
		e->pid = owner->pid;
		__builtin_memcpy(e->comm, owner->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->comm[0] = 0;
	}
	submit_event(e);
}

/* A retransmit (skb) or a tail loss probe (no skb) of a full socket. */
static __always_inline void report_sk(const struct sock *sk, const struct sk_buff *skb, __u8 kind, int err)
{
	struct retransmit r = { .kind = kind, .err = err, .segs = 1 };

	sk_read_tuple(sk, &r.t);
	r.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (skb) {
		/* TCP_SKB_CB(skb) lives in skb->cb: the first byte's sequence number, and how
		 * many segments the skb was sent as. */
		struct tcp_skb_cb *cb = (void *)skb + bpf_core_field_offset(struct sk_buff, cb);

		r.seq = BPF_CORE_READ(cb, seq);
		r.segs = BPF_CORE_READ(cb, tcp_gso_segs) ?: 1;
	} else if (kind == TCPRETRANS_LOSS_PROBE) {
		/* The probe: one segment, new data or the last one resent (tlp_retrans). */
		r.seq = BPF_CORE_READ((struct tcp_sock *)sk, tlp_high_seq);
		if (bpf_core_field_exists(((struct tcp_sock *)0)->tlp_retrans))
			r.err = BPF_CORE_READ_BITFIELD_PROBED((struct tcp_sock *)sk, tlp_retrans);
	}
	report(sk, &r);
}

/* Segments each socket had retransmitted (tcp_sock.total_retrans) as of the last retransmit or
 * state change this tool saw: a socket that counted more than the events handed over in between
 * had retransmits the tool was not shown (TCPRETRANS_UNSEEN), reported with their number, so that
 * shown + unseen is exactly what the socket counted. A socket enters at connect() or when a
 * passive one is established (total_retrans then includes its SYN-ACK retransmits, which are
 * events of the listener), or at its first retransmit seen if it is older than the tool. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} retrans_counted SEC(".maps");

static __always_inline __u32 total_retrans(const struct sock *sk)
{
	return BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
}

static __always_inline void report_unseen(const struct sock *sk, __u32 segs)
{
	struct retransmit r = { .kind = TCPRETRANS_UNSEEN, .segs = segs > 0xffff ? 0xffff : segs };

	sk_read_tuple(sk, &r.t);
	r.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	report(sk, &r);
}

/* The socket counts `now` retransmitted segments, `shown` of them in the event being handled:
 * reports what it counted since the last look beyond that. `start` adds an unknown socket. */
static __always_inline void check_counted(const struct sock *sk, __u32 shown, bool start)
{
	__u64 key = (__u64)sk;
	__u32 now = total_retrans(sk);
	__u32 *last = bpf_map_lookup_elem(&retrans_counted, &key);

	if (last) {
		__u32 expected = *last + shown;

		if ((__s32)(now - expected) > 0)
			report_unseen(sk, now - expected);
		*last = now;
	} else if (start) {
		bpf_map_update_elem(&retrans_counted, &key, &now, BPF_ANY);
	}
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpretrans_owner, struct sock *sk, int oldstate, int newstate)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	owner_track(sk, oldstate, newstate);
	if (newstate != TCP_LISTEN && newstate != TCP_SYN_RECV && oldstate != TCP_LISTEN) {
		check_counted(sk, 0, newstate == TCP_SYN_SENT ||
					     (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV));
	}
	if (newstate == TCP_CLOSE) {
		__u64 key = (__u64)sk;

		owner_forget(sk);
		bpf_map_delete_elem(&retrans_counted, &key);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcpretrans_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_skb_cb *cb = (void *)skb + bpf_core_field_offset(struct sk_buff, cb);
	int err = 0;

	if (tp_has_err) {
		err = (int)ctx[2];
		if (err == -EBUSY) {
			__sync_fetch_and_add(&busy_skipped, 1);
			return 0;
		}
	}
	if (!sk_netns_ok(sk) || !sk_cgroup_ok(sk))
		return 0;
	/* The kernel counted this skb's segments unless it failed before sending (err < 0). */
	check_counted(sk, err < 0 ? 0 : (BPF_CORE_READ(cb, tcp_gso_segs) ?: 1), true);
	report_sk(sk, skb, TCPRETRANS_RETRANSMIT, err);
	return 0;
}

/* A SYN-ACK sent again for a connection request (tcp_rtx_synack(), on the request's timer or
 * when the client's SYN comes again). The kernel counts it in RetransSegs and TCPSynRetrans, as
 * it fires this tracepoint, only when it was sent. sk is the listener (or, for a passive Fast
 * Open, the new child): its namespace and owner; the request holds the connection's addresses
 * (a request_sock is no inet_sock: the local port is skc_num, there is no inet_sport). Shown in
 * SYN_RECV, the request's state as ss names it. */
/* Per connection request: its SYN-ACKs sent again (request_sock.num_retrans) at the last one seen,
 * and its initial sequence number, which tells a new request at a reused address from the old.
 * A jump of more than one between two SYN-ACKs seen is reported as unseen (U), as for sockets;
 * those before the first and after the last one seen of a request cannot be told. */
struct synack_seen {
	__u32 isn;
	__u32 num_retrans;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct synack_seen);
} synacks_counted SEC(".maps");

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(tcpretrans_synack, const struct sock *sk, const struct request_sock *req)
{
	struct retransmit r = {
		.kind = TCPRETRANS_RETRANSMIT, .state = TCP_SYN_RECV, .segs = 1,
	};

	r.t.family = BPF_CORE_READ(req, __req_common.skc_family);
	r.t.lport = BPF_CORE_READ(req, __req_common.skc_num);
	r.t.rport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));
	if (r.t.family == AF_INET6) {
		BPF_CORE_READ_INTO(&r.t.saddr, req, __req_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r.t.daddr, req, __req_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		BPF_CORE_READ_INTO((__u32 *)r.t.saddr, req, __req_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)r.t.daddr, req, __req_common.skc_daddr);
	}
	/* The SYN-ACK's sequence number: the initial one the server chose. */
	r.seq = BPF_CORE_READ((struct tcp_request_sock *)req, snt_isn);

	/* The kernel bumps num_retrans once per SYN-ACK sent again (before or after this
	 * tracepoint, depending on the version: only the step between two is compared). */
	__u64 key = (__u64)req;
	struct synack_seen now = { .isn = r.seq, .num_retrans = BPF_CORE_READ(req, num_retrans) };
	struct synack_seen *last = bpf_map_lookup_elem(&synacks_counted, &key);

	if (last && last->isn == now.isn && now.num_retrans > last->num_retrans + 1) {
		struct retransmit unseen = r;

		unseen.kind = TCPRETRANS_UNSEEN;
		unseen.segs = now.num_retrans - last->num_retrans - 1;
		report(sk, &unseen);
	}
	bpf_map_update_elem(&synacks_counted, &key, &now, BPF_ANY);
	report(sk, &r);
	return 0;
}

/* Tail loss probes (-l): no tracepoint marks them, so these need a function hook. Only the
 * programs the chosen plan names are loaded. tcp_send_loss_probe() runs when the probe timer
 * fires; it sends a probe (new data, or the last segment again) unless one is outstanding or
 * nothing can be sent, and then records snd_nxt in tlp_high_seq, 0 before: a probe was sent when
 * tlp_high_seq went from 0 to something, which is what the kernel counts (TCPLossProbes). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} tlp_before SEC(".maps");

static __always_inline __u32 tlp_high_seq(const struct sock *sk)
{
	return BPF_CORE_READ((struct tcp_sock *)sk, tlp_high_seq);
}

SEC("fentry/tcp_send_loss_probe")
int BPF_PROG(tcpretrans_tlp_fentry, struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u32 before = tlp_high_seq(sk);

	bpf_map_update_elem(&tlp_before, &key, &before, BPF_ANY);
	return 0;
}

SEC("fexit/tcp_send_loss_probe")
int BPF_PROG(tcpretrans_tlp_fexit, struct sock *sk)
{
	__u64 key = (__u64)sk;
	__u32 *before = bpf_map_lookup_elem(&tlp_before, &key);
	bool sent = before && !*before && tlp_high_seq(sk);

	bpf_map_delete_elem(&tlp_before, &key);
	if (sent)
		report_sk(sk, NULL, TCPRETRANS_LOSS_PROBE, 0);
	return 0;
}

/* kprobe plan: the entry keeps (sk, tlp_high_seq) for the return. */
DEFINE_CALL_STACKS(tlp_calls);

SEC("kprobe/tcp_send_loss_probe")
int BPF_KPROBE(tcpretrans_tlp_kprobe, struct sock *sk)
{
	call_push(&tlp_calls, (__u64)sk, tlp_high_seq(sk), true);
	return 0;
}

SEC("kretprobe/tcp_send_loss_probe")
int BPF_KRETPROBE(tcpretrans_tlp_kretprobe)
{
	struct call_frame f;
	const struct sock *sk;

	if (!call_pop(&tlp_calls, &f))
		return 0;
	sk = (const struct sock *)f.a;
	if (!f.b && tlp_high_seq(sk))
		report_sk(sk, NULL, TCPRETRANS_LOSS_PROBE, 0);
	return 0;
}

/* accept() returned sk: its owner is the caller. inet_csk_accept(listener, ...) returns the
 * new sock (NULL on error); its other arguments changed in 6.10: only the return is read. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(tcpretrans_accept_fexit, struct sock *listener)
{
	__u64 sk = 0;

	bpf_get_func_ret(ctx, &sk);
	if (sk)
		owner_accepted((struct sock *)sk);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(tcpretrans_accept_kretprobe, struct sock *sk)
{
	if (sk)
		owner_accepted(sk);
	return 0;
}

static __always_inline int accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct sock *sk;

	if (ctx->ret < 0)
		return 0;
	sk = sock_from_fd(ctx->ret);
	if (sk && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP)
		owner_accepted(sk);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tcpretrans_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcpretrans_accept4_exit(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx);
}
