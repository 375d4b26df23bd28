// SPDX-License-Identifier: GPL-2.0
/* gethostlatency: latency of host name lookups through the C library (getaddrinfo,
 * gethostbyname, gethostbyname2 and their _r variants; reverse lookups by gethostbyaddr and its
 * _r variant), from a uprobe at entry to a uretprobe
 * at return. Each function has its own entry program, which says which function fired (attach
 * cookies would do it with one, but need 5.15); the return program is shared. */
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
	__u64 entry_sp;	/* user stack pointer at entry: calls made from inside run below it */
	__u32 func;
	__u32 addr_len;
	char host[GHL_HOST_LEN];
};

#define STALE_NS (60ULL * 1000000000)

/* thread (pid_tgid) -> its outermost resolver call in progress */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

/* The traced functions call each other inside glibc: gethostbyname() runs gethostbyname_r(),
 * getaddrinfo() with AF_INET hints runs gethostbyname2_r(), and so on (the internal calls hit the
 * same code the exported functions are). Only the outermost call of a thread is reported. A call
 * is inside the recorded one when it starts below that one's stack pointer (the stack grows
 * down); one that starts at or above it was made after the recorded call ended without
 * returning (a longjmp out of a resolver on a timeout), and replaces it; so does any call once the
 * recorded one is a minute old (a longjmp to a frame above it, then a call from deeper down). The
 * same test at return
 * tells the outer call's return (stack pointer back at or above its entry: x86-64 pops the
 * return address, arm64 returns through a register) from a nested one's. */
/* host: the name asked for, or with addr_len (4 or 16) the address looked up. */
static __always_inline int enter(struct pt_regs *ctx, const void *host, __u32 addr_len,
				 __u32 func)
{
	__u64 id = bpf_get_current_pid_tgid(), sp = PT_REGS_SP(ctx), now;
	struct call *cur, fresh = {};

	if (!tgid_ok(id >> 32) || !current_netns_ok())
		return 0;
	if (!current_cgroup_ok())
		return 0;
	now = bpf_ktime_get_ns();
	cur = bpf_map_lookup_elem(&calls, &id);
	if (cur && sp < cur->entry_sp && now - cur->start_ns < STALE_NS)
		return 0;
	fresh.start_ns = now;
	fresh.entry_sp = sp;
	fresh.func = func;
	fresh.addr_len = addr_len;
	if (addr_len == 16)
		bpf_probe_read_user(fresh.host, 16, host);
	else if (addr_len == 4)
		bpf_probe_read_user(fresh.host, 4, host);
	else
		bpf_probe_read_user_str(fresh.host, sizeof(fresh.host), host);
	bpf_map_update_elem(&calls, &id, &fresh, BPF_ANY);
	return 0;
}

#define ENTER(name, func)                                                                          \
	SEC("uprobe")                                                                              \
	int BPF_UPROBE(gethostlatency_enter_##name, const char *host)                              \
	{                                                                                          \
		return enter(ctx, host, 0, func);                                                  \
	}

/* gethostbyaddr{,_r}(addr, len, type, ...): the address's bytes when len fits its type (else
 * glibc fails the call at once, and HOST is empty). */
#define ENTER_ADDR(name, func)                                                                     \
	SEC("uprobe")                                                                              \
	int BPF_UPROBE(gethostlatency_enter_##name, const void *addr, __u32 len, int type)        \
	{                                                                                          \
		bool fits = (type == AF_INET && len == 4) || (type == AF_INET6 && len == 16);      \
		return enter(ctx, fits ? addr : NULL, fits ? len : 0, func);                       \
	}

ENTER(getaddrinfo, GHL_GETADDRINFO)
ENTER(gethostbyname, GHL_GETHOSTBYNAME)
ENTER(gethostbyname2, GHL_GETHOSTBYNAME2)
ENTER(gethostbyname_r, GHL_GETHOSTBYNAME_R)
ENTER(gethostbyname2_r, GHL_GETHOSTBYNAME2_R)
ENTER_ADDR(gethostbyaddr, GHL_GETHOSTBYADDR)
ENTER_ADDR(gethostbyaddr_r, GHL_GETHOSTBYADDR_R)

SEC("uretprobe")
int BPF_URETPROBE(gethostlatency_return)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct gethostlatency_event *e;
	struct call *c;

	c = bpf_map_lookup_elem(&calls, &id);
	if (!c || PT_REGS_SP(ctx) < c->entry_sp)
		return 0;
	/* Exporter mode (common/export.bpf.h): histogram 0 of microseconds, by function. */
	if (export_mode) {
		export_hist_add(0, c->func, 0, (bpf_ktime_get_ns() - c->start_ns) / 1000);
		bpf_map_delete_elem(&calls, &id);
		return 0;
	}
	e = reserve_event(sizeof(*e));
	if (e) {
		e->cgroup = current_cgroup_id();
		e->ts_ns = bpf_ktime_get_ns();
		e->lat_ns = e->ts_ns - c->start_ns;
		e->pid = id >> 32;
		e->tid = (__u32)id;
		e->func = c->func;
		e->addr_len = c->addr_len;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memcpy(e->host, c->host, sizeof(e->host));
		submit_event(e);
	}
	bpf_map_delete_elem(&calls, &id);
	return 0;
}
