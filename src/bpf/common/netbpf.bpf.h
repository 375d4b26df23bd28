/* SPDX-License-Identifier: GPL-2.0 */
/* Base include for every netbpf BPF program: kernel types, libbpf helpers and the constants
 * that vmlinux.h cannot carry (they are #defines in the kernel). */
#ifndef NETBPF_BPF_H
#define NETBPF_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "common/errno.bpf.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

#define S_IFMT 00170000
#define S_IFSOCK 0140000

#define PF_KTHREAD 0x00200000

#define TASK_COMM_LEN 16

/* Field f of the kernel object *ptr (of `type`) into dst, taken from buf, a copy of the object's
 * first `bytes` made with one probe read: a probe read costs ~30 ns in a VM however few bytes it
 * copies, so a hot path reading several fields near each other copies them at once. A kernel
 * that puts the field beyond the copy gets it read on its own (the offset is relocated to a
 * constant at load, and the verifier keeps only the branch it takes). */
#define COPIED_FIELD(type, buf, bytes, ptr, f, dst)                                            \
	do {                                                                                   \
		__u32 off_ = bpf_core_field_offset(type, f);                                   \
		if (off_ <= (bytes) - sizeof(dst))                                             \
			__builtin_memcpy(&(dst), (buf) + off_, sizeof(dst));                   \
		else                                                                           \
			BPF_CORE_READ_INTO(&(dst), ptr, f);                                    \
	} while (0)

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

static __always_inline bool current_is_kthread(void)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, flags) & PF_KTHREAD;
}

#endif
