/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPNAGLE_H
#define NETBPF_TCPNAGLE_H

/* tcp_sock.nonagle is 4 bits: TCP_NAGLE_OFF 1, TCP_NAGLE_CORK 2, TCP_NAGLE_PUSH 4. Counts are
 * kept per value, in arrays of this many u64. */
#define TCPNAGLE_VALUES 16

#endif
