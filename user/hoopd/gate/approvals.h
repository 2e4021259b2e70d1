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
/* Timeouts and expired grants. */
void approvals_tick(void);
/* Notification commands that ended (on SIGCHLD). */
void approvals_reap(void);
/* hoopd is stopping: refuse every held statement cleanly (nothing runs later by surprise). */
void approvals_fail_all(const char *why);

#endif
