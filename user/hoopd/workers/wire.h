/*
 * What the broker and an engine worker say to each other over their control channel (wchan.h)
 * and the worker's catalog channel. docs/architecture.md tells the story; this is the format.
 * Both ends are the same binary, so structs travel as they are; the broker checks the size of
 * every one it reads and that every string in it ends within its field.
 */
#ifndef HOOP_WORKERS_WIRE_H
#define HOOP_WORKERS_WIRE_H

#include <stdint.h>

#include "catalog_fetch.h"
#include "daemon.h"
#include "identity.h"
#include "policy.h"
#include "stmtcache.h"
#include "tls.h"

enum wmsg {
	/* broker -> worker */
	WM_POLICY = 1, /* struct wm_policy, the struct policy, then the CA PEMs it counts */
	WM_SESSION,    /* struct wm_session; descriptors: the agent's, the database's */
	WM_DECIDE,     /* struct wm_decide; answered by WM_DECIDED with the same token */
	WM_STATUS,     /* (empty); answered by WM_STATUS_REPLY */
	WM_APPROVALS,  /* (empty); answered by WM_APPROVALS_REPLY */
	WM_GRANT,      /* struct wm_grant: a grant made on another worker */
	WM_STOP,       /* (empty): fail held statements, end sessions, exit */
	WM_CATFD,      /* catalog channel, answer to WM_CATREQ: struct wm_catfd, and the
			* loader's socket when ok */
	/* worker -> broker */
	WM_READY = 32,	    /* (empty): sandboxed, serving */
	WM_ENDED,	    /* struct wm_ended */
	WM_DECIDED,	    /* struct wm_decided */
	WM_STATUS_REPLY,    /* struct wm_stats, then a JSON array of connection objects */
	WM_APPROVALS_REPLY, /* a JSON array of approval objects */
	WM_STATS,	    /* struct wm_stats, every second */
	WM_NOTIFY,	    /* the JSON line for approvals.notify_command */
	WM_GRANT_MADE,	    /* struct wm_grant */
	WM_HELD,	    /* struct wm_held: an approval request is open */
	WM_UNHELD,	    /* struct wm_held: ...and closed (decided, timed out, forgotten) */
	WM_CATREQ,	    /* catalog channel: struct catalog_remote_req (catalog_fetch.h) */
};

struct wm_policy {
	uint64_t gen;
	uint32_t policy_len; /* sizeof(struct policy): the same binary */
	uint8_t has_key;     /* masking on: key is its HMAC key */
	uint8_t key[32];
	uint32_t ca_len[POLICY_MAX_TARGETS]; /* upstream CA PEM per target, 0: none */
};

struct wm_session {
	struct agent agent;
	uint8_t accel;
	uint8_t connecting;
};

struct wm_ended {
	char id[20];
	uint64_t bytes_up, bytes_down;
};

/* ...followed by the approver's reason, its bytes (has_reason: given at all) */
struct wm_decide {
	char id[64], decision[16], scope[16], sha256[80];
	int64_t for_s;
	uint32_t uid;
	int32_t pid;
	char name[256]; /* the approver, as the broker resolved the uid */
	uint8_t is_approver;
	uint8_t has_reason, has_sha256, has_scope;
	uint8_t central; /* name decided in the central database (struct approver) */
};

struct wm_decided {
	uint8_t found; /* the worker holds that approval */
	uint8_t ok;
	char error[512];
};

struct wm_stats {
	struct hoopd_stats st;
	struct stmtcache_stats sc;
	struct tls_counters tls;
};

struct wm_grant {
	char key[80];
	char owner[256];
	int64_t for_ms;
};

struct wm_held {
	char id[16];
	char session[20];
	char rule[64];
};

struct wm_catfd {
	uint8_t ok;
	char error[256];
};

#endif
