// SPDX-License-Identifier: GPL-2.0
/* skblife: how long sk_buff objects live, from their slab allocation to their slab free.
 *
 * kmem_cache_alloc/free fire for every slab cache, so the cost is in recognising skb caches: each
 * cache is classified once by name and the verdict kept by pointer. skbuff_fclone_cache is often
 * merged into another cache of the same size (its name is then that cache's, e.g.
 * "pool_workqueue"); its objects are recognised by the allocation site instead: only __alloc_skb
 * allocates fclones. */
#include "common/netbpf.bpf.h"
#include "common/netdev.bpf.h"
#include "common/hist.bpf.h"
#include "skblife.h"

char LICENSE[] SEC("license") = "GPL";

/* __alloc_skb's text range, from kallsyms (0: unknown, fclones found by name only). */
const volatile __u64 alloc_skb_start = 0;
const volatile __u64 alloc_skb_end = 0;

#define NAME_LEN 24

/* kmem_cache pointer -> enum skblife_cache */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} caches SEC(".maps");

struct life {
	__u64 born_ns;
	__u32 passed_filter; /* crossed a device that --netns / -i accept */
	__u32 pad;
};

/* sk_buff address -> its life so far. LRU: skbs that leave through an untraced free (into a
 * per-CPU NAPI cache) age out instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, __u64);
	__type(value, struct life);
} born SEC(".maps");

/* Set when --netns or -i is given: the device hooks are loaded only then. */
const volatile bool filtering = false;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} lifetime_ns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&stats, &which);

	if (n)
		(*n)++;
}

static __always_inline bool name_is(const char *name, const char *want, int len)
{
	for (int i = 0; i < len; i++)
		if (name[i] != want[i])
			return false;
	return true;
}

/* Slab cache names (globals: clang places function-local static strings where BTF cannot
 * describe them). */
const char head_cache_name[] = "skbuff_head_cache";
const char fclone_cache_name[] = "skbuff_fclone_cache";
const char small_head_cache_name[] = "skbuff_small_head";

static __always_inline __u32 classify(const struct kmem_cache *s)
{
	char name[NAME_LEN] = {};
	__u64 key = (__u64)s;
	__u32 *known = bpf_map_lookup_elem(&caches, &key), kind = CACHE_OTHER;

	if (known)
		return *known;
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(s, name));
	/* sizeof includes the NUL: whole-name matches only. */
	if (name_is(name, head_cache_name, sizeof(head_cache_name)) ||
	    name_is(name, fclone_cache_name, sizeof(fclone_cache_name)))
		kind = CACHE_SKB;
	else if (name_is(name, small_head_cache_name, sizeof(small_head_cache_name)))
		kind = CACHE_SMALL_HEAD;
	bpf_map_update_elem(&caches, &key, &kind, BPF_ANY);
	return kind;
}

/* The slab tracepoints are raw tracepoints here: as tp_btf, a `const void *` argument (ptr) may
 * not be read on kernels before 6.5 or so ("arg1 type UNKNOWN is not a struct"); a raw
 * tracepoint passes every argument as a plain value. */
SEC("raw_tp/kmem_cache_alloc")
int BPF_PROG(skblife_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s)
{
	__u32 kind = classify(s);
	__u64 key = (__u64)ptr;
	struct life life = {};

	if (!ptr || kind == CACHE_SMALL_HEAD)
		return 0;
	if (kind != CACHE_SKB) {
		/* Not an skb cache by name: a merged fclone cache, when called from __alloc_skb. */
		if (call_site < alloc_skb_start || call_site >= alloc_skb_end)
			return 0;
		if (kind != CACHE_SKB_SHARED) {
			__u32 shared = CACHE_SKB_SHARED;
			__u64 skey = (__u64)s;

			bpf_map_update_elem(&caches, &skey, &shared, BPF_ANY);
		}
	}
	life.born_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&born, &key, &life, BPF_ANY);
	stat(STAT_ALLOCS);
	return 0;
}

/* The filters are about where an skb went: the allocation knows nothing yet and at the free the
 * device pointer is gone or overlaid (TCP queues reuse it for tree links, UDP for scratch). So
 * an skb is marked when it crosses a device the filters accept. A TCP clone lives in the second
 * half of its parent's fclone object: the object's address is the parent's. */
static __always_inline void mark(const struct sk_buff *skb)
{
	__u64 key = (__u64)skb;
	struct life *l;

	if (!dev_ok(skb->dev))
		return;
	if (!skb_cgroup_ok(skb))
		return;
	l = bpf_map_lookup_elem(&born, &key);
	if (!l && BPF_CORE_READ_BITFIELD(skb, fclone) == SKB_FCLONE_CLONE) {
		key -= bpf_core_type_size(struct sk_buff);
		l = bpf_map_lookup_elem(&born, &key);
	}
	if (l)
		l->passed_filter = 1;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(skblife_tx, struct sk_buff *skb)
{
	mark(skb);
	return 0;
}

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(skblife_nic_rx, const struct sk_buff *skb)
{
	mark(skb);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(skblife_rx, struct sk_buff *skb)
{
	mark(skb);
	return 0;
}

SEC("raw_tp/kmem_cache_free")
int BPF_PROG(skblife_free, unsigned long call_site, const void *ptr, const struct kmem_cache *s)
{
	__u64 key = (__u64)s, age;
	__u32 *kind = bpf_map_lookup_elem(&caches, &key), zero = 0;
	struct life *l;
	struct hist *h;
	bool passed;

	if (!kind || (*kind != CACHE_SKB && *kind != CACHE_SKB_SHARED))
		return 0;
	key = (__u64)ptr;
	l = bpf_map_lookup_elem(&born, &key);
	if (!l) {
		/* In a merged cache, a miss is most likely another kind of object. */
		if (*kind == CACHE_SKB && !filtering)
			stat(STAT_FREES_UNSEEN);
		return 0;
	}
	age = bpf_ktime_get_ns() - l->born_ns;
	passed = l->passed_filter;
	bpf_map_delete_elem(&born, &key);
	if (filtering && !passed) {
		stat(STAT_EXCLUDED);
		return 0;
	}
	h = bpf_map_lookup_elem(&lifetime_ns, &zero);
	if (h)
		h->slots[hist_slot(age)]++;
	stat(STAT_FREES);
	return 0;
}
