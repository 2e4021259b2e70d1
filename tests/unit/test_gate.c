/*
 * The statement gate (user/hoopd/gate/gate.c), driven through the smallest engine there is
 * (tests/unit/fake_engine.c): what every engine gets from the gate, whatever its protocol.
 * The verdict is a test hook, the records are caught before the audit trail, and the relay is
 * the few sess_* calls an engine makes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "catalog_fetch.h"
#include "engine.h"
#include "record.h"
#include "gate.h"
#include "harness.h"
#include "daemon.h"
#include "mask_live.h"
#include "session.h"
#include "sqlfacts.h"
#include "verdict.h"

extern const struct engine_ops fake_engine;

struct hoopd hoopd;

/* ---- the relay, the trail, masking: stand-ins ---- */

void sess_hold(struct session *s)
{
	s->held = 1;
}

void sess_resume(struct session *s)
{
	s->held = 0;
}

void sess_set_login(struct session *s, const char *user, const char *database)
{
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->database, sizeof(s->database), "%s", database);
}

void catalog_stale(struct session *s, const char *database)
{
}

uint64_t cat_gen(const struct catalog *c)
{
	return 0;
}

struct mplan *mplan_build(const struct masking *m, const struct catalog *cat, const char *sql,
			  size_t len, const char (*made)[64], int nmade)
{
	return NULL;
}

struct mplan *mplan_unknown(void)
{
	return NULL;
}

struct mplan *mplan_ref(struct mplan *p)
{
	return p;
}

void mplan_put(struct mplan *p)
{
}

/* Every statement record, with what the database had been sent when it was written. */
struct rec {
	uint64_t seq;
	char verdict[16], text[128], reason[64], prepared[64], refused[16];
	int parse_error;
	size_t forwarded; /* bytes for the database when it was written */
};

static struct rec recs[64];
static int nrecs;
static int records_fail; /* the trail cannot be written */
static struct session S;

int ev_statement(const struct agent *a, const struct ev_statement *e)
{
	struct rec *r = &recs[nrecs < 63 ? nrecs++ : 63];

	memset(r, 0, sizeof(*r));
	r->seq = e->seq;
	snprintf(r->verdict, sizeof(r->verdict), "%s", e->verdict);
	snprintf(r->text, sizeof(r->text), "%.*s", (int)e->text_len, e->text);
	snprintf(r->reason, sizeof(r->reason), "%s", e->reason ? e->reason : "");
	snprintf(r->prepared, sizeof(r->prepared), "%s", e->prepared ? e->prepared : "");
	r->parse_error = e->parse_error;
	snprintf(r->refused, sizeof(r->refused), "%s", e->refused ? e->refused : "");
	r->forwarded = S.s.out.len;
	return records_fail ? -EIO : 0;
}

/* ---- the verdict and the approvers ---- */

static int parse_errors_judged;

static int on_parse_error_deny; /* as the policy's on_parse_error: deny (judge_out.unparsed) */

/* drop: deny; approve: hold; a text the grammar rejected: deny (as hoopd's rules do). */
static const struct sqlfacts *facts_seen;
static char user_seen[64];

static enum verdict test_verdict(struct judgement *j)
{
	facts_seen = j->facts;
	snprintf(user_seen, sizeof(user_seen), "%s@%s", j->user, j->database);
	if (j->parse_error) {
		parse_errors_judged++;
		snprintf(j->rule, sizeof(j->rule), "parse_error");
		snprintf(j->message, sizeof(j->message), "hoop: cannot parse this");
		j->unparsed = on_parse_error_deny;
		return VERDICT_DENY;
	}
	if (memmem(j->text, j->len, "drop", 4)) {
		snprintf(j->rule, sizeof(j->rule), "no_drop");
		snprintf(j->message, sizeof(j->message), "hoop: no dropping");
		return VERDICT_DENY;
	}
	if (memmem(j->text, j->len, "approve", 7)) {
		snprintf(j->rule, sizeof(j->rule), "needs_approval");
		snprintf(j->message, sizeof(j->message), "an approver decides");
		return VERDICT_HOLD;
	}
	snprintf(j->rule, sizeof(j->rule), "reads");
	return VERDICT_ALLOW;
}

static int holds_opened, holds_forgotten, hold_result;
static char held_text[128], held_split[512];

