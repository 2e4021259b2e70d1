/*
 * Just-in-time approval: a statement an `approve` rule holds waits, in its session only, until
 * an approver named in the policy decides it with hoopctl (or it times out, or the client
 * cancels). Approvers are identified by SO_PEERCRED on the control socket; nobody approves a
 * request from their own uid or that names them as owner. Every request, notification,
 * decision and refused attempt goes into the audit trail. A held statement is the session's
 * engine's (engine.h: resume_held, fail_held, held_runs); a fingerprint grant goes to the grant
 * store (grants.h), which the verdict reads.
 */
#ifndef HOOP_APPROVALS_H
#define HOOP_APPROVALS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "json.h"

struct session;

void approvals_init(void);
/* Pending requests for `hoopctl approvals`. */
void approvals_list(struct jbuf *j);
/* approve/deny from the control socket. decision: "approve" or "deny"; scope: "once" or
 * "fingerprint" (with for_s seconds). An approval names the held text by its SHA-256 (a hex
 * prefix of 16 or more digits): a mismatch is refused, so an approver cannot be made to approve
 * text other than what they were shown. 0, or -1 with the reason in err (and on record). */
int approvals_decide(const char *id, const char *decision, const char *reason, const char *scope,
		     const char *sha256, long long for_s, uid_t uid, pid_t pid, char *err,
		     size_t errn);
/* May this uid list or decide requests? */
int approvals_is_approver(uid_t uid);

/* The process split (docs/architecture.md): the broker resolves who asks (the user database
 * is a file a sandboxed worker may not open), the worker holding the statement decides. */
struct approver {
	uid_t uid;
	pid_t pid;
	char name[256];
	int is_approver;
	/* decided in the fleet's central database (docs/fleet.md): name is the database role
	 * that decided, relayed by the root-owned shipper; recorded as central:NAME. uid and pid
	 * are the shipper's, so the own-uid rule does not apply; the owner rule does */
	int central;
};
void approvals_who(uid_t uid, pid_t pid, struct approver *a);
/* approvals_decide for an approver already resolved: 0, -ENOENT when no such request is held
 * here (err says so), another negative value when refused (err says why, and it is on
 * record). */
int approvals_decide_as(const char *id, const char *decision, const char *reason,
			const char *scope, const char *sha256, long long for_s,
			const struct approver *who, char *err, size_t errn);
/* The pending requests as a JSON array (approvals_list without its key). */
void approvals_list_array(struct jbuf *j);
/* Run approvals.notify_command with line on its stdin: its pid (reaped by approvals_reap),
 * 0 when the policy names none, -1 when it could not start. */
pid_t approvals_run_notify(const char *line, size_t len);
/* How many notify commands run now (not yet reaped). */
int approvals_notify_running(void);
/* Set in an engine worker: the notification goes to the broker, a fingerprint grant to the
 * other workers, and the broker learns which requests are open (to record them failed if
 * the worker is lost). */
extern void (*approvals_notify_hook)(const char *line, size_t len);
extern void (*approvals_grant_hook)(const char *key, const char *owner, int64_t for_ms);
extern void (*approvals_held_hook)(const char *id, const char *session, const char *rule,
				   int open);
/* Timeouts and expired grants. */
void approvals_tick(void);
/* Notification commands that ended (on SIGCHLD). */
void approvals_reap(void);
/* hoopd is stopping: refuse every held statement cleanly (nothing runs later by surprise). */
void approvals_fail_all(const char *why);

#endif
