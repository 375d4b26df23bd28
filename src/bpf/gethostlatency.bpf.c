// SPDX-License-Identifier: GPL-2.0
/* gethostlatency: latency of host name lookups through the C library (getaddrinfo,
 * gethostbyname, gethostbyname2 and their _r variants), from a uprobe at entry to a uretprobe
 * at return. The same two programs are attached to every function; the attach cookie says
 * which function fired. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/export.bpf.h"
#include "gethostlatency.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(gethostlatency_event);

struct call {
	__u64 start_ns;
	__u32 func;
	__u32 nested;	/* traced calls made from inside this one, not yet returned */
	char host[GHL_HOST_LEN];
};

/* thread (pid_tgid) -> its outermost resolver call in progress */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

/* glibc's gethostbyname and gethostbyname2 are built on the _r functions, which are the same
 * code as the exported gethostbyname_r/gethostbyname2_r: so one gethostbyname() hits two
 * uprobes. The inner call is counted as nested, not reported. */
static __always_inline bool calls_inside(__u32 outer, __u32 inner)
{
	return (outer == GHL_GETHOSTBYNAME && inner == GHL_GETHOSTBYNAME_R) ||
	       (outer == GHL_GETHOSTBYNAME2 && inner == GHL_GETHOSTBYNAME2_R);
}

SEC("uprobe")
int BPF_UPROBE(gethostlatency_enter, const char *host)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 func = bpf_get_attach_cookie(ctx);
	struct call *cur, fresh = {};

	if (!tgid_ok(id >> 32) || !netns_ok(current_netns_cookie()))
		return 0;
	cur = bpf_map_lookup_elem(&calls, &id);
	if (cur && calls_inside(cur->func, func)) {
		cur->nested++;
		return 0;
	}
	/* Otherwise a call still recorded for this thread was left without returning (longjmp out
	 * of a resolver on a timeout): this one replaces it. */
	fresh.start_ns = bpf_ktime_get_ns();
	fresh.func = func;
	bpf_probe_read_user_str(fresh.host, sizeof(fresh.host), host);
	bpf_map_update_elem(&calls, &id, &fresh, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_URETPROBE(gethostlatency_return)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct gethostlatency_event *e;
	struct call *c;

	c = bpf_map_lookup_elem(&calls, &id);
	if (!c)
		return 0;
	if (c->nested) {
		c->nested--;
		return 0;
	}
	/* Exporter mode (common/export.bpf.h): histogram 0 of microseconds, by function. */
	if (export_mode) {
		export_hist_add(0, c->func, 0, (bpf_ktime_get_ns() - c->start_ns) / 1000);
		bpf_map_delete_elem(&calls, &id);
		return 0;
	}
	e = reserve_event(sizeof(*e));
	if (e) {
		e->ts_ns = bpf_ktime_get_ns();
		e->lat_ns = e->ts_ns - c->start_ns;
		e->pid = id >> 32;
		e->tid = (__u32)id;
		e->func = c->func;
		e->pad = 0;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memcpy(e->host, c->host, sizeof(e->host));
		submit_event(e);
	}
	bpf_map_delete_elem(&calls, &id);
	return 0;
}
