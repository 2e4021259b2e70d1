/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Established-socket logic: hand the stash to hoopd under a key it can compute from the accepted
 * socket, and the optional sockmap short-circuit.
 *
 * Acceleration is one-way by design: hoopd -> agent. The agent's socket joins hoop_agent_socks
 * at ACTIVE_ESTABLISHED, before it can send a byte, and hoopd inserts its accepted socket into
 * hoop_proxy_socks before it sends one, so every byte hoopd sends takes the same path and order
 * holds. The other way cannot be made safe: the agent may send before hoopd has accepted, those
 * bytes wait in the TCP receive queue, and tcp_bpf_recvmsg() would read later redirected bytes
 * ahead of them. Agent -> hoopd therefore stays on loopback TCP. Results (the bulk) go fast.
 */
#ifndef HOOP_ACCEL_BPF_H
#define HOOP_ACCEL_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"

/* Copy a redirected socket's stash into hoop_accept_stash under key. 1 if it is redirected. */
static __always_inline int hoop_rekey_established(struct bpf_sock_ops *skops,
						  struct hoop_sock_key *key)
{
	struct hoop_origin *o;
	struct bpf_sock *sk = skops->sk;
	__u32 w[4];

	if (!sk)
		return 0;
	o = bpf_sk_storage_get(&hoop_origin_store, sk, 0, 0);
	if (!o)
		return 0; /* not a redirected socket */

	key->netns_cookie = bpf_get_netns_cookie(skops);
	key->port = bpf_htons((__u16)skops->local_port);
	if (skops->family == HOOP_AF_INET) {
		__u32 ip = skops->local_ip4;

		key->family = HOOP_AF_INET;
		__builtin_memcpy(key->addr, &ip, 4);
	} else {
		w[0] = skops->local_ip6[0];
		w[1] = skops->local_ip6[1];
		w[2] = skops->local_ip6[2];
		w[3] = skops->local_ip6[3];
		if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
			key->family = HOOP_AF_INET;
			__builtin_memcpy(key->addr, &w[3], 4);
		} else {
			key->family = HOOP_AF_INET6;
			__builtin_memcpy(key->addr, w, 16);
		}
	}
	if (bpf_map_update_elem(&hoop_accept_stash, key, o, BPF_ANY))
		hoop_count(HOOP_ERR_REKEY);
	return 1;
}

/*
 * With acceleration on, the redirected agent socket joins hoop_agent_socks under the same key.
 * Only the accelerating sockops program calls this: it alone references the sockhash, so hoopd
 * loads the other one, and creates no sockhash, when acceleration is off or the kernel has none.
 */
static __always_inline void hoop_accel_join(struct bpf_sock_ops *skops, struct hoop_sock_key *key)
{
	struct hoop_config *cfg = hoop_cfg();

	/* The flag still matters: links pinned by an earlier hoopd run this program until the
	 * next hoopd moves them to its own, and that hoopd may have turned acceleration off. */
	if (cfg && (cfg->flags & HOOP_CFG_ACCEL)) {
		if (bpf_sock_hash_update(skops, &hoop_agent_socks, key, BPF_NOEXIST))
			hoop_count(HOOP_ERR_SOCKHASH);
	}
}

/* Runs on every send of a socket in hoop_proxy_socks (hoopd's accepted sockets). */
static __always_inline int hoop_accel_send(struct sk_msg_md *msg)
{
	struct hoop_sock_key key = {};
	__u32 w[4];

	key.netns_cookie = bpf_get_netns_cookie(msg);
	key.port = (__be16)(msg->remote_port >> 16);
	if (msg->family == HOOP_AF_INET) {
		__u32 ip = msg->remote_ip4;

		key.family = HOOP_AF_INET;
		__builtin_memcpy(key.addr, &ip, 4);
	} else {
		w[0] = msg->remote_ip6[0];
		w[1] = msg->remote_ip6[1];
		w[2] = msg->remote_ip6[2];
		w[3] = msg->remote_ip6[3];
		if (w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff)) {
			key.family = HOOP_AF_INET;
			__builtin_memcpy(key.addr, &w[3], 4);
		} else {
			key.family = HOOP_AF_INET6;
			__builtin_memcpy(key.addr, w, 16);
		}
	}
	if (bpf_msg_redirect_hash(msg, &hoop_agent_socks, &key, BPF_F_INGRESS) == SK_PASS) {
		hoop_count(HOOP_ERR_ACCEL_HIT);
		return SK_PASS;
	}
	/* The agent socket is not in the map (acceleration was off when it connected): TCP. */
	hoop_count(HOOP_ERR_ACCEL_MISS);
	return SK_PASS;
}

#endif
