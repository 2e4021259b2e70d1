/*
 * The process split, broker side (docs/architecture.md): hoopd's privileged process keeps the
 * kernel, the namespaces, the policy file, the trail and the control socket, and runs every
 * session in one of N engine workers (worker.c), unprivileged processes it starts, hands
 * sessions to, and replaces when one is lost.
 */
#ifndef HOOP_WORKERS_H
#define HOOP_WORKERS_H

#include <stdint.h>
#include <sys/types.h>

struct hoopd_stats;
struct stmtcache_stats;
struct ctl_client;
struct approver;

/* Start n workers (hoopd's own argv, so that they read the same options). 0, or -1 after
 * saying why. */
int workers_start(int n, int argc, char **argv);
int workers_count(void);
/* "workers": each one's index, pid, readiness, sessions, held requests, starts and losses. */
struct jbuf;
void workers_status(struct jbuf *j);
/* The policy in force changed (after a reload): every worker gets it. */
void workers_policy_changed(void);
/* SIGCHLD: workers that died, catalog loaders that ended. */
void workers_reap(void);
/* The loop's tick: respawns, late answers, catalog loaders past their deadline. */
void workers_tick(void);
/* Stop: workers fail their held statements, end their sessions and exit; then they are
 * waited for (killed after a grace time). */
void workers_stop(void);

/* Counters summed over the workers (their last report, each second) into st, sc and tls (each
 * may be NULL). */
struct tls_counters;
void workers_add_stats(struct hoopd_stats *st, struct stmtcache_stats *sc,
		       struct tls_counters *tls);

/* Control requests the workers answer (control.c defers the client's answer): status (the
 * connections, fresh from each worker), approvals (the pending requests of every worker), a
 * decision (to the worker that holds the request). handle names the waiting client. */
void workers_ask_status(uint64_t handle);
void workers_ask_approvals(uint64_t handle);
void workers_decide(uint64_t handle, const char *id, const char *decision, const char *reason,
		    const char *scope, const char *sha256, long long for_s,
		    const struct approver *who);

/* How answers reach the control socket: control.c's ctl_answer and control_status_json, set by
 * main (the workers sit below the control socket in the module graph). */
struct jbuf;
extern void (*workers_answer)(uint64_t handle, const char *json);
extern void (*workers_status_json)(struct jbuf *j, const char *conns_json);

/* In `hoopd --worker N`, after main parsed the options: the worker process's main. */
int worker_main(int idx);

#endif
