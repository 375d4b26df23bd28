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
