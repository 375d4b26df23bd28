/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SUPERPING_H
#define NETBPF_SUPERPING_H

/* One ICMP/ICMPv6 echo reply matched to the request this host sent. */
struct superping_event {
	__u8 raddr[16];	/* the host that replied (IPv4 in the first 4 bytes) */
	__u64 ts_ns;	/* when the reply arrived */
	__u64 rtt_ns;	/* request queued to the device -> reply received from the device */
	__u32 pid;	/* the process that sent the request (task on CPU at send) */
	__u16 family;
	__u16 id;	/* echo identifier, host order */
	__u16 seq;	/* echo sequence, host order */
	__u16 pad;
	char comm[16];
	char ifname[16];	/* device the reply came in on */
	__u64 cgroup; /* cgroup v2 id, the request's socket's (0: none) */
};

#endif
