/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The maps every hoop program shares. hoopd pins them under HOOP_PIN_ROOT/maps and reuses the
 * pins on restart, so attachments made by an earlier hoopd keep working. */
#ifndef HOOP_MAPS_BPF_H
#define HOOP_MAPS_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "hoop_bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4096);
	__type(key, struct hoop_target_key);
	__type(value, struct hoop_target);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} hoop_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hoop_config);
} hoop_config SEC(".maps");

/* hoopd's heartbeat: bpf_ktime_get_ns() (CLOCK_MONOTONIC) of its last loop tick, 0 after a
 * clean stop. A map of its own, not a hoop_config field, so its layout (and the pins of an
 * earlier hoopd) stay as they are. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hoop_alive SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct hoop_origin);
} hoop_origin_store SEC(".maps");

/* LRU: an entry hoopd never collects (agent gone before accept) ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct hoop_sock_key);
	__type(value, struct hoop_origin);
} hoop_accept_stash SEC(".maps");

/* Agent sockets, when acceleration is on: the sk_msg program redirects hoopd's sends into them. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct hoop_sock_key);
	__type(value, __u64);
} hoop_agent_socks SEC(".maps");

/* hoopd's accepted sockets, inserted by hoopd; the sk_msg program is attached to this map. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie */
	__type(value, __u64);
} hoop_proxy_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} hoop_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HOOP_ERR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} hoop_errors SEC(".maps");

static __always_inline void hoop_count(__u32 err)
{
	__u64 *v = bpf_map_lookup_elem(&hoop_errors, &err);

	if (v)
		__sync_fetch_and_add(v, 1);
}

#define HOOP_ALIVE_NS (3ULL * 1000000000ULL) /* a heartbeat older than this: hoopd is down */

/* Is hoopd running (its heartbeat is recent)? */
static __always_inline int hoop_running(void)
{
	__u32 zero = 0;
	__u64 *t = bpf_map_lookup_elem(&hoop_alive, &zero);
	__u64 now = bpf_ktime_get_ns();

	return t && *t && now - *t < HOOP_ALIVE_NS;
}

static __always_inline struct hoop_config *hoop_cfg(void)
{
	__u32 zero = 0;
	struct hoop_config *cfg = bpf_map_lookup_elem(&hoop_config, &zero);

	if (cfg && cfg->abi_version == HOOP_ABI_VERSION && cfg->listen_port)
		return cfg;
	return NULL;
}

#endif
