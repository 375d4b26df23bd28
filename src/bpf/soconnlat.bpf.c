// SPDX-License-Identifier: GPL-2.0
/* soconnlat: IP connect() latency histograms (microseconds) keyed by user stack and process,
 * built in the kernel.
 *
 * connect() on an AF_INET/AF_INET6 address starts a clock and takes the user stack. It ends:
 * - at connect()'s return, unless that is EINPROGRESS (or a restart code: a signal interrupted
 *   a blocking connect, whose handshake goes on): blocking connects, and immediate failures. A
 *   connect() repeated on a socket still connecting continues its clock; one on a stream socket
 *   that is past TCP_CLOSE otherwise (connected, or connecting since before we looked) is a
 *   question about a connection, not a new one, and is not timed;
 * - else when, in the same thread, a wait syscall (poll, ppoll, select, pselect6, epoll_wait,
 *   epoll_pwait, epoll_pwait2 where the kernel has it) returns > 0 while that connecting socket has left SYN_SENT: the
 *   moment the application can learn the result. Checking the socket ties the completion to the
 *   connecting fd even when the wait reported other fds; a wait that returns before the
 *   handshake ends does not stop the clock. A pending socket whose fd was closed or reused is
 *   forgotten. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.bpf.h"
#include "soconnlat.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(soconnlat_stack_event);

#define MAX_STACK_DEPTH 127
/* Non-blocking connects one thread can have in flight at once; more are not timed. A power of
 * two (settle() masks with it). */
#define MAX_PENDING 16

struct attempt {
	__u64 start_ns; /* 0: free slot */
	__u64 sk;
	__s32 fd;
	__s32 stack_id;
	__u32 resumed; /* a connect() again on a socket still connecting */
	__u32 pad;
	__u64 caller;
};

struct pending {
	struct attempt slots[MAX_PENDING];
};

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

/* thread in connect() -> the attempt */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct attempt);
} connecting SEC(".maps");

/* thread -> its connects in progress (EINPROGRESS) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pending);
} in_progress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct soconnlat_key);
	__type(value, struct hist);
} hists SEC(".maps");

/* (process, stack) pairs user space has been told about */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct soconnlat_stack_event);
	__type(value, __u8);
} announced SEC(".maps");

/* Not timed because the thread already had MAX_PENDING connects in progress. */
__u64 untracked = 0;

static __always_inline void complete(const struct attempt *a)
{
	struct soconnlat_key key = {
		.stack_id = a->stack_id, .pid = current_tgid(), .caller = a->caller
	};

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	hist_map_add(&hists, &key, (bpf_ktime_get_ns() - a->start_ns) / 1000);
}

/* Tells user space about a stack the first time a process connects from it, at the connect's
 * start: it must find the stack's files in the process's maps while the process lives, and a
 * short-lived client may exit as soon as its connect is done. */
