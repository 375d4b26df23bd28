/* SPDX-License-Identifier: GPL-2.0 */
/* errno values BPF programs compare syscall and kernel results with (they are #defines in the
 * kernel, so vmlinux.h cannot carry them). */
#ifndef NETBPF_ERRNO_BPF_H
#define NETBPF_ERRNO_BPF_H

#define EINTR 4
#define EAGAIN 11
#define EEXIST 17
#define ECONNABORTED 103
#define EISCONN 106
#define EALREADY 114
#define EINPROGRESS 115

/* Kernel-internal codes a syscall's exit tracepoint can see: a signal interrupted the call, and
 * the kernel then restarts it (SA_RESTART) or turns the code into EINTR, after the tracepoint. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* A syscall result (-errno) that means "interrupted, to be restarted or reported as EINTR":
 * the operation the call started (a TCP handshake, say) goes on. */
static __always_inline bool ret_is_restart(long ret)
{
	return ret == -ERESTARTSYS || ret == -ERESTARTNOINTR || ret == -ERESTARTNOHAND ||
	       ret == -ERESTART_RESTARTBLOCK;
}

#endif
