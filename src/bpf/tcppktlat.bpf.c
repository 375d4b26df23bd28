// SPDX-License-Identifier: GPL-2.0
/* tcppktlat: how long received TCP data waits in the socket before the application reads it.
 *
 * tcp_probe fires as tcp_rcv_established() takes a segment (softirq, or the owner's backlog
 * flush): the first one carrying payload since the last read stamps the socket. The next
 * tcp_rcv_space_adjust, run by tcp_recvmsg() in the reading task, ends the wait: one event, in
 * the reader's context (its pid, tid and comm), and the stamp is cleared. Later segments that
 * arrive before that read do not move the stamp: the latency is the oldest unread byte's. Stamps
 * of sockets that die unread go with tcp_destroy_sock.
 *
 * tp_btf is the best plan; raw_tp runs the same code on kernels that refuse tp_btf. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcppktlat.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcppktlat_event);

/* The positional threshold and -t. */
const volatile __u64 min_lat_ns = 0;
const volatile __u32 filter_tid = 0;

/* Keyed by the socket's address: at most one stamp per socket, the oldest unread segment's. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} arrivals SEC(".maps");

static __always_inline int on_segment(struct sock *sk, const struct sk_buff *skb)
{
	__u64 key = (__u64)sk, now;
	unsigned char *th;
	__u8 doff_byte = 0;
	__u32 len;

	/* Pure ACKs carry nothing to read. skb->data is the TCP header here; its data offset is the
	 * high nibble of byte 12. */
	th = BPF_CORE_READ(skb, data);
	len = BPF_CORE_READ(skb, len);
	if (bpf_probe_read_kernel(&doff_byte, 1, th + 12) || len <= (__u32)(doff_byte >> 4) * 4)
		return 0;
	if (!sk_netns_ok(sk) || !sk_cgroup_ok(sk))
		return 0;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&arrivals, &key, &now, BPF_NOEXIST);
	return 0;
}

static __always_inline int on_read(struct sock *sk)
{
	__u64 key = (__u64)sk, *arrived, now, id;
	struct tcppktlat_event *e;
	struct sock_tuple t = {};
	__u32 tgid, tid;

	arrived = bpf_map_lookup_elem(&arrivals, &key);
	if (!arrived)
		return 0;
	now = bpf_ktime_get_ns();
	id = bpf_get_current_pid_tgid();
	tgid = id >> 32;
	tid = (__u32)id;
	if (now - *arrived < min_lat_ns || !tgid_ok(tgid) || (filter_tid && filter_tid != tid))
		goto done;
	sk_read_tuple(sk, &t);
	tuple_unmap_v4(&t);
	if (!family_ok(t.family) || !lport_ok(t.lport) || !rport_ok(t.rport))
		goto done;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	e->tuple = t;
	e->ts_ns = now;
	e->cgroup = sk_cgroup_id(sk);
	e->lat_ns = now - *arrived;
	e->pid = tgid;
	e->tid = tid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	submit_event(e);
done:
	bpf_map_delete_elem(&arrivals, &key);
	return 0;
}

static __always_inline int on_destroy(struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&arrivals, &key);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcppktlat_probe, struct sock *sk, const struct sk_buff *skb)
{
	return on_segment(sk, skb);
}

SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(tcppktlat_read, struct sock *sk)
{
	return on_read(sk);
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(tcppktlat_destroy, struct sock *sk)
{
	return on_destroy(sk);
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(tcppktlat_probe_raw, struct sock *sk, const struct sk_buff *skb)
{
	return on_segment(sk, skb);
}

SEC("raw_tp/tcp_rcv_space_adjust")
int BPF_PROG(tcppktlat_read_raw, struct sock *sk)
{
	return on_read(sk);
}

SEC("raw_tp/tcp_destroy_sock")
int BPF_PROG(tcppktlat_destroy_raw, struct sock *sk)
{
	return on_destroy(sk);
}