static int test_hold_open(struct session *s, const char *rule, const char *message,
			  const char *text, size_t len, const char *split, char *id, size_t idn)
{
	if (hold_result)
		return hold_result;
	holds_opened++;
	snprintf(held_text, sizeof(held_text), "%.*s", (int)len, text);
	snprintf(held_split, sizeof(held_split), "%s", split ? split : "");
	snprintf(id, idn, "a%d", holds_opened);
	return 0;
}

static void test_hold_forget(struct session *s, const char *why)
{
	holds_forgotten++;
}

static const struct hold_ops test_hold_ops = {.open = test_hold_open,
					      .forget = test_hold_forget};

/* ---- driving the engine ---- */

static void start(void)
{
	memset(&S, 0, sizeof(S));
	memset(recs, 0, sizeof(recs));
	nrecs = records_fail = hold_result = parse_errors_judged = on_parse_error_deny = 0;
	holds_opened = holds_forgotten = 0;
	hold_ops = &test_hold_ops;
	S.eng = &fake_engine;
	S.est = fake_engine.open(&S);
	CHECK(S.est != NULL);
}

static void finish(void)
{
	fake_engine.close(S.est, "test over");
	buf_free(&S.a.out);
	buf_free(&S.s.out);
	buf_free(&S.a.in);
}

static void send_line(const char *line)
{
	CHECK_EQ_INT(buf_append(&S.a.in, line, strlen(line)), 0);
	CHECK_EQ_INT(fake_engine.agent_data(S.est, &S.a.in), 0);
}

/* What the database (s) or the agent (a) was sent, as a string. */
static const char *sent(struct buf *b)
{
	static char out[2][512];
	static int k;
	char *o = out[k++ & 1];

	snprintf(o, 512, "%.*s", (int)b->len, (const char *)buf_head(b));
	return o;
}

static void check_rec(int i, uint64_t seq, const char *verdict, const char *text,
		      const char *reason)
{
	unit_where("record %d", i);
	CHECK(i < nrecs);
	CHECK_EQ_INT(recs[i].seq, seq);
	CHECK_STREQ(recs[i].verdict, verdict);
	CHECK_STREQ(recs[i].text, text);
	CHECK_STREQ(recs[i].reason, reason);
	unit_where("%s", "");
}

/* ---- tests ---- */

/* An allowed message is on record, statement by statement, before a byte of it is forwarded. */
static void test_allow_records_before_forward(void)
{
	start();
	send_line("select 1; select 2\n");
	CHECK_STREQ(sent(&S.s.out), "select 1; select 2\n");
	CHECK_STREQ(sent(&S.a.out), "");
	CHECK_EQ_INT(nrecs, 2);
	check_rec(0, 1, "allow", "select 1", "reads");
	check_rec(1, 2, "allow", "select 2", "reads");
	CHECK_EQ_INT(recs[0].forwarded, 0);
	CHECK_EQ_INT(recs[1].forwarded, 0);
	CHECK_STREQ(user_seen, "fake_user@fake_db"); /* the session's login, set once */
	send_line("select 3\n");
	check_rec(2, 3, "allow", "select 3", "reads");
	CHECK_EQ_INT(recs[2].forwarded, strlen("select 1; select 2\n"));
	finish();
}

/* One denied statement anywhere refuses the whole message; every statement is on record,
 * the denied one as deny and the others as not run. */
static void test_deny_refuses_whole_batch(void)
{
	start();
	send_line("select 1; drop table t; select 2\n");
	CHECK_STREQ(sent(&S.s.out), "");
	CHECK_STREQ(sent(&S.a.out), "ERROR 42501 hoop: no dropping\n");
	CHECK_EQ_INT(nrecs, 3);
	check_rec(0, 1, "not_run", "select 1", "reads");
	check_rec(1, 2, "deny", "drop table t", "no_drop");
	check_rec(2, 3, "not_run", "select 2", "reads");
	/* deny beats hold: nothing waits for an approver */
	send_line("approve this; drop it\n");
	CHECK_EQ_INT(holds_opened, 0);
	CHECK_EQ_INT(S.held, 0);
	CHECK_EQ_INT(nrecs, 5);
	check_rec(3, 4, "not_run", "approve this", "needs_approval");
	check_rec(4, 5, "deny", "drop it", "no_drop");
	finish();
}

