// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * hoop's kernel side. Attached to an agent cgroup only (never to hoopd's), so hoopd's own
 * upstream connections are not redirected.
 *
 *   cgroup/connect4|6   rewrite a targeted destination to hoopd's loopback listener and stash
 *                       the original destination and the caller's identity on the socket
 *   sockops             on ACTIVE_ESTABLISHED, re-key the stash by the agent socket's local end
 *                       (what hoopd sees as the peer); hoop_sockops_accel, loaded instead with
 *                       acceleration, also adds the socket to a sockhash
 *   sk_msg              on hoopd's accepted sockets: send straight into the agent's socket
 *                       (loaded only with acceleration)
 *   cgroup/getpeername4|6  the agent sees the address it dialled
 *
 * Each SEC() function only maps the worker's result (bpf/lib) to its hook's verdict.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "lib/maps.bpf.h"
#include "lib/redirect.bpf.h"
#include "lib/accel.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int hoop_connect4(struct bpf_sock_addr *ctx)
{
	struct hoop_target_key key = {};
	struct hoop_config *cfg = NULL;
	__u32 ip = ctx->user_ip4;
	int v;

	key.port = (__be16)ctx->user_port;
	key.family = HOOP_AF_INET;
	__builtin_memcpy(key.addr, &ip, 4);
	v = hoop_connect(ctx, &key, 0, 0, &cfg);
	if (v == HOOP_REFUSE)
		return 0;
	if (v == HOOP_REDIRECT && cfg) {
		ctx->user_ip4 = bpf_htonl(HOOP_LOOPBACK4);
		ctx->user_port = cfg->listen_port;
	}
	return 1;
}

SEC("cgroup/connect6")
int hoop_connect6(struct bpf_sock_addr *ctx)
{
	struct hoop_target_key key = {};
	struct hoop_config *cfg = NULL;
	__u32 w[4];
	int mapped, v;

	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	key.port = (__be16)ctx->user_port;
	mapped = hoop_is_v4mapped(w);
	if (mapped) {
		/* ::ffff:a.b.c.d arrives here, not in connect4: judge it as the IPv4 it is. */
		key.family = HOOP_AF_INET;
		__builtin_memcpy(key.addr, &w[3], 4);
	} else {
		key.family = HOOP_AF_INET6;
		__builtin_memcpy(key.addr, w, 16);
	}
	v = hoop_connect(ctx, &key, !mapped, mapped, &cfg);
	if (v == HOOP_REFUSE)
		return 0;
	if (v != HOOP_REDIRECT || !cfg)
		return 1;
	ctx->user_ip6[0] = 0;
	ctx->user_ip6[1] = 0;
	if (mapped) {
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = bpf_htonl(HOOP_LOOPBACK4);
	} else {
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = cfg->listen_port;
	return 1;
}

/* hoopd loads one of the two sockops programs: this one when acceleration is off (it references
 * no sockhash, so it loads on kernels without sockmap support)... */
SEC("sockops")
int hoop_sockops(struct bpf_sock_ops *skops)
{
	struct hoop_sock_key key = {};

	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		hoop_rekey_established(skops, &key);
	return 1;
}

/* ...and this one with --accel sockmap. */
SEC("sockops")
int hoop_sockops_accel(struct bpf_sock_ops *skops)
{
	struct hoop_sock_key key = {};

	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && hoop_rekey_established(skops, &key))
		hoop_accel_join(skops, &key);
	return 1;
}

SEC("sk_msg")
int hoop_sk_msg(struct sk_msg_md *msg)
{
	return hoop_accel_send(msg);
}

SEC("cgroup/getpeername4")
int hoop_getpeername4(struct bpf_sock_addr *ctx)
{
	struct hoop_origin *o;

	if (!ctx->sk)
		return 1;
	o = bpf_sk_storage_get(&hoop_origin_store, ctx->sk, 0, 0);
	if (o && o->orig_family == HOOP_AF_INET) {
		__u32 ip;

		__builtin_memcpy(&ip, o->orig_addr, 4);
		ctx->user_ip4 = ip;
		ctx->user_port = o->orig_port;
	}
	return 1;
}

SEC("cgroup/getpeername6")
int hoop_getpeername6(struct bpf_sock_addr *ctx)
{
	struct hoop_origin *o;
	__u32 w[4];

	if (!ctx->sk)
		return 1;
	o = bpf_sk_storage_get(&hoop_origin_store, ctx->sk, 0, 0);
	if (!o)
		return 1;
	if (o->orig_family == HOOP_AF_INET) {
		w[0] = 0;
		w[1] = 0;
		w[2] = bpf_htonl(0xffff);
		__builtin_memcpy(&w[3], o->orig_addr, 4);
	} else {
		__builtin_memcpy(w, o->orig_addr, 16);
	}
	ctx->user_ip6[0] = w[0];
	ctx->user_ip6[1] = w[1];
	ctx->user_ip6[2] = w[2];
	ctx->user_ip6[3] = w[3];
	ctx->user_port = o->orig_port;
	return 1;
}
