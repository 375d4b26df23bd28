/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_GETHOSTLATENCY_H
#define NETBPF_GETHOSTLATENCY_H

#define GHL_HOST_LEN 128

/* The resolver functions traced, each with its own entry program (user space keeps the same
 * order). */
enum ghl_func {
	GHL_GETADDRINFO = 0,
	GHL_GETHOSTBYNAME = 1,
	GHL_GETHOSTBYNAME2 = 2,
	GHL_GETHOSTBYNAME_R = 3,
	GHL_GETHOSTBYNAME2_R = 4,
	GHL_GETHOSTBYADDR = 5,
	GHL_GETHOSTBYADDR_R = 6,
};

/* One resolver call, sent when it returns. */
struct gethostlatency_event {
	__u64 ts_ns;	/* when the call returned */
	__u64 cgroup; /* cgroup v2 id, the task's (0: none) */
	__u64 lat_ns;
	__u32 pid;
	__u32 tid;
	__u32 func;	/* enum ghl_func */
	__u32 addr_len; /* gethostbyaddr*: 4 or 16, host holds the address's bytes; else 0 */
	char comm[16];
	char host[GHL_HOST_LEN]; /* the name asked for (NUL-terminated), or the address */
};

#endif