/* A hold parks the whole message; an approval replays it as judged (no second verdict), a
 * refusal, a timeout and a cancel answer it without the database. */
static void test_hold_then_resume_or_fail(void)
{
	start();
	send_line("approve me; select 1\nselect 2\n");
	CHECK_EQ_INT(holds_opened, 1);
	CHECK_STREQ(held_text, "approve me; select 1");
	/* the approver is shown how hoopd split it: which statement is held, by what rule */
	CHECK_STREQ(held_split,
		    "{\"statements\":[{\"text\":\"approve me\",\"held\":true,"
		    "\"rule\":\"needs_approval\"},{\"text\":\"select 1\",\"held\":false,"
		    "\"rule\":\"reads\"}]}");
	CHECK_EQ_INT(S.held, 1);
	CHECK_STREQ(sent(&S.a.out), "WAIT a1\n");
	CHECK_STREQ(sent(&S.s.out), "");
	CHECK_EQ_INT(nrecs, 2);
	check_rec(0, 1, "hold", "approve me", "");
	check_rec(1, 2, "hold", "select 1", "");
	/* the line behind it waits too */
	CHECK_STREQ(sent(&S.a.in), "select 2\n");
	CHECK_EQ_INT(fake_engine.resume_held(S.est, VERDICT_ALLOW, NULL), 0);
	CHECK_EQ_INT(S.held, 0);
	CHECK_STREQ(sent(&S.s.out), "approve me; select 1\n");
	CHECK_EQ_INT(nrecs, 4);
	check_rec(2, 1, "allow", "approve me", "");
	check_rec(3, 2, "allow", "select 1", "");
	CHECK_EQ_INT(recs[2].forwarded, 0);
	CHECK_EQ_INT(fake_engine.agent_data(S.est, &S.a.in), 0);
	check_rec(4, 3, "allow", "select 2", "reads");
	CHECK_EQ_INT(fake_engine.resume_held(S.est, VERDICT_ALLOW, NULL), -1); /* none held */

	/* an approver says no */
	S.a.out.len = 0;
	send_line("approve again\n");
	CHECK_EQ_INT(fake_engine.resume_held(S.est, VERDICT_DENY, "an approver said no"), 0);
	CHECK_STREQ(sent(&S.a.out), "WAIT a2\nERROR 42501 an approver said no\n");
	/* nobody decides in time */
	S.a.out.len = 0;
	send_line("approve later\n");
	CHECK_EQ_INT(fake_engine.fail_held(S.est, "57014", "no approver decided in time"), 0);
	CHECK_STREQ(sent(&S.a.out), "WAIT a3\nERROR 57014 no approver decided in time\n");
	/* the client cancels */
	S.a.out.len = 0;
	send_line("approve never\n");
	CHECK_EQ_INT(fake_engine.cancel_held(S.est), 0);
	CHECK_EQ_INT(holds_forgotten, 1);
	CHECK_STREQ(sent(&S.a.out),
		    "WAIT a4\nERROR 57014 canceling statement due to user request\n");
	CHECK_STREQ(sent(&S.s.out), "approve me; select 1\nselect 2\n");
	/* a session that ends with a statement parked closes its request */
	send_line("approve and leave\n");
	CHECK_EQ_INT(S.held, 1);
	finish();
	CHECK_EQ_INT(holds_forgotten, 2);
}

/* A hold nobody can decide (no approvals, or too many waiting) is refused. */
static void test_hold_refused(void)
{
	start();
	hold_result = -EDQUOT;
	send_line("approve me\n");
	CHECK_EQ_INT(S.held, 0);
	CHECK(!strncmp(sent(&S.a.out), "ERROR 53400 hoop: this statement needs approval", 47));
	hold_result = 0;
	hold_ops = NULL;
	S.a.out.len = 0;
	send_line("approve me\n");
	CHECK_EQ_INT(S.held, 0);
	CHECK_STREQ(sent(&S.a.out), "ERROR 42501 an approver decides\n");
	check_rec(0, 1, "deny", "approve me", "needs_approval");
	CHECK_STREQ(sent(&S.s.out), "");
	finish();
}

