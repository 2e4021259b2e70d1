// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * A BPF LSM program for the vmtest guest only: bpf() refuses to load sk_msg and sk_skb programs
 * and to create sockmaps and sockhashes with EINVAL, the answer of a kernel built without
 * CONFIG_BPF_STREAM_PARSER/CONFIG_NET_SOCK_MSG. vmtests/test_no_sockmap.py runs hoopd on such a
 * "kernel". Never load it on a shared machine: it applies to every process.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EINVAL 22

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("lsm/bpf")
int BPF_PROG(hoop_vm_no_sockmap, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	if (ret)
		return ret;
	if (cmd == BPF_PROG_LOAD &&
	    (attr->prog_type == BPF_PROG_TYPE_SK_MSG || attr->prog_type == BPF_PROG_TYPE_SK_SKB))
		return -EINVAL;
	if (cmd == BPF_MAP_CREATE &&
	    (attr->map_type == BPF_MAP_TYPE_SOCKMAP || attr->map_type == BPF_MAP_TYPE_SOCKHASH))
		return -EINVAL;
	return 0;
}
