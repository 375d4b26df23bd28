/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_IEEE80211SCAN_H
#define NETBPF_IEEE80211SCAN_H

#define SCAN_MAX_CHANNELS 128

enum scan_event_kind {
	SCAN_STARTED = 1,
	SCAN_DONE = 2,
};

/* A channel of a scan request. band is enum nl80211_band (0 2.4 GHz, 1 5 GHz, 2 60 GHz,
 * 3 6 GHz, 4 S1G, 5 LC). */
struct scan_channel {
	__u32 center_freq;	/* MHz */
	__u16 freq_offset;	/* kHz, for S1G channels */
	__u8 band;
	__u8 beacon_found;
};

struct ieee80211scan_event {
	__u64 ts_ns;
	__u64 cgroup; /* cgroup v2 id, the task's (0: none) */
	__u64 duration_ns;	/* SCAN_DONE: since the scan was handed to the driver */
	__u32 kind;		/* enum scan_event_kind */
	__u32 pid;		/* SCAN_STARTED: the task that requested it */
	__u32 n_channels;	/* channels in the request (only the first SCAN_MAX_CHANNELS listed) */
	__u32 flags;		/* NL80211_SCAN_FLAG_* of the request */
	__u32 listed;		/* entries of channels[] filled */
	__u8 aborted;		/* SCAN_DONE */
	__u8 pad[3];
	char comm[16];
	char wiphy[32];
	char ifname[16];
	struct scan_channel channels[SCAN_MAX_CHANNELS];	/* only [0, listed) is written */
};

#endif