/* No statement reaches the database without its record: an unwritable trail refuses it. */
static void test_unrecorded_refuses(void)
{
	start();
	records_fail = 1;
	send_line("select 1; select 2\n");
	CHECK_STREQ(sent(&S.s.out), "");
	CHECK_STREQ(sent(&S.a.out), "ERROR 58030 " GATE_UNRECORDED_MSG "\n");
	/* a denial stays a denial */
	S.a.out.len = 0;
	send_line("drop table t\n");
	CHECK_STREQ(sent(&S.a.out), "ERROR 42501 hoop: no dropping\n");
	/* and an approved replay that cannot be recorded does not run either */
	S.a.out.len = 0;
	records_fail = 0;
	send_line("approve me\n");
	records_fail = 1;
	CHECK_EQ_INT(fake_engine.resume_held(S.est, VERDICT_ALLOW, NULL), 0);
	CHECK_STREQ(sent(&S.a.out), "WAIT a1\nERROR 58030 " GATE_UNRECORDED_MSG "\n");
	CHECK_STREQ(sent(&S.s.out), "");
	finish();
}

/* Text the grammar cannot split is one statement, judged and recorded as a parse error. */
static void test_parse_error_judged(void)
{
	start();
	send_line("select 'a; select 2\n");
	CHECK_EQ_INT(parse_errors_judged, 1);
	CHECK_EQ_INT(nrecs, 1);
	check_rec(0, 1, "deny", "select 'a; select 2", "parse_error");
	CHECK_EQ_INT(recs[0].parse_error, 1);
	CHECK_STREQ(sent(&S.a.out), "ERROR 42501 hoop: cannot parse this\n");
	CHECK_STREQ(recs[0].refused, "");
	CHECK_STREQ(sent(&S.s.out), "");
	/* refused because the grammar rejects it (on_parse_error): the grammar's own error goes
	 * to the agent, and the record says so */
	on_parse_error_deny = 1;
	S.a.out.len = 0;
	send_line("select 1; select 'x\n");
	CHECK_STREQ(sent(&S.a.out), "ERROR 42601 unterminated quoted string at 18\n");
	check_rec(1, 2, "deny", "select 1; select 'x", "parse_error");
	CHECK_STREQ(recs[1].refused, "unparsed");
	CHECK_STREQ(sent(&S.s.out), "");
	finish();
}

/* An engine may make a verdict stricter between gate_judge and gate_commit (PostgreSQL denies a
 * FunctionCall it cannot mask); a batch that may not wait turns a hold into a denial. */
static void test_engine_stricter_and_no_hold(void)
{
	struct gate g;
	struct gate_stmt st = {.text = "select 1", .len = 8};
	struct gate_batch b = {.protocol = "function", .what = "function call", .st = &st, .n = 1};

	start();
	gate_init(&g, &S, NULL, NULL);
	gate_judge(&g, &b);
	CHECK_EQ_INT(b.v, VERDICT_ALLOW);
	b.v = st.v = VERDICT_DENY;
	CHECK_EQ_INT(gate_commit(&g, &b), GATE_REFUSE);
	CHECK_STREQ(b.sqlstate, "42501");
	CHECK_STREQ(b.message, "hoop: function call denied by policy");
	check_rec(0, 1, "deny", "select 1", "reads");
	st.text = "approve";
	st.len = 7;
	gate_judge(&g, &b); /* may_hold is 0 */
	CHECK_EQ_INT(b.v, VERDICT_DENY);
	CHECK_EQ_INT(gate_commit(&g, &b), GATE_REFUSE);
	CHECK_STREQ(b.message, "an approver decides");
	CHECK_EQ_INT(holds_opened, 0);
	/* an engine that knows what its statement does hands the verdict its facts */
	static struct sqlfacts own;

	st.facts = &own;
	gate_judge(&g, &b);
	CHECK(facts_seen == st.facts);
	gate_free(&g);
	finish();
}

int main(void)
{
	verdict_hook = test_verdict;
	UNIT_RUN(test_allow_records_before_forward);
	UNIT_RUN(test_deny_refuses_whole_batch);
	UNIT_RUN(test_hold_then_resume_or_fail);
	UNIT_RUN(test_hold_refused);
	UNIT_RUN(test_unrecorded_refuses);
	UNIT_RUN(test_parse_error_judged);
	UNIT_RUN(test_engine_stricter_and_no_hold);
	return unit_report();
}
