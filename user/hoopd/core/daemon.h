/* hoopd's state: its options, the policy in force, the BPF skeleton, counters and attachments,
 * in one global (hoopd) that every module of the daemon reads.
 * Nothing but state lives here: each module's functions are in its own header. */
#ifndef HOOPD_H
#define HOOPD_H

#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "hoop_bpf.h"
#include "loop.h"
#include "json.h"

#define HOOPD_VERSION "0.1.0"

enum accel_mode { ACCEL_OFF = 0, ACCEL_SOCKMAP = 1 };

struct hoopd_opts {
	const char *policy_path;
	const char *state_dir;
	const char *control_path;
	const char *metrics_addr; /* NULL: no metrics endpoint */
	int metrics_public;	  /* --metrics-public: an address beyond loopback is meant */
	const char *pin_root;
	uint16_t listen_port;
	int fail_open;
	enum accel_mode accel;
	int keep_pins; /* on exit, keep map pins even with nothing attached */
	size_t relay_buf;  /* high-water mark of bytes queued toward one side */
	size_t max_message; /* largest protocol message accepted, either direction */
	const char *tls_cert, *tls_key;
	int agent_tls; /* answer SSLRequest with S and terminate TLS */
	/* --user: who hoopd's unprivileged processes run as (the catalog loader now) */
	const char *user;
	unsigned run_uid, run_gid;
	int workers; /* --workers: engine worker processes (0: sessions in this process) */
	/* the fleet's central database (central_child.h): the shipper child gets one of these */
	const char *central_dsn;      /* --central DSN (tests; the DSN shows in ps) */
	const char *central_dsn_file; /* --central-dsn-file FILE: the DSN, root-only */
	const char *node;	      /* --node NAME [default: the host name] */
	const char *hoopctl;	      /* --hoopctl PATH [default: beside hoopd] */
};

struct hoopd_stats {
	uint64_t conns_accepted, conns_active, conns_closed;
	uint64_t conns_refused_nostash, conns_upstream_failed;
	uint64_t bytes_agent_to_db, bytes_db_to_agent;
	uint64_t accel_inserted, accel_insert_failed;
	uint64_t control_requests, control_denied;
	uint64_t policy_reloads, policy_reload_failures;
	uint64_t listener_errors;
	uint64_t conns_refused_cgroup;	 /* over limits.connections_per_cgroup */
	uint64_t conns_cut_midmessage;	 /* a peer hung up in the middle of a message */
	uint64_t statements_oversized;	 /* refused by limits.statement_* */
	uint64_t buffered;		 /* bytes held for sessions now (relay.c account) */
};

struct policy;
struct attachment;

struct hoopd {
	struct hoopd_opts o;
	struct policy *pol;
	uint64_t pol_gen; /* counts policies loaded (stmtcache.h keys on it) */
	struct hoop_bpf *skel;
	struct hoopd_stats st;
	struct attachment *attachments;
	int host_netns_fd;
	uint64_t host_netns_ino;
	char self_cgroup[4096];
};

extern struct hoopd hoopd;

#endif
