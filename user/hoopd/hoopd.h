/* hoopd's shared state and the interfaces between its modules. */
#ifndef HOOPD_H
#define HOOPD_H

#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "hoop_bpf.h"
#include "loop.h"
#include "json.h"
#include "policy.h"

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

struct attachment {
	char path[4096];
	uint64_t cgroup_id;
	char owner[256];
	char labels_json[2048]; /* {"k":"v",...} as given at attach */
	int64_t attached_at;
	struct attachment *next;
};

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

extern struct hoopd G;

/* bpfctl.c: load, pin, attach and detach the BPF side. */
int bpfctl_setup(void);
void bpfctl_close(void);
void bpfctl_heartbeat(int alive);
int bpfctl_sync_targets(const struct policy *pol);
int bpfctl_attach(const char *cg_path, uint64_t cgid, char *err, size_t errn);
int bpfctl_detach(uint64_t cgid, char *err, size_t errn);
int bpfctl_is_attached(uint64_t cgid);
int bpfctl_take_origin(const struct hoop_sock_key *key, struct hoop_origin *out);
int bpfctl_accel_insert(int fd);
int bpfctl_counters(uint64_t out[HOOP_ERR_MAX]);
int bpfctl_events_fd(void);
void bpfctl_events_poll(void);
void bpfctl_unpin_all_if_idle(void);

/* netns.c: one loopback listener pair per network namespace that holds agents. */
struct listener;
int netns_init(void);
int netns_ensure_pid(int pid, char *err, size_t errn);
int netns_socket(struct listener *ln, int family);
/* Which namespace dials a database leg to addr (HOOP_AF_* family as AF_*, network order). */
enum netns_dial {
	NETNS_DIAL_HOOPD = 0, /* hoopd's own: the agent cannot see or touch the leg */
	NETNS_DIAL_AGENT = 1, /* the agent's: the destination exists only there */
};
enum netns_dial netns_dial_where(struct listener *ln, int family, const uint8_t *addr);
int netns_socket_dial(struct listener *ln, int family, enum netns_dial where);
const char *netns_dial_name(enum netns_dial where);
uint64_t netns_cookie(const struct listener *ln);
uint64_t netns_ino(const struct listener *ln);
/* The namespace's fd (-1: hoopd's own), for threads that must open sockets there. */
int netns_nsfd(const struct listener *ln);
void netns_close_all(void);
void netns_conn_ref(struct listener *ln, int delta);
void netns_gc(void);
void netns_resume(void);
void netns_status(struct jbuf *j);

/* relay.c: accepted agent connections and their upstream legs. */
void relay_accept(struct listener *ln, int fd);
void relay_reap(void);
void relay_status(struct jbuf *j);
void relay_close_all(void);
void relay_release_synced(void); /* audit records synced: waiting sessions may forward */
int relay_waiting_sync(void);	 /* how many sessions wait for records to be durable */

/* attach.c: the registry of attached cgroups, persisted in the state dir. */
int attach_load(void);
int attach_add(const char *path, uint64_t cgid, const char *owner, const char *labels_json,
	       char *err, size_t errn);
int attach_remove(uint64_t cgid, char *err, size_t errn);
struct attachment *attach_find_for_pid(int pid, const char *proc_cgroup);
struct attachment *attach_find_id(uint64_t cgid);
int attach_open_listeners(const struct attachment *a, char *err, size_t errn);

/* control.c / metrics.c */
int control_init(void);
void control_close(void);
void control_tick(void);
int metrics_init(void);

/* sockdiag.c: connections of a cgroup opened before attach. */
int sockdiag_existing(const char *cg_path, int reset, struct jbuf *j, int *count, char *err,
		      size_t errn);

int64_t now_ms(void);

/* main.c */
int hoopd_reload_policy(char *err, size_t errn);

#endif
