/* The YAML policy. This module reads it (libyaml) and checks it; nothing else parses YAML.
 * Errors carry the file, line and column of the offending node. */
#ifndef HOOP_POLICY_H
#define HOOP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "hoop_bpf.h"
#include "mask.h"

#define POLICY_MAX_TARGETS 64
#define POLICY_MAX_PORTS 32
#define POLICY_MAX_CIDRS 32

/* A target's upstream_tls: what hoopd asks of the database leg's TLS. */
enum upstream_tls {
	UPSTREAM_TLS_DISABLE = 0,
	UPSTREAM_TLS_PREFER,
	UPSTREAM_TLS_REQUIRE,
	UPSTREAM_TLS_VERIFY_CA,
	UPSTREAM_TLS_VERIFY_FULL,
};

struct policy_cidr {
	uint8_t family; /* HOOP_AF_INET or HOOP_AF_INET6 */
	uint8_t len;
	uint8_t addr[16];
};

struct policy_target {
	char name[64];
	enum hoop_protocol protocol;
	uint16_t ports[POLICY_MAX_PORTS]; /* host byte order */
	int nports;
	struct policy_cidr cidrs[POLICY_MAX_CIDRS];
	int ncidrs; /* 0 in the file means every address: filled with 0.0.0.0/0 and ::/0 */
	int upstream_tls;	   /* enum upstream_tls; default prefer */
	char ca_file[512];	   /* CA bundle for verify-ca / verify-full */
	char tls_server_name[256]; /* name the database certificate must carry */
	/* approval_mode: retry (1): a statement an approve rule holds is refused at once with
	 * its request's id, and runs once when the agent sends it again after approval; hold
	 * (0, the default): it waits in its session */
	int approval_retry;
};

#define POLICY_MAX_RULES 128
#define POLICY_MAX_LIST 32
#define POLICY_NAME 130

enum policy_action {
	ACTION_ALLOW = 0,
	ACTION_AUDIT = 1,   /* allow, and name the rule in the record */
	ACTION_APPROVE = 2, /* hold for a person's approval */
	ACTION_DENY = 3,
};

struct policy_list {
	char v[POLICY_MAX_LIST][POLICY_NAME];
	int n;
};

struct policy_rule {
	char name[64];
	enum policy_action action;
	char message[256];
	/* match: every key given must hold; within a list, any item */
	uint64_t statements;	   /* 1 << enum sql_kind; 0: any */
	struct policy_list tables; /* read or written: name, schema.name, schema.*, * */
	struct policy_list tables_written;
	struct policy_list schemas;
	struct policy_list functions;
	int copy; /* enum sql_copy; 0: any */
	int without_where;
	int without_limit;
	int probes_masked; /* a predicate (WHERE, ORDER BY...) reads a masked column */
	int writes_masked; /* masked values are written into a relation (INSERT ... SELECT...) */
	/* when: the session */
	struct policy_list owners, users, databases, exes;
	struct policy_list label_keys, label_values;
	int line; /* where the rule is in the file */
};

/* audit: the trail's settings (audit_store.h has their meaning). */
struct policy_audit {
	int durability; /* 0 flush, 1 fsync */
	uint32_t checkpoint_every;
	uint64_t segment_bytes;
	int64_t retention_s;
	char stream[512];
};

/* approvals: who may decide held statements, how long they wait, whom to tell. */
struct policy_approvals {
	struct policy_list approvers; /* user names, or group:NAME */
	int64_t timeout_s;	      /* default 300 */
	char notify_command[1024];    /* run with the request as JSON on stdin */
	int max_waiting;	      /* held at once per agent cgroup (4x per owner); default 16 */
};

/* catalog: how hoopd reads a database's schema for masking (catalog_fetch.c). */
struct policy_catalog {
	char user[64];		 /* "" = the session's own database user */
	char password_file[512]; /* "" = no password (trust, peer over TLS certs, .pgpass) */
	int64_t refresh_s;	 /* re-read every so often; default 60 */
};

/*
 * limits: what one agent may make hoopd hold or spend (issue 14 point 10). Defaults are set by
 * policy_load when the section or a key is absent.
 */
struct policy_limits {
	uint32_t statement_bytes;	 /* Query or Parse text longer than this: 54000 */
	uint32_t statement_tokens;	 /* more SQL tokens than this: 54000, before any parse */
	uint32_t statement_depth;	 /* expression nesting deeper than this: 54000 */
	uint32_t connections_per_cgroup; /* open sessions of one agent cgroup: 53300 beyond */
	uint64_t cgroup_buffer_bytes;	 /* bytes held for one cgroup's sessions */
	uint64_t buffer_bytes;		 /* ... and for all sessions together */
};

#define LIMITS_STATEMENT_BYTES (1u << 20)
#define LIMITS_STATEMENT_TOKENS 30000u
#define LIMITS_STATEMENT_DEPTH 1000u
#define LIMITS_CONNECTIONS_PER_CGROUP 256u
#define LIMITS_CGROUP_BUFFER_BYTES (128ULL << 20)
#define LIMITS_BUFFER_BYTES (512ULL << 20)

struct policy {
	int version;
	struct policy_limits limits;
	struct mask_policy masking;
	struct policy_catalog catalog;
	struct policy_audit audit;
	struct policy_approvals approvals;
	struct policy_target targets[POLICY_MAX_TARGETS];
	int ntargets;
	struct policy_rule rules[POLICY_MAX_RULES];
	int nrules;
	enum policy_action on_parse_error; /* deny (default) or approve */
	enum policy_action default_action; /* when no rule matches: allow (default) or deny */
};

/* Returns 0, or a negative errno with "FILE:LINE:COL: what is wrong" in err. */
int policy_load(const char *path, struct policy **out, char *err, size_t errn);
void policy_free(struct policy *p);
const char *policy_protocol_name(enum hoop_protocol p);
const char *policy_action_name(enum policy_action a);
/* Does dst (family, 16-byte addr, host-order port) match a target? Returns its index or -1. */
int policy_match(const struct policy *p, int family, const uint8_t *addr, uint16_t port);

#endif
