/*
 * The smallest engine there is: what a new protocol must implement to put its statements
 * through the statement gate (gate.h) and let approvals decide what it holds (engine.h).
 *
 * Its wire: the agent sends lines of SQL, one message per line, statements separated by ';'.
 * The database gets the lines the gate let through; the agent gets "ERROR <sqlstate> <text>"
 * for a refusal and "WAIT <approval id>" while a line waits for an approver. A line with an
 * odd number of quotes is one the "grammar" cannot split: one statement, a parse error, which
 * the "server" would answer "ERROR 42601 unterminated quoted string at <position>".
 *
 * What it does that every engine must:
 * 1. open: gate_init (and, after its login, sess_set_login once: the session's user and
 *    database are every statement's);
 * 2. for each message: split it, fill a gate_batch, gate_judge + gate_commit, and act on the
 *    outcome: forward (the records are written already), refuse, or park;
 * 3. resume_held / fail_held: replay a parked message with the verdict given (gate_commit
 *    alone) or refuse it;
 * 4. close: hold_ops->forget a parked message, gate_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "gate.h"
#include "session.h"

#define FAKE_MAX_STMTS 16

struct fake {
	struct session *s;
	struct gate g;
	char *held; /* a parked line */
};

/* The engine's own splitter (a dialect's job for SQL engines). */
static int fake_split(const char *line, size_t len, struct gate_stmt *st, int *parse_error,
		      struct sql_error *err)
{
	size_t quotes = 0, start = 0, last = 0;
	int n = 0;

	memset(st, 0, FAKE_MAX_STMTS * sizeof(*st));
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\'') {
			quotes++;
			last = i;
		}
	*parse_error = quotes % 2;
	if (*parse_error) {
		/* what the server would say of it */
		err->kind = SQL_ERR_GRAMMAR;
		snprintf(err->sqlstate, sizeof(err->sqlstate), "42601");
		snprintf(err->message, sizeof(err->message), "unterminated quoted string");
		err->position = (int)last + 1;
		st[0].text = line;
		st[0].len = len;
		return 1;
	}
	for (size_t i = 0; i <= len && n < FAKE_MAX_STMTS; i++) {
		if (i < len && line[i] != ';')
			continue;
		while (start < i && line[start] == ' ')
			start++;
		if (i > start) {
			st[n].text = line + start;
			st[n++].len = i - start;
		}
		start = i + 1;
	}
	return n;
}

static int fake_refuse(struct fake *f, const char *sqlstate, const char *msg)
{
	return buf_append(&f->s->a.out, "ERROR ", 6) || buf_append(&f->s->a.out, sqlstate, 5) ||
	       buf_append(&f->s->a.out, " ", 1) || buf_append(&f->s->a.out, msg, strlen(msg)) ||
	       buf_append(&f->s->a.out, "\n", 1);
}

/* Act on what the gate said of line (outcome: gate_commit's). */
static int fake_act(struct fake *f, const char *line, size_t len, struct gate_batch *b,
		    int outcome)
{
	switch (outcome) {
	case GATE_FORWARD:
		return buf_append(&f->s->s.out, line, len) || buf_append(&f->s->s.out, "\n", 1);
	case GATE_REFUSE:
		if (b->unparsed) { /* the grammar's error, as the server would send it */
			char msg[sizeof(b->err.message) + 16];

			snprintf(msg, sizeof(msg), "%s at %d", b->err.message, b->err.position);
			return fake_refuse(f, b->err.sqlstate, msg);
		}
		return fake_refuse(f, b->sqlstate, b->message);
	case GATE_HOLD:
		if (!(f->held = strndup(line, len))) {
			hold_ops->forget(f->s, "out of memory");
			return -1;
		}
		sess_hold(f->s);
		return buf_append(&f->s->a.out, "WAIT ", 5) ||
		       buf_append(&f->s->a.out, b->hold_id, strlen(b->hold_id)) ||
		       buf_append(&f->s->a.out, "\n", 1);
	default:
		return -1;
	}
}

/* One message through the gate: judged (judge), or replayed as allowed (an approval). */
static int fake_message(struct fake *f, const char *line, size_t len, int judge)
{
	struct gate_stmt st[FAKE_MAX_STMTS];
	struct gate_batch b = {.protocol = "simple", .text = line, .len = len, .may_hold = 1,
			       .st = st};

	b.n = fake_split(line, len, st, &b.parse_error, &b.err);
	if (judge) {
		gate_judge(&f->g, &b);
	} else {
		for (int i = 0; i < b.n; i++)
			st[i].v = VERDICT_ALLOW;
		b.v = VERDICT_ALLOW;
	}
	return fake_act(f, line, len, &b, gate_commit(&f->g, &b));
}

static void *fake_open(struct session *s)
{
	struct fake *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->s = s;
	gate_init(&f->g, s, NULL, f); /* no named statements: no gate_ops */
	sess_set_login(s, "fake_user", "fake_db"); /* a protocol with a login: after it */
	return f;
}

static void fake_close(void *st, const char *why)
{
	struct fake *f = st;

	if (f->held && hold_ops)
		hold_ops->forget(f->s, why);
	gate_free(&f->g);
	free(f->held);
	free(f);
}

static int fake_agent_data(void *st, struct buf *in)
{
	struct fake *f = st;

	while (in->len && !f->s->held) {
		const char *line = (const char *)buf_head(in);
		const char *nl = memchr(line, '\n', in->len);
		size_t len;

		if (!nl)
			return 0; /* the rest of the line is still to come */
		len = (size_t)(nl - line);
		if (fake_message(f, line, len, 1))
			return -1;
		buf_consume(in, len + 1);
	}
	return 0;
}

static int fake_server_data(void *st, struct buf *in)
{
	struct fake *f = st;
	int r = buf_append(&f->s->a.out, buf_head(in), in->len);

	buf_consume(in, in->len);
	return r;
}

static int fake_fail_held(void *st, const char *sqlstate, const char *message)
{
	struct fake *f = st;
	int r;

	if (!f->held)
		return -1;
	free(f->held);
	f->held = NULL;
	r = fake_refuse(f, sqlstate, message);
	sess_resume(f->s);
	return r;
}

static int fake_resume_held(void *st, enum verdict v, const char *message)
{
	struct fake *f = st;
	char *line = f->held;
	int r;

	if (!line)
		return -1;
	if (v != VERDICT_ALLOW)
		return fake_fail_held(f, "42501", message ? message : "hoop: statement denied");
	f->held = NULL;
	f->s->held = 0;
	r = fake_message(f, line, strlen(line), 0);
	free(line);
	sess_resume(f->s);
	return r;
}

static int fake_cancel_held(void *st)
{
	struct fake *f = st;

	if (hold_ops)
		hold_ops->forget(f->s, "cancelled by the client");
	return fake_fail_held(f, "57014", "canceling statement due to user request");
}

const struct engine_ops fake_engine = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.agent_data = fake_agent_data,
	.server_data = fake_server_data,
	.resume_held = fake_resume_held,
	.fail_held = fake_fail_held,
	.cancel_held = fake_cancel_held,
};
