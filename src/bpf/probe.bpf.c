// SPDX-License-Identifier: GPL-2.0
/* Capability probe: one empty program per hook type. netbpf loads them one at a time to learn
 * which program types this kernel accepts (a kernel may refuse fentry while allowing tp_btf). */
#include "common/netbpf.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/tcp_close")
int BPF_PROG(probe_fentry)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_tp_btf)
{
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int probe_raw_tp(void *ctx)
{
	return 0;
}
