/*
 * The verdict point: the statement gate (gate.h) asks it about every statement before it is
 * forwarded. hoopd installs the policy's rules (policy_verdict) as verdict_hook; tests install
 * their own; with none, every statement is allowed. The hook and hold_ops are defined with the
 * gate (gate.c), which is what calls them.
 */
#ifndef HOOP_VERDICT_H
#define HOOP_VERDICT_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct catalog;
struct maskplan;
struct sqlfacts;

enum verdict { VERDICT_ALLOW = 0, VERDICT_DENY = 1, VERDICT_HOLD = 2 };

struct judgement {
	const struct session *s;
	const char *protocol; /* simple | extended | function */
	const char *text;     /* statement text (not NUL-terminated), or a description */
	size_t len;
	int parse_error; /* PostgreSQL's grammar rejected it */
	const char *user, *database; /* the session's database user and database */
	/* The text of a prepared statement by name, for EXECUTE (may be NULL), and in *escape
	 * how the server lexed it when it was prepared (standard_conforming_strings off: 1, on:
	 * 0; left as it is, -1, for "as the session lexes now"): it is read that way again. */
	const char *(*prepared)(void *ctx, const char *name, int *escape);
	void *prepared_ctx;
	/* masking: the session's catalog (may be NULL), for rules on probes_masked */
	const struct catalog *cat;
	/* masking: the statement's provenance plan when the engine has one (saves a parse) */
	const struct maskplan *plan;
	/* the statement's facts from stmtcache.h (saves parsing it), or NULL */
	const struct sqlfacts *facts;
	/* ask for the facts worked out here: the hook hands them over in facts_out (free them),
	 * when they describe text alone (policy_verdict's do; a test's hook may not) */
	int want_facts;
	/* out: */
	struct sqlfacts *facts_out;
	char rule[64];	   /* the rule that decided, for the record */
	char message[256]; /* what the agent is told on deny */
	int unparsed;	   /* denied because the grammar rejects the text (on_parse_error) */
};

typedef enum verdict (*verdict_fn)(struct judgement *j);
extern verdict_fn verdict_hook;

/*
 * Holding a statement needs someone to decide it: approvals.c installs these. With none
 * installed (tests, tools), a hold is refused instead.
 */
struct hold_ops {
	/* Open a request for session s's held statement; its id goes to id. 0 or -errno.
	 * split_json, when not NULL, is a JSON object saying how hoopd reads the text: its
	 * statements as the dialect split them, each held or not with its rule, and the session
	 * setting the reading depends on ({"statements":[{"text","held","rule"}...],
	 * "standard_conforming_strings":"off"}), so that an approver never has to guess how a
	 * text with several statements, or read under other lexing, splits. */
	int (*open)(struct session *s, const char *rule, const char *message, const char *text,
		    size_t len, const char *split_json, char *id, size_t idn);
	/* The session ends or its statement was cancelled: close its request. */
	void (*forget)(struct session *s, const char *why);
	/* A target with approval_mode: retry: the statement is not parked. pos is how many
	 * statements the session has had judged before this one, n how many this text holds.
	 * For the same text, read the same way (split_json), sent again on the same session
	 * with no statement in between (so that nothing can have changed what it means):
	 * HOLD_RETRY_RUN when an approver approved its request (used up: it runs once),
	 * HOLD_RETRY_DENIED when one denied it (msg says so; used up too), HOLD_RETRY_WAIT when
	 * its request is open (a new one is opened when there is none); id says which
	 * request. Or -errno (-EDQUOT: too many waiting). */
	int (*retry)(struct session *s, const char *rule, const char *message, const char *text,
		     size_t len, const char *split_json, uint64_t pos, int n, char *id, size_t idn,
		     char *msg, size_t msgn);
};
enum { HOLD_RETRY_WAIT = 0, HOLD_RETRY_RUN = 1, HOLD_RETRY_DENIED = 2 };
extern const struct hold_ops *hold_ops;

/* The policy's rules (verdict.c): what hoopd installs as verdict_hook. */
enum verdict policy_verdict(struct judgement *j);

static inline const char *verdict_name(enum verdict v)
{
	return v == VERDICT_DENY ? "deny" : v == VERDICT_HOLD ? "hold" : "allow";
}

#endif
