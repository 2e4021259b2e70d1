/*
 * hoopctl's reading of the audit trail, shared by verify, sessions, replay and export: the
 * segments of <state dir>/audit in order, every record of them, a record's fields, times,
 * and what each session did (sessions.c). The format is trail.h's (user/common, shared with
 * hoopd, the writer); docs/audit.md describes it.
 */
#ifndef HOOPCTL_TRAILREAD_H
#define HOOPCTL_TRAILREAD_H

#include <getopt.h>
#include <json-c/json.h>
#include <json-c/linkhash.h>
#include <stdint.h>

#include "trail.h"

#define DEFAULT_STATE_DIR "/var/lib/hoop"
#define MAX_RECORD TRAIL_RECORD_MAX

/* ---- the segments (trailread.c) ----------------------------------------------------------- */

struct seg {
	uint32_t n;
	int gz;	  /* the file read is seg-N.jsonl.gz */
	int both; /* seg-N.jsonl and seg-N.jsonl.gz both exist (being compressed, or hoopd stopped
		   * while compressing it) */
	char name[40];
};

struct trail_list {
	char dir[4096];
	int dfd; /* dir */
	struct seg *segs;
	int nsegs;
};

/* List the segments in number order. 0, or a negative errno with a message printed. */
int trail_list_open(const char *state_dir, struct trail_list *t);
void trail_list_free(struct trail_list *t);
/* Open segment s for reading (the compressed one if hoopd compressed it since the listing).
 * 0, or -1 with l->err set; close l either way. */
int seg_lines_open(struct trail_lines *l, const struct trail_list *t, struct seg *s);

/* ---- records (trailread.c) ---------------------------------------------------------------- */

struct rec {
	const struct seg *seg;
	unsigned lineno;
	uint64_t seq; /* the record's own seq */
	const char *line;
	size_t len;
	struct json_object *o;
};

/* Return nonzero from fn to stop. A record that does not parse is skipped (verify names it). */
typedef int (*rec_fn)(const struct rec *r, void *arg);

/* Every whole record of the trail in order; `want` (if set) must occur in a line for it to be
 * parsed at all. 0, or -1 with a message printed. */
int trail_each(const char *state_dir, const char *want, rec_fn fn, void *arg);

/* The line as one JSON object, or NULL with why. */
struct json_object *parse_json(const char *s, size_t len, const char **why);
/* Fields of a record: a string ("" when absent), present?, an integer (0), an object (NULL). */
const char *js(struct json_object *o, const char *k);
int has(struct json_object *o, const char *k);
int64_t ji(struct json_object *o, const char *k);
struct json_object *jo(struct json_object *o, const char *k);
/* A string field as hoopctl shows it to a person: escaped visibly (disp.h). */
const char *jd(struct json_object *o, const char *k);
/* A JSON value as text for a person: json-c leaves DEL, C1 and bidi controls raw. */
const char *jtext(struct json_object *o);

/* ---- time (trailread.c) ------------------------------------------------------------------- */

/* RFC 3339 ("2026-11-26T14:38:51.916898Z", "...+01:00"; a space for T; a bare date is
 * midnight UTC) into microseconds since the epoch. 0, or -1. */
int parse_rfc3339(const char *s, int64_t *us);
/* --since: RFC 3339, or a duration back from now: 90s, 30m, 1h, 2d, 1w. 0, or -1 with a
 * message for the command `cmd` printed. */
int parse_since(const char *cmd, const char *s, int64_t *us);
/* A record's "ts", or INT64_MIN. */
int64_t rec_us(struct json_object *o);

/* ---- what each session did (sessions.c) --------------------------------------------------- */

struct sess {
	char id[32];
	struct json_object *start; /* its session_start record */
	struct json_object *who;   /* a statement record's "who", for when start is gone */
	char start_ts[40], last_ts[40];
	int64_t last_us;
	uint64_t statements, denied;
	unsigned verdicts; /* bit per verdict seen: allow, deny, hold, not_run */
	char end_reason[160];
	int ended, orphaned; /* orphaned: hoopd started again with no session_end for it */
	int64_t bytes_up, bytes_down, duration_ms; /* from its session_end */
};

struct sessions {
	struct sess **v;
	size_t n, cap;
	struct lh_table *by_id;
};

/* 0, or -1 (out of memory). */
int sessions_init(struct sessions *ss);
void sessions_free(struct sessions *ss);
struct sess *sess_get(struct sessions *ss, const char *id, int create);
/* Take one record into what its session did (a rec_fn over struct sessions). */
int sessions_gather(const struct rec *r, void *arg);

/* ---- the commands' shared option handling (trailread.c) ---------------------------------- */

struct trail_cmd {
	const char *name;  /* "verify", for messages */
	const char *usage; /* "usage: hoopctl verify ...\n" */
	const struct option *opts;
};

/*
 * getopt_long over the command's options, with what every trail command does the same way:
 * --help prints the usage to stdout (*exit_rc 0), an unknown option prints it to stderr
 * (*exit_rc 2); either returns -1, like the end of the options (*exit_rc stays -1).
 */
int trail_cmd_opt(const struct trail_cmd *c, int argc, char **argv, int *exit_rc);
/* After the options: 0 when exactly `want` arguments are left, else 2 with a message. */
int trail_cmd_args(const struct trail_cmd *c, int argc, char **argv, int want);

#endif
