// SPDX-License-Identifier: GPL-2.0
/* tcprtt: histograms of the smoothed RTT of TCP connections, one sample per received segment.
 *
 * tcp:tcp_probe fires at the top of tcp_rcv_established, where the book-era tools hooked with a
 * kprobe: each segment received on an established connection gives one sample of its srtt.
 *
 * Samples go to the map behind hists_live[0]. With -i, user space swaps the other map in each
 * interval; updating an array of maps waits for running programs to finish (synchronize_rcu),
 * so the map swapped out is complete and idle when it is read and cleared: no sample is lost or
 * counted in two intervals. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/hist.bpf.h"
#include "tcprtt.h"

char LICENSE[] SEC("license") = "GPL";

/* Set from user space before load. */
const volatile bool in_ms = false;
const volatile __u8 key_by = 0; /* 0: one histogram, 1: per local address, 2: per remote */
const volatile __u16 filter_laddr_family = 0;
const volatile __u8 filter_laddr[16] = {};
const volatile __u16 filter_raddr_family = 0;
const volatile __u8 filter_raddr[16] = {};

struct hists_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tcprtt_key);
	__type(value, struct tcprtt_hist);
};

struct hists_map hists_a SEC(".maps");
struct hists_map hists_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct hists_map);
} hists_live SEC(".maps") = {
	.values = { [0] = &hists_a },
};

static __always_inline bool addr_ok(__u16 want_family, const volatile __u8 *want, __u16 family,
				    const __u8 *addr)
{
	if (!want_family)
		return true;
	if (want_family != family)
		return false;
	for (int i = 0; i < 16; i++)
		if (want[i] != addr[i])
			return false;
	return true;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcprtt_probe, struct sock *sk, const struct sk_buff *skb)
{
	static const struct tcprtt_hist empty = {};
	struct tcprtt_key key = {};
	struct tcprtt_hist *h;
	struct sock_tuple t = {};
	__u32 slot = 0;
	void *hists;
	__u64 srtt;

	t.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (!sk_is_inet(t.family) || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	sk_read_tuple(sk, &t);
	/* A v4-mapped IPv6 peer (::ffff:a.b.c.d) is an IPv4 one: compare and key it as IPv4. */
	tuple_unmap_v4(&t);
	if (!family_ok(t.family) || !lport_ok(t.lport) || !rport_ok(t.rport))
		return 0;
	if (!addr_ok(filter_laddr_family, filter_laddr, t.family, t.saddr) ||
	    !addr_ok(filter_raddr_family, filter_raddr, t.family, t.daddr))
		return 0;

	/* srtt_us holds 8 times the smoothed RTT in microseconds. */
	srtt = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	if (in_ms)
		srtt /= 1000;
	if (key_by) {
		key.family = t.family;
		__builtin_memcpy(key.addr, key_by == 1 ? t.saddr : t.daddr, 16);
	}
	hists = bpf_map_lookup_elem(&hists_live, &slot);
	if (!hists)
		return 0;
	h = lookup_or_init(hists, &key, &empty);
	if (h) {
		hist_add(&h->hist, srtt);
		__sync_fetch_and_add(&h->total, srtt);
	}
	return 0;
}
