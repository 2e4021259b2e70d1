/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Structs shared by the BPF programs (bpf/hoop.bpf.c) and hoopd/hoopctl.
 *
 * Data only: fixed-width types, explicit padding, enums with values that never change. Every
 * address is kept as 16 bytes; an IPv4 address sits in the first 4 bytes with family AF_INET.
 * Userspace and BPF must build keys byte for byte the same way, so every pad field is zero.
 */
#ifndef HOOP_BPF_H
#define HOOP_BPF_H

#include <linux/types.h>

#define HOOP_PIN_ROOT "/sys/fs/bpf/hoop"

#define HOOP_AF_INET 2
#define HOOP_AF_INET6 10

/* Bumped when any struct below changes layout: hoopd refuses pins from another layout. */
#define HOOP_ABI_VERSION 1

enum hoop_protocol {
	HOOP_PROTO_TCP = 0,
	HOOP_PROTO_POSTGRES = 1,
	HOOP_PROTO_MYSQL = 2,
	HOOP_PROTO_REDIS = 3,
};

/* Map hoop_targets (LPM trie). prefixlen counts the bits after it: 32 (port, family, pad) plus
 * the CIDR length. One lookup matches port and address together. */
struct hoop_target_key {
	__u32 prefixlen;
	__be16 port;
	__u8 family;
	__u8 pad;
	__u8 addr[16];
};

/* Value of hoop_targets. */
struct hoop_target {
	__u32 target_id; /* index of the target in the policy's targets: list */
	__u32 protocol;	 /* enum hoop_protocol */
};

enum hoop_config_flags {
	HOOP_CFG_FAIL_OPEN = 1 << 0, /* no hoopd listener at all in the netns: go direct */
	HOOP_CFG_ACCEL = 1 << 1,     /* put redirected agent sockets into hoop_agent_socks */
};

/* Map hoop_config (array, one entry). Written by hoopd; read by every program. */
struct hoop_config {
	__u32 abi_version;
	__be16 listen_port; /* hoopd's listener port in every attached netns */
	__u16 flags;	    /* enum hoop_config_flags */
};

/* The original destination and the identity of the process that dialled it.
 * Map hoop_origin_store (sk storage on the agent's socket, lives as long as the socket) and
 * map hoop_accept_stash (hash keyed by struct hoop_sock_key, read and deleted by hoopd). */
struct hoop_origin {
	__u8 orig_addr[16];
	__be16 orig_port;
	__u16 orig_family; /* HOOP_AF_INET or HOOP_AF_INET6, as matched against targets */
	__u32 target_id;
	__u32 pid;  /* thread id */
	__u32 tgid; /* process id */
	__u32 uid;
	__u32 gid;
	__u64 cgroup_id;
	__u64 netns_cookie;
	__u64 connect_ns; /* bpf_ktime_get_ns() at connect */
	char comm[16];
	__u16 dialled_family; /* the socket's own family: AF_INET6 for a v4-mapped dial */
	__u8 v4mapped;	      /* dialled ::ffff:a.b.c.d on an AF_INET6 socket */
	__u8 pad[5];
};

/* Key of hoop_accept_stash and hoop_agent_socks: the agent socket's local end, which is the
 * peer address hoopd sees on the accepted socket, in the netns where both live. */
struct hoop_sock_key {
	__u64 netns_cookie;
	__u8 addr[16];
	__be16 port;
	__u16 family;
	__u32 pad;
};

/* Map hoop_events (ring buffer): a connect from a netns where no hoopd listener runs. */
struct hoop_netns_event {
	__u64 netns_cookie;
	__u32 tgid;
	__u32 pad;
};

/* Map hoop_errors (array of __u64 counters), indexed by this enum. */
enum hoop_err {
	HOOP_ERR_STASH_FULL = 0,    /* sk storage could not be created */
	HOOP_ERR_REKEY = 1,	    /* hoop_accept_stash update failed */
	HOOP_ERR_SOCKHASH = 2,	    /* agent socket could not join hoop_agent_socks */
	HOOP_ERR_NO_LISTENER = 3,   /* targeted connect from a netns without a listener */
	HOOP_ERR_REDIRECTED = 4,    /* connects redirected (a counter, not an error) */
	HOOP_ERR_FAIL_OPEN = 5,	    /* connects let through because of fail-open */
	HOOP_ERR_ACCEL_MISS = 6,    /* sk_msg found no agent socket for hoopd's send */
	HOOP_ERR_ACCEL_HIT = 7,	    /* sends redirected by sk_msg (a counter, not an error) */
	HOOP_ERR_MAX = 8,
};

_Static_assert(sizeof(struct hoop_target_key) == 24, "hoop_target_key layout");
_Static_assert(sizeof(struct hoop_target) == 8, "hoop_target layout");
_Static_assert(sizeof(struct hoop_config) == 8, "hoop_config layout");
_Static_assert(sizeof(struct hoop_origin) == 88, "hoop_origin layout");
_Static_assert(sizeof(struct hoop_sock_key) == 32, "hoop_sock_key layout");
_Static_assert(sizeof(struct hoop_netns_event) == 16, "hoop_netns_event layout");

#endif
