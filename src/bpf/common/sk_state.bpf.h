/* SPDX-License-Identifier: GPL-2.0 */
/* A tool's per-socket state, from inet_sock_set_state, kept where this kernel allows:
 *
 * - in the socket's own storage (BPF_MAP_TYPE_SK_STORAGE) for the tp_btf program: never
 *   evicted, freed with the socket; but tracing programs get socket storage only from 5.11;
 * - before that, for the classic tracepoint program (tracepoint/sock/inet_sock_set_state, which
 *   gives the socket's address), in a bounded LRU hash keyed by that address. An entry is created
 *   where the tool starts following a socket and deleted where it stops (sk_state_forget());
 *   when more sockets are followed at once than the hash holds, the oldest are evicted. What
 *   was inserted and deleted is counted here; user space (core::sk_state) takes the entries
 *   left at exit from it and reports the evictions.
 *
 * DEFINE_SK_STATE(struct foo) defines both maps (user space creates only the one its plan
 * uses) and, for `hashed` a constant (false in the tp_btf program, true in the tracepoint one),
 * sk_state_lookup(sk, hashed), sk_state_create(sk, hashed) and sk_state_forget(sk, hashed). */
#ifndef NETBPF_SK_STATE_BPF_H
#define NETBPF_SK_STATE_BPF_H

/* bpf_sk_storage_get() flag (a #define in the kernel's uapi header). */
#ifndef BPF_SK_STORAGE_GET_F_CREATE
#define BPF_SK_STORAGE_GET_F_CREATE 1
#endif

/* Sockets followed at once in the hash (an LRU hash is preallocated: ~100 bytes each). */
#ifndef SK_STATE_HASH_ENTRIES
#define SK_STATE_HASH_ENTRIES 16384
#endif

/* Entries of the hash created and deleted (read at exit: evicted = inserted - deleted - left). */
__u64 sk_state_inserted = 0;
__u64 sk_state_deleted = 0;

#define DEFINE_SK_STATE(value_type)                                                            \
	struct {                                                                               \
		__uint(type, BPF_MAP_TYPE_SK_STORAGE);                                         \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                          \
		__type(key, int);                                                              \
		__type(value, value_type);                                                     \
	} sk_state_stored SEC(".maps");                                                        \
                                                                                               \
	struct {                                                                               \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                                           \
		__uint(max_entries, SK_STATE_HASH_ENTRIES);                                    \
		__type(key, __u64);                                                            \
		__type(value, value_type);                                                     \
	} sk_state_hashed SEC(".maps");                                                        \
                                                                                               \
	/* sk's state, or NULL when it has none. */                                            \
	static __always_inline value_type *sk_state_lookup(struct sock *sk, bool hashed)       \
	{                                                                                      \
		__u64 key = (__u64)sk;                                                         \
                                                                                               \
		if (hashed)                                                                    \
			return bpf_map_lookup_elem(&sk_state_hashed, &key);                    \
		return bpf_sk_storage_get(&sk_state_stored, sk, NULL, 0);                      \
	}                                                                                      \
                                                                                               \
	/* sk's state, created zeroed when it has none; NULL when the kernel had no memory. */ \
	static __always_inline value_type *sk_state_create(struct sock *sk, bool hashed)       \
	{                                                                                      \
		__u64 key = (__u64)sk;                                                         \
		value_type zero;                                                               \
		value_type *v;                                                                 \
                                                                                               \
		if (!hashed)                                                                   \
			return bpf_sk_storage_get(&sk_state_stored, sk, NULL,                  \
						  BPF_SK_STORAGE_GET_F_CREATE);                \
		v = bpf_map_lookup_elem(&sk_state_hashed, &key);                               \
		if (v)                                                                         \
			return v;                                                              \
		__builtin_memset(&zero, 0, sizeof(zero)); /* padding too: the helper reads it */ \
		if (bpf_map_update_elem(&sk_state_hashed, &key, &zero, BPF_NOEXIST))          \
			return NULL;                                                           \
		__sync_fetch_and_add(&sk_state_inserted, 1);                                   \
		return bpf_map_lookup_elem(&sk_state_hashed, &key);                            \
	}                                                                                      \
                                                                                               \
	/* The tool stops following sk: its hash entry goes (socket storage stays with the     \
	 * socket: the tool resets what it must). The state must not be used after this. */   \
	static __always_inline void sk_state_forget(struct sock *sk, bool hashed)              \
	{                                                                                      \
		__u64 key = (__u64)sk;                                                         \
                                                                                               \
		if (hashed && !bpf_map_delete_elem(&sk_state_hashed, &key))                    \
			__sync_fetch_and_add(&sk_state_deleted, 1);                            \
	}

/* The classic tracepoint's arguments, for the hashed programs: the socket's address (read with
 * probe reads, as the tp_btf pointer is) and its change. */
#define SK_STATE_TP_ARGS(ctx) (struct sock *)(ctx)->skaddr, (ctx)->oldstate, (ctx)->newstate

/* A tool's two programs on inet_sock_set_state, one per plan, both calling the tool's
 * set_state(sk, oldstate, newstate, hashed): TOOL_set_state (tp_btf, socket storage) and
 * TOOL_set_state_hashed (the classic tracepoint, before 5.11). */
#define SK_STATE_PROGRAMS(tool)                                                                \
	SEC("tp_btf/inet_sock_set_state")                                                      \
	int BPF_PROG(tool##_set_state, struct sock *sk, int oldstate, int newstate)            \
	{                                                                                      \
		return set_state(sk, oldstate, newstate, false);                               \
	}                                                                                      \
                                                                                               \
	SEC("tracepoint/sock/inet_sock_set_state")                                             \
	int tool##_set_state_hashed(struct trace_event_raw_inet_sock_set_state *ctx)           \
	{                                                                                      \
		return set_state(SK_STATE_TP_ARGS(ctx), true);                                 \
	}

#endif
