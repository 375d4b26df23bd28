/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCKETIO_H
#define NETBPF_SOCKETIO_H

#define SOCKETIO_READ 0
#define SOCKETIO_WRITE 1

/* Socket I/O calls are counted per (process, direction, protocol, port): the local port of a
 * socket bound to a chosen port (a server's connections), else the remote port. */
struct socketio_key {
	__u32 pid;
	__u16 rport; /* host order; 0 when not connected, or keyed by lport */
	__u8 dir; /* SOCKETIO_READ or SOCKETIO_WRITE */
	__u8 pad;
	char comm[16];
	char proto[32]; /* the socket's struct proto name: "TCP", "UDPv6", "UNIX-STREAM", ... */
	__u16 lport; /* host order; set (and rport 0) for a socket bound to a chosen port */
	__u16 pad2[3];
	__u64 cgroup; /* cgroup v2 id, the socket's */
};

#endif
