/* hoopctl's shared pieces: the commands, the control-socket call (main.c), policy test's
 * judgement and the capability warning. The audit trail's reading is trailread.h's. */
#ifndef HOOPCTL_H
#define HOOPCTL_H

#include <json-c/json.h>

#include "verdict.h"

/* Send one request line to hoopd; the parsed answer, or NULL with a message printed. */
struct json_object *ctl_call(const char *req);
/* 0 if the answer says ok; otherwise prints hoopd's error and returns 1. */
int ctl_check_ok(struct json_object *r);

/*
 * The commands: argv[0] is the command's name; the exit code (0 done, 1 refused or, for the
 * trail commands, what was asked for is not there or not intact, 2 usage or I/O error).
 */
int cmd_approvals(int argc, char **argv); /* approvals.c */
int cmd_decide(int argc, char **argv);	  /* approvals.c: approve, deny */
int cmd_policy(int argc, char **argv);	  /* policy.c: policy check, policy test */
int cmd_verify(int argc, char **argv);	  /* verify.c */
int cmd_sessions(int argc, char **argv);  /* sessions.c */
int cmd_replay(int argc, char **argv);	  /* replay.c */
int cmd_export(int argc, char **argv);	  /* export.c */
int cmd_central(int argc, char **argv);	  /* central.c: central init, ship, verify */
/* verify.c: `hoopctl verify --state-dir state --public-key pubs[i]...` (none: state/audit.pub),
 * printed as verify prints it; its exit code. */
int verify_run(const char *state, const char *const *pubs, int npubs, int json);

struct policy;
struct rules_session;
struct sqlfacts;
struct judge_out;
struct dialect_settings;
/* `policy test`'s judgement of one statement (policy.c): facts from its text, then hoopd's own
 * verdict function (judge.h); unsplittable: the grammar could not split the text
 * (judged whole as a parse error, as hoopd does). f is filled; the verdict is hoopd's for
 * such a session. */
enum verdict policy_test_stmt(const struct policy *pol, const struct rules_session *rs,
			      const char *sql, size_t len, int unsplittable, struct sqlfacts *f,
			      struct judge_out *out);
/* The session settings policy_test_stmt lexes under (dialect.h; --standard-conforming-strings). */
extern struct dialect_settings policy_test_lexing;
/* netcaps.c: warn (stderr) about processes of the cgroup that hold CAP_NET_RAW or
 * CAP_NET_ADMIN; how many there are. */
int netcaps_warn(const char *cg_path);

#endif
