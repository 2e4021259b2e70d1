/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Connect-time logic: match a destination against the targets, stash the original destination
 * and the caller's identity on the socket, and choose where the connect goes instead.
 * The hooks in bpf/hoop.bpf.c only map these results to their verdicts.
 */
#ifndef HOOP_REDIRECT_BPF_H
#define HOOP_REDIRECT_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.bpf.h"

#define HOOP_LOOPBACK4 0x7f000001 /* 127.0.0.1 */

enum hoop_verdict {
	HOOP_PASS = 0,	   /* not ours: leave the connect alone */
	HOOP_REDIRECT = 1, /* rewrite to hoopd's listener */
	HOOP_REFUSE = 2,   /* ours, but nowhere to send it: the connect fails (EPERM) */
};

static __always_inline int hoop_is_v4mapped(const __u32 *w)
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* Is hoopd listening on loopback:listen_port in the caller's netns? */
static __always_inline int hoop_listener_alive(void *ctx, __be16 port, int v6)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	if (v6) {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = port;
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	} else {
		t.ipv4.daddr = bpf_htonl(HOOP_LOOPBACK4);
		t.ipv4.dport = port;
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

static __always_inline void hoop_notify_netns(__u64 netns_cookie)
{
	struct hoop_netns_event *ev = bpf_ringbuf_reserve(&hoop_events, sizeof(*ev), 0);

	if (!ev)
		return;
	ev->netns_cookie = netns_cookie;
	ev->tgid = bpf_get_current_pid_tgid() >> 32;
	ev->pad = 0;
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Decide for one connect. key holds the destination (port, family, address) with prefixlen
 * unset. v6_listener says which listener the rewritten socket will reach.
 */
static __always_inline int hoop_connect(struct bpf_sock_addr *ctx, struct hoop_target_key *key,
					int v6_listener, int v4mapped, struct hoop_config **cfgp)
{
	struct hoop_config *cfg;
	struct hoop_target *tgt;
	struct hoop_origin *o;
	__u64 id, ug, netns;

	if (ctx->type != 1 /* SOCK_STREAM */)
		return HOOP_PASS;

	key->prefixlen = 32 + (key->family == HOOP_AF_INET ? 32 : 128);
	tgt = bpf_map_lookup_elem(&hoop_targets, key);
	if (!tgt)
		return HOOP_PASS;

	/* A targeted connect with no usable config (another hoop's ABI during an upgrade, or
	 * none written yet): we cannot know hoopd's port, and fail-open was not said either, so
	 * the connect fails rather than go around hoopd. */
	cfg = hoop_cfg();
	if (!cfg) {
		hoop_count(HOOP_ERR_NO_LISTENER);
		return HOOP_REFUSE;
	}
	*cfgp = cfg;

	netns = bpf_get_netns_cookie(ctx);
	if (!hoop_listener_alive(ctx, cfg->listen_port, v6_listener)) {
		hoop_count(HOOP_ERR_NO_LISTENER);
		hoop_notify_netns(netns);
		/* Fail-open is for hoopd being down, not for one of its two listeners having
		 * failed (the other family's is up) or for a namespace it has not served yet (it
		 * is running: the notice above makes it open a listener there). */
		if ((cfg->flags & HOOP_CFG_FAIL_OPEN) &&
		    !hoop_listener_alive(ctx, cfg->listen_port, !v6_listener) && !hoop_running()) {
			hoop_count(HOOP_ERR_FAIL_OPEN);
			return HOOP_PASS;
		}
		/* Fail closed: the rewrite points at a port nobody listens on, so the agent gets
		 * ECONNREFUSED at once instead of reaching the database around hoopd. */
		return HOOP_REDIRECT;
	}

	o = bpf_sk_storage_get(&hoop_origin_store, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o) {
		/* Without a stash hoopd cannot know where to go: still redirect (closed). */
		hoop_count(HOOP_ERR_STASH_FULL);
		return HOOP_REDIRECT;
	}
	__builtin_memcpy(o->orig_addr, key->addr, 16);
	o->orig_port = key->port;
	o->orig_family = key->family;
	o->target_id = tgt->target_id;
	id = bpf_get_current_pid_tgid();
	ug = bpf_get_current_uid_gid();
	o->pid = (__u32)id;
	o->tgid = id >> 32;
	o->uid = (__u32)ug;
	o->gid = ug >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->netns_cookie = netns;
	o->connect_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	o->dialled_family = ctx->user_family;
	o->v4mapped = v4mapped;
	hoop_count(HOOP_ERR_REDIRECTED);
	return HOOP_REDIRECT;
}

#endif
