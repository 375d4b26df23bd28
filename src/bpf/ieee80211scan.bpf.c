// SPDX-License-Identifier: GPL-2.0
/* ieee80211scan: Wi-Fi scans, from cfg80211's tracepoints, which every driver's scans pass
 * (mac80211 soft-MAC drivers and full-MAC ones alike): cfg80211:rdev_scan when a scan request is
 * handed to the driver, cfg80211:cfg80211_scan_done when the driver reports it finished.
 *
 * The wireless types are not in this project's vmlinux.h (it comes from a kernel without
 * CONFIG_CFG80211), and cfg80211 is usually a module: the few fields needed are declared here
 * as CO-RE flavours (___nb) and relocated against the running kernel's or module's BTF. Every
 * program first checks that the types exist, so the object also loads on a kernel without a
 * wireless stack (where user space refuses to run the tool anyway).
 *
 * Recent kernels pass struct cfg80211_scan_request_int to these tracepoints, which wraps the
 * request (field req); older ones passed the struct cfg80211_scan_request itself. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/netns.bpf.h"
#include "ieee80211scan.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(ieee80211scan_event);

/* The field's type must be an enum for CO-RE to match it (the kernel's is enum nl80211_band). */
enum nl80211_band___nb {
	NL80211_BAND_2GHZ___nb = 0,
};

struct ieee80211_channel___nb {
	enum nl80211_band___nb band;
	__u32 center_freq;
	__u16 freq_offset;
	bool beacon_found;
} __attribute__((preserve_access_index));

struct wiphy___nb {
	possible_net_t _net;
	struct device dev;
} __attribute__((preserve_access_index));

struct wireless_dev___nb {
	struct net_device *netdev;
} __attribute__((preserve_access_index));

struct cfg80211_scan_request___nb {
	__u32 n_channels;
	__u32 flags;
	struct wireless_dev___nb *wdev;
	struct wiphy___nb *wiphy;
	struct ieee80211_channel___nb *channels[];
} __attribute__((preserve_access_index));

struct cfg80211_scan_request_int___nb {
	struct cfg80211_scan_request___nb req;
} __attribute__((preserve_access_index));

struct cfg80211_scan_info___nb {
	bool aborted;
} __attribute__((preserve_access_index));

/* wiphy -> when its scan was handed to the driver */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u64);
} scans SEC(".maps");

/* The request inside what the tracepoint passed (see the top comment). */
static __always_inline const struct cfg80211_scan_request___nb *scan_request(const void *arg)
{
	if (bpf_core_type_exists(struct cfg80211_scan_request_int___nb))
		return arg + bpf_core_field_offset(struct cfg80211_scan_request_int___nb, req);
	return arg;
}

static __always_inline bool wiphy_netns_ok(const struct wiphy___nb *wiphy)
{
	return !filter_netns || net_id(BPF_CORE_READ(wiphy, _net.net)) == filter_netns;
}

static __always_inline void wiphy_name(const struct wiphy___nb *wiphy, char *name, __u32 len)
{
	const char *s = BPF_CORE_READ(wiphy, dev.kobj.name);

	if (s)
		bpf_probe_read_kernel_str(name, len, s);
}

SEC("raw_tp/rdev_scan")
int ieee80211scan_started(struct bpf_raw_tracepoint_args *ctx)
{
	const struct cfg80211_scan_request___nb *req;
	const struct wiphy___nb *wiphy = (const void *)ctx->args[0];
	struct ieee80211_channel___nb *chan;
	struct ieee80211scan_event *e;
	struct net_device *netdev;
	__u64 key = (__u64)wiphy, now;
	__u32 n, off;

	if (!bpf_core_type_exists(struct cfg80211_scan_request___nb))
		return 0;
	if (!wiphy_netns_ok(wiphy))
		return 0;
	if (!current_cgroup_ok())
		return 0; /* the requester's (a scan is asked for by a process) */
	req = scan_request((const void *)ctx->args[1]);
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&scans, &key, &now, BPF_ANY);

	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, offsetof(struct ieee80211scan_event, channels));
	e->cgroup = current_cgroup_id();
	e->kind = SCAN_STARTED;
	e->ts_ns = now;
	e->pid = current_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	wiphy_name(wiphy, e->wiphy, sizeof(e->wiphy));
	netdev = BPF_CORE_READ(req, wdev, netdev);
	if (netdev)
		bpf_core_read_str(e->ifname, sizeof(e->ifname), &netdev->name);
	n = BPF_CORE_READ(req, n_channels);
	e->n_channels = n;
	e->flags = BPF_CORE_READ(req, flags);
	off = bpf_core_field_offset(struct cfg80211_scan_request___nb, channels);
	for (__u32 i = 0; i < SCAN_MAX_CHANNELS && i < n; i++) {
		__builtin_memset(&e->channels[i], 0, sizeof(e->channels[i]));
		chan = NULL;
		bpf_probe_read_kernel(&chan, sizeof(chan), (const void *)req + off + i * sizeof(chan));
		if (!chan)
			break;
		e->channels[i].band = BPF_CORE_READ(chan, band);
		e->channels[i].center_freq = BPF_CORE_READ(chan, center_freq);
		if (bpf_core_field_exists(chan->freq_offset))
			e->channels[i].freq_offset = BPF_CORE_READ(chan, freq_offset);
		e->channels[i].beacon_found = BPF_CORE_READ(chan, beacon_found);
		e->listed = i + 1;
	}
	submit_event(e);
	return 0;
}

SEC("raw_tp/cfg80211_scan_done")
int ieee80211scan_done(struct bpf_raw_tracepoint_args *ctx)
{
	const struct cfg80211_scan_request___nb *req;
	const struct cfg80211_scan_info___nb *info = (const void *)ctx->args[1];
	struct ieee80211scan_event *e;
	struct wiphy___nb *wiphy;
	__u64 key, *start, now;

	if (!bpf_core_type_exists(struct cfg80211_scan_request___nb))
		return 0;
	req = scan_request((const void *)ctx->args[0]);
	wiphy = BPF_CORE_READ(req, wiphy);
	key = (__u64)wiphy;
	start = bpf_map_lookup_elem(&scans, &key);
	if (!start) /* started before we attached, or in another netns */
		return 0;
	now = bpf_ktime_get_ns();
	e = reserve_event(sizeof(*e));
	if (e) {
		__builtin_memset(e, 0, offsetof(struct ieee80211scan_event, channels));
		e->cgroup = current_cgroup_id();
		e->kind = SCAN_DONE;
		e->ts_ns = now;
		e->duration_ns = now - *start;
		e->pid = current_tgid();
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		e->aborted = info ? BPF_CORE_READ(info, aborted) : 0;
		wiphy_name(wiphy, e->wiphy, sizeof(e->wiphy));
		submit_event(e);
	}
	bpf_map_delete_elem(&scans, &key);
	return 0;
}