static __always_inline void announce(__u32 pid, __s32 stack_id, __u64 caller)
{
	struct soconnlat_stack_event key = { .pid = pid, .stack_id = stack_id, .caller = caller },
				     *e;
	__u8 one = 1;

	if (stack_id < 0 || bpf_map_lookup_elem(&announced, &key))
		return;
	e = reserve_event(sizeof(*e));
	if (!e)
		return; /* counted in lost_events; user space then looks at exit */
	bpf_map_update_elem(&announced, &key, &one, BPF_ANY);
	*e = key;
	/* Rare (once per key) and urgent: wake the reader now, not at its next timed drain. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* Whether the 8 bytes before addr end with a call instruction: e8 rel32, or ff /2 through a
 * register (ff d0+r, 41 ff d0+r), rip-relative (ff 15 disp32) or a base register with disp8/32. */
static __always_inline bool after_call(__u64 addr)
{
	__u8 c[8];

	if (addr < 4096 || bpf_probe_read_user(c, sizeof(c), (const void *)(addr - 8)))
		return false;
	return c[3] == 0xe8 || (c[2] == 0xff && (c[3] == 0x15 || (c[3] & 0xf8) == 0x90)) ||
	       (c[5] == 0xff && (c[6] & 0xf8) == 0x50) || (c[6] == 0xff && (c[7] & 0xf8) == 0xd0);
}

/* The x86-64 kernel stack (no KASAN, as distributions build): the user registers of a syscall
 * sit at its top, where task_pt_regs() finds them. */
#define KERNEL_STACK_SIZE 16384

/* The user stack pointer at a syscall's entry. bpf_task_pt_regs (5.15) names the registers;
 * before it they are read from the top of the task's kernel stack, and trusted only if they hold
 * this syscall's number (a kernel with a larger stack gives 0: no caller, as before). */
static __always_inline __u64 user_sp(long syscall_nr)
{
	struct task_struct *task;
	struct pt_regs *regs;

	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return BPF_CORE_READ((struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()),
				     sp);
	task = (struct task_struct *)bpf_get_current_task();
	regs = (struct pt_regs *)(BPF_CORE_READ(task, stack) + KERNEL_STACK_SIZE) - 1;
	if ((long)BPF_CORE_READ(regs, orig_ax) != syscall_nr)
		return 0;
	return BPF_CORE_READ(regs, sp);
}

/* The return address into connect()'s caller: the first of the 8 words at the top of the user
 * stack at the syscall that follows a call instruction. glibc's connect() makes the syscall
 * with the return address on top (single-threaded) or 3 words below it (its cancellable path).
 * It needs no frame pointers, which the stack walk does: code without them (most distribution
 * binaries) gives a stack of connect() alone. 0 when unknown. */
static __always_inline __u64 caller_on_stack(long syscall_nr)
{
	__u64 words[8], sp = user_sp(syscall_nr);

	if (!sp || bpf_probe_read_user(words, sizeof(words), (const void *)sp))
		return 0;
	for (int i = 0; i < 8; i++)
		if (after_call(words[i]))
			return words[i];
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int soconnlat_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = current_tgid(), tid = current_tid();
	struct attempt a = { .fd = (__s32)ctx->args[0] };
	struct pending *p;
	struct sock *sk;

	if (!tgid_ok(pid))
		return 0;
	if (!sk_is_inet(read_user_family((const void *)ctx->args[1])))
		return 0;
	sk = sock_from_fd(a.fd);
	if (!sk || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	a.sk = (__u64)sk;

	/* connect() again on a socket still connecting (to learn its result): the clock runs on. */
	p = bpf_map_lookup_elem(&in_progress, &tid);
	if (p) {
		for (int i = 0; i < MAX_PENDING; i++) {
			struct attempt *slot = &p->slots[i];

			if (slot->start_ns && slot->fd == a.fd && slot->sk == a.sk) {
				a = *slot;
				a.resumed = 1;
				slot->start_ns = 0;
				bpf_map_update_elem(&connecting, &tid, &a, BPF_ANY);
				return 0;
			}
		}
	}
	/* Asking about a connection that is already made, or that we did not see start. */
	if (sk_connect_started(sk))
		return 0;
	a.start_ns = bpf_ktime_get_ns();
	a.stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	a.caller = caller_on_stack(ctx->id);
	bpf_map_update_elem(&connecting, &tid, &a, BPF_ANY);
	announce(pid, a.stack_id, a.caller);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int soconnlat_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	static const struct pending empty = {};
	__u32 tid = current_tid();
	struct attempt *a = bpf_map_lookup_elem(&connecting, &tid);
	struct pending *p;

	if (!a)
		return 0;
	/* Asking again about a connection we never saw start: nothing to time. */
	if (!a->resumed && (ctx->ret == -EALREADY || ctx->ret == -EISCONN)) {
		bpf_map_delete_elem(&connecting, &tid);
		return 0;
	}
	if (ctx->ret != -EINPROGRESS && ctx->ret != -EALREADY && !ret_is_restart(ctx->ret)) {
		complete(a);
		bpf_map_delete_elem(&connecting, &tid);
		return 0;
	}
	p = lookup_or_init(&in_progress, &tid, &empty);
	if (p) {
		for (int i = 0; i < MAX_PENDING; i++) {
			if (!p->slots[i].start_ns) {
				p->slots[i] = *a;
				bpf_map_delete_elem(&connecting, &tid);
				return 0;
			}
		}
	}
	__sync_fetch_and_add(&untracked, 1);
	bpf_map_delete_elem(&connecting, &tid);
	return 0;
}

/* Ends the attempt in slot `slot` of thread `tid` if its handshake is over; returns 1 while it is
 * still connecting. A global (noinline) function is verified once, not once per slot of the loop
 * below: inlined, the fd -> sock walk in a 16-slot loop took the verifier ~0.5 s per wait syscall
 * program. It takes scalars, not the slot's address: global functions take pointers only from
 * 5.12, so it looks the slot up itself. */
__noinline int settle(__u32 tid, __u32 slot)
{
	struct pending *p = bpf_map_lookup_elem(&in_progress, &tid);
	struct attempt *a;
	struct sock *sk;

	if (!p)
		return 0;
	/* Masked, not compared: the verifier must see the bound on the index it uses. */
	a = &p->slots[slot & (MAX_PENDING - 1)];
	if (!a->start_ns)
		return 0;
	sk = sock_from_fd(a->fd);
	if ((__u64)sk != a->sk) {
		a->start_ns = 0; /* closed or replaced: not a connection any more */
		return 0;
	}
	if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT)
		return 1;
	complete(a);
	a->start_ns = 0;
	return 0;
}

static __always_inline int on_wait_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct pending *p;
	int left = 0;

	if (ctx->ret <= 0)
		return 0;
	p = bpf_map_lookup_elem(&in_progress, &tid);
	if (!p)
		return 0;
	for (int i = 0; i < MAX_PENDING; i++)
		left += settle(tid, i);
	if (!left)
		bpf_map_delete_elem(&in_progress, &tid);
	return 0;
}

#define WAIT_SYSCALL(name)                                                    \
	SEC("tracepoint/syscalls/sys_exit_" #name)                            \
	int soconnlat_exit_##name(struct trace_event_raw_sys_exit *ctx)       \
	{                                                                     \
		return on_wait_exit(ctx);                                     \
	}

WAIT_SYSCALL(poll)
WAIT_SYSCALL(ppoll)
WAIT_SYSCALL(select)
WAIT_SYSCALL(pselect6)
WAIT_SYSCALL(epoll_wait)
WAIT_SYSCALL(epoll_pwait)
WAIT_SYSCALL(epoll_pwait2) /* 5.11+: left out where the kernel has no such syscall */
