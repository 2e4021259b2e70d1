/*
 * libFuzzer target for the PostgreSQL engine's model of the server's states (issue 14, points
 * 1 and 2): the agent sends any of Query, Parse, Bind, Describe, Execute, Close, Sync, Flush,
 * CopyData, CopyDone and CopyFail, over a few statement and portal names and a menu of
 * statements (reads of a masked column and of a constant, a failing one, PREPARE, EXECUTE,
 * DEALLOCATE [ALL], DECLARE ... WITH HOLD, FETCH, CLOSE [ALL], DISCARD ALL, COPY FROM STDIN,
 * a denied one), in any order; between them, a model of PostgreSQL (below: skip to Sync after
 * an extended-protocol error, COPY FROM STDIN that ignores Sync and Flush, prepared statements,
 * portals and cursors in one namespace, the unnamed ones, implicit transactions, output held
 * until Sync, Flush or an error) reads what hoopd forwarded, as much as the input says, and
 * answers.
 *
 * The model knows which statement produced each DataRow. The invariant, checked on every
 * DataRow hoopd passes to the agent: it is the row of the statement the model ran, transformed
 * by that statement's plan, or it is not passed at all (withheld). A row of the masked read
 * (value "55555NNNN") never arrives with its value in clear; a row of the clean read (value
 * "okNNNN") arrives unchanged (a masked form means another statement's plan was applied); NNNN
 * numbers the rows, which arrive in order and once. Also: a denied statement never reaches the
 * model, and after the agent ends (CopyDone, Sync), nothing waits forever.
 * Seeds: fuzz/corpus/pg_states/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mask_live.h"
#include "pg.h"
#include "pg_fuzz.h"
#include "policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fz_sess S;

/* ---- the statements ---- */

#define MASKED_SQL "select replace(ssn, '-', '') from patients"
#define CLEAN_SQL  "select 'x'"

enum kind {
	K_MASKED,
	K_CLEAN,
	K_FAIL,
	K_PREPARE,
	K_EXECUTE,
	K_DEALLOC,
	K_DEALLOC_ALL,
	K_DECLARE,
	K_FETCH,
	K_CLOSE,
	K_CLOSE_ALL,
	K_DISCARD_ALL,
	K_COPY,
	K_DENIED,
	K_BEGIN,
	K_COMMIT,
	K_ROLLBACK,
};

static const struct stmt {
	const char *sql;
	enum kind kind;
	const char
	    *name; /* PREPARE, EXECUTE, DEALLOCATE: statement; DECLARE, FETCH, CLOSE: portal */
	int inner; /* PREPARE, DECLARE: the menu entry it holds */
} menu[] = {
    {MASKED_SQL, K_MASKED, NULL, 0},
    {CLEAN_SQL, K_CLEAN, NULL, 0},
    {"select 1/0", K_FAIL, NULL, 0},
    {"prepare a as " MASKED_SQL, K_PREPARE, "a", 0},
    {"prepare a as " CLEAN_SQL, K_PREPARE, "a", 1},
    {"prepare b as " MASKED_SQL, K_PREPARE, "b", 0},
    {"prepare B as " CLEAN_SQL, K_PREPARE, "b", 1},
    {"prepare U&\"\\0061\" as " CLEAN_SQL, K_PREPARE, "a", 1},
    {"execute a", K_EXECUTE, "a", 0},
    {"execute \"b\"", K_EXECUTE, "b", 0},
    {"deallocate a", K_DEALLOC, "a", 0},
    {"deallocate all", K_DEALLOC_ALL, NULL, 0},
    {"declare c cursor with hold for " MASKED_SQL, K_DECLARE, "c", 0},
    {"declare c cursor with hold for " CLEAN_SQL, K_DECLARE, "c", 1},
    {"declare p cursor with hold for " CLEAN_SQL, K_DECLARE, "p", 1},
    {"fetch all from c", K_FETCH, "c", 0},
    {"fetch all from p", K_FETCH, "p", 0},
    {"close c", K_CLOSE, "c", 0},
    {"close all", K_CLOSE_ALL, NULL, 0},
    {"discard all", K_DISCARD_ALL, NULL, 0},
    {"copy t from stdin", K_COPY, NULL, 0},
    {"select 'denied'", K_DENIED, NULL, 0},
    {"begin", K_BEGIN, NULL, 0},
    {"commit", K_COMMIT, NULL, 0},
    {"rollback", K_ROLLBACK, NULL, 0},
    {"declare c cursor for " MASKED_SQL, K_DECLARE, "c", 0},
    {"declare c cursor for " CLEAN_SQL, K_DECLARE, "c", 1},
};
#define NMENU ((int)(sizeof(menu) / sizeof(menu[0])))

static const char *const stmt_names[] = {"", "a", "b"};
static const char *const portal_names[] = {"", "p", "c"};

static int menu_of(const char *sql)
{
	for (int i = 0; i < NMENU; i++)
		if (!strcmp(menu[i].sql, sql))
			return i;
	return -1;
}

static enum verdict states_verdict(struct judgement *j)
{
	if (memmem(j->text, j->len, "denied", 6)) {
		snprintf(j->rule, sizeof(j->rule), "fuzz");
		snprintf(j->message, sizeof(j->message), "denied by the fuzz policy");
		return VERDICT_DENY;
	}
	return VERDICT_ALLOW;
}

/* ---- the model of the server ---- */

#define MAXN 8

struct mprep {
	char name[8];
	int stmt; /* menu entry, or -1: the poison */
};

struct mportal {
	char name[8];
	int stmt; /* menu entry it runs */
	int holdable, this_xact, done;
};

static struct model {
	struct mprep preps[MAXN];
	int nprep;
	struct mportal portals[MAXN];
	int nportal;
	int skip;  /* ignore_till_sync */
	int block; /* a transaction block: 1 open, 2 failed */
	int copy;  /* in COPY FROM STDIN: 1 from a Query, 2 from an Execute */
	int xact_failed;
	struct buf wire;       /* what hoopd sent, not yet read */
	struct buf held;       /* answers not flushed yet */
	struct buf out;	       /* answers on their way to hoopd */
	int rows;	       /* DataRows sent */
	uint8_t masked[10000]; /* per row: 1 the masked read's, 2 the clean read's */
	int seen;	       /* the last row number the agent got */
} M;

static void m_put(uint8_t type, const void *body, size_t n)
{
	REQUIRE(pgw_put(&M.held, type, body, n) == 0);
}

static void m_flush(void)
{
	if (!M.held.len)
		return;
	REQUIRE(buf_append(&M.out, buf_head(&M.held), M.held.len) == 0);
	buf_consume(&M.held, M.held.len);
}

static struct mprep *m_prep(const char *name)
{
	for (int i = 0; i < M.nprep; i++)
		if (!strcmp(M.preps[i].name, name))
			return &M.preps[i];
	return NULL;
}

static struct mportal *m_portal(const char *name)
{
	for (int i = 0; i < M.nportal; i++)
		if (!strcmp(M.portals[i].name, name))
			return &M.portals[i];
	return NULL;
}

static void m_drop_prep(const char *name)
{
	struct mprep *x = m_prep(name);

	if (x)
		*x = M.preps[--M.nprep];
}

static void m_drop_portal(const char *name)
{
	struct mportal *x = m_portal(name);

	if (x)
		*x = M.portals[--M.nportal];
}

static void m_error(const char *state, int extended)
{
	pgw_put_error(&M.held, "ERROR", state, "model error", NULL, NULL);
	m_flush(); /* errors are flushed at once */
	M.xact_failed = 1;
	M.copy = 0;
	if (M.block)
		M.block = 2;
	if (extended)
		M.skip = 1;
}

/* In a failed transaction block only COMMIT and ROLLBACK run. */
static int m_aborted(int k, int extended)
{
	if (M.block != 2 || (k >= 0 && (menu[k].kind == K_COMMIT || menu[k].kind == K_ROLLBACK)))
		return 0;
	m_error("25P02", extended);
	return 1;
}

/* A ReadyForQuery: outside a transaction block the transaction ends (commit, or abort after an
 * error or ROLLBACK): portals without HOLD go, and held ones made in it if it aborted. */
static void m_ready(void)
{
	int n = 0;

	if (M.block) {
		pgw_put_ready(&M.held, M.block == 2 ? 'E' : 'T');
		m_flush();
		return;
	}
	for (int i = 0; i < M.nportal; i++) {
		struct mportal *x = &M.portals[i];

		if (!x->holdable || (x->this_xact && M.xact_failed))
			continue;
		x->this_xact = 0;
		M.portals[n++] = *x;
	}
	M.nportal = n;
	M.xact_failed = 0;
	pgw_put_ready(&M.held, 'I');
	m_flush();
}

static void m_rowdesc(void)
{
	uint8_t m[64];
	size_t o = 0;

	m[o++] = 0, m[o++] = 1;
	memcpy(m + o, "c", 2), o += 2;
	pgw_set_be32(m + o, 0), o += 4; /* an expression: table OID 0 */
	m[o++] = 0, m[o++] = 0;
	pgw_set_be32(m + o, 25), o += 4; /* text */
	m[o++] = 0xff, m[o++] = 0xff;
	pgw_set_be32(m + o, 0xffffffff), o += 4;
	m[o++] = 0, m[o++] = 0;
	m_put('T', m, o);
}

static void m_row(int masked)
{
	char v[16];
	uint8_t m[32];
	int n = M.rows < 9999 ? ++M.rows : M.rows;
	size_t l;

	M.masked[n] = masked ? 1 : 2;
	snprintf(v, sizeof(v), masked ? "55555%04d" : "ok%04d", n);
	l = strlen(v);
	m[0] = 0, m[1] = 1;
	pgw_set_be32(m + 2, (uint32_t)l);
	memcpy(m + 6, v, l);
	m_put('D', m, 6 + l);
}

static void m_complete(const char *tag)
{
	m_put('C', tag, strlen(tag) + 1);
}

/* The rows of a read (menu entry k) or "done" when a portal already ran to its end. */
static void m_rows(int k, int with_desc, int done)
{
	if (with_desc)
		m_rowdesc();
	if (!done)
		m_row(menu[k].kind == K_MASKED);
	m_complete(done ? "SELECT 0" : "SELECT 1");
}

/* Run statement k (a Query's, or the one a portal holds). 0, or -1 after an error. */
static int m_depth; /* EXECUTE of a statement that EXECUTEs: PostgreSQL's stack limit */

static int m_run(int k, int extended, struct mportal *self)
{
	const struct stmt *st = &menu[k];
	struct mprep *pr;
	struct mportal *po;

	if (m_aborted(k, extended))
		return -1;
	switch (st->kind) {
	case K_BEGIN:
		M.block = M.block ? M.block : 1;
		m_complete("BEGIN");
		return 0;
	case K_COMMIT:
	case K_ROLLBACK:
		if (st->kind == K_ROLLBACK || M.block == 2)
			M.xact_failed = 1;
		m_complete(st->kind == K_COMMIT && M.block != 2 ? "COMMIT" : "ROLLBACK");
		M.block = 0;
		return 0;
	case K_MASKED:
	case K_CLEAN:
		m_rows(k, !extended, self && self->done);
		if (self)
			self->done = 1;
		return 0;
	case K_FAIL:
		m_error("22012", extended);
		return -1;
	case K_DENIED:
		REQUIRE(!"a denied statement reached the database");
		return -1;
	case K_PREPARE:
		if (m_prep(st->name)) {
			m_error("42P05", extended);
			return -1;
		}
		REQUIRE(M.nprep < MAXN);
		snprintf(M.preps[M.nprep].name, 8, "%s", st->name);
		M.preps[M.nprep++].stmt = st->inner;
		m_complete("PREPARE");
		return 0;
	case K_EXECUTE:
		if (!(pr = m_prep(st->name)) || pr->stmt < 0) {
			m_error("26000", extended);
			return -1;
		}
		if (m_depth >= 4) {
			m_error("54001", extended);
			return -1;
		}
		{
			int r;

			m_depth++;
			r = m_run(pr->stmt, extended, NULL);
			m_depth--;
			return r;
		}
	case K_DEALLOC:
		if (!m_prep(st->name)) {
			m_error("26000", extended);
			return -1;
		}
		m_drop_prep(st->name);
		m_complete("DEALLOCATE");
		return 0;
	case K_DEALLOC_ALL:
		M.nprep = 0;
		m_complete("DEALLOCATE ALL");
		return 0;
	case K_DECLARE:
		if (!strstr(st->sql, " with hold ") && !M.block) {
			m_error("25P01", extended); /* only in transaction blocks */
			return -1;
		}
		if (m_portal(st->name)) {
			m_error("42P03", extended);
			return -1;
		}
		REQUIRE(M.nportal < MAXN);
		po = &M.portals[M.nportal++];
		memset(po, 0, sizeof(*po));
		snprintf(po->name, 8, "%s", st->name);
		po->stmt = st->inner;
		po->holdable = strstr(st->sql, " with hold ") != NULL;
		po->this_xact = 1;
		m_complete("DECLARE CURSOR");
		return 0;
	case K_FETCH:
		if (!(po = m_portal(st->name))) {
			m_error("34000", extended);
			return -1;
		}
		if (menu[po->stmt].kind != K_MASKED && menu[po->stmt].kind != K_CLEAN) {
			m_error("55000", extended); /* not a cursor of rows */
			return -1;
		}
		if (!extended)
			m_rowdesc();
		if (!po->done)
			m_row(menu[po->stmt].kind == K_MASKED);
		m_complete(po->done ? "FETCH 0" : "FETCH 1");
		po->done = 1;
		return 0;
	case K_CLOSE:
		if (!m_portal(st->name)) {
			m_error("34000", extended);
			return -1;
		}
		m_drop_portal(st->name);
		m_complete("CLOSE CURSOR");
		return 0;
	case K_CLOSE_ALL:
		M.nportal = 0;
		m_complete("CLOSE CURSOR ALL");
		return 0;
	case K_DISCARD_ALL:
		M.nprep = 0;
		M.nportal = 0;
		m_complete("DISCARD ALL");
		return 0;
	case K_COPY: {
		uint8_t g[3] = {0, 0, 0};

		m_put('G', g, 3);
		m_flush(); /* ReceiveCopyBegin flushes */
		M.copy = extended ? 2 : 1;
		return 0;
	}
	}
	return 0;
}

/* Does describing statement k give a RowDescription? (-1: an error) */
static int m_describes_rows(int k, int depth)
{
	struct mprep *pr;
	struct mportal *po;

	switch (menu[k].kind) {
	case K_MASKED:
	case K_CLEAN:
		return 1;
	case K_EXECUTE:
		pr = m_prep(menu[k].name);
		return pr && pr->stmt >= 0 && depth < 4 ? m_describes_rows(pr->stmt, depth + 1)
							: -1;
	case K_FETCH:
		po = m_portal(menu[k].name);
		return po ? 1 : -1;
	default:
		return 0;
	}
}

/* One message from hoopd, as PostgresMain would take it. */
static void m_message(const struct pgw_msg *m)
{
	struct pgw_rd rd;
	const char *a, *b;
	uint8_t kind;
	int k;

	if (M.copy) {
		switch (m->type) {
		case 'd':
			return;
		case 'c':
			k = M.copy;
			M.copy = 0;
			m_complete("COPY 1");
			if (k == 1)
				m_ready();
			return;
		case 'f':
			k = M.copy;
			m_error("57014", k == 2);
			if (k == 1)
				m_ready();
			return;
		case 'S':
		case 'H':
			return; /* ignored during COPY FROM STDIN */
		default:
			k = M.copy;
			m_error("08P01", k == 2); /* the message is consumed */
			if (k == 1)
				m_ready();
			return;
		}
	}
	if (M.skip && m->type != 'S')
		return;
	pgw_rd_init(&rd, m);
	switch (m->type) {
	case 'Q':
		a = pgw_str(&rd, NULL);
		REQUIRE(a != NULL);
		m_drop_prep(""); /* exec_simple_query drops the unnamed statement */
		m_drop_portal("");
		if (!strncmp(a, "SELECT pg_catalog.\"hoop", 23))
			m_error("42883", 0);
		else if ((k = menu_of(a)) < 0)
			m_error("42601", 0);
		else if (m_run(k, 0, NULL) == 0 && M.copy)
			return; /* ReadyForQuery after the COPY */
		m_ready();
		return;
	case 'P':
		a = pgw_str(&rd, NULL);
		b = pgw_str(&rd, NULL);
		REQUIRE(a && b);
		if (!a[0])
			m_drop_prep("");
		k = menu_of(b);
		if (m_aborted(k, 1))
			return;
		if (!strncmp(b, "SELECT pg_catalog.\"hoop", 23)) {
			m_error("42883", 1);
		} else if (k < 0) {
			m_error("42601", 1);
		} else if (a[0] && m_prep(a)) {
			m_error("42P05", 1);
		} else {
			REQUIRE(M.nprep < MAXN);
			snprintf(M.preps[M.nprep].name, 8, "%s", a);
			M.preps[M.nprep++].stmt = k;
			m_put('1', NULL, 0);
		}
		return;
	case 'B': {
		struct mprep *pr;
		struct mportal *po;

		a = pgw_str(&rd, NULL);
		b = pgw_str(&rd, NULL);
		REQUIRE(a && b);
		if (!(pr = m_prep(b))) {
			m_error("26000", 1);
			return;
		}
		if (m_aborted(pr->stmt, 1))
			return;
		if (!a[0])
			m_drop_portal("");
		if (m_portal(a)) {
			m_error("42P03", 1);
			return;
		}
		REQUIRE(M.nportal < MAXN);
		po = &M.portals[M.nportal++];
		memset(po, 0, sizeof(*po));
		snprintf(po->name, 8, "%s", a);
		po->stmt = pr->stmt;
		po->this_xact = 1;
		m_put('2', NULL, 0);
		return;
	}
	case 'D': {
		struct mprep *pr = NULL;
		struct mportal *po = NULL;
		int r;

		kind = pgw_u8(&rd);
		a = pgw_str(&rd, NULL);
		REQUIRE(a != NULL);
		if (kind == 'S' ? !(pr = m_prep(a)) : !(po = m_portal(a))) {
			m_error(kind == 'S' ? "26000" : "34000", 1);
			return;
		}
		if (kind == 'S') {
			uint8_t t[2] = {0, 0};

			m_put('t', t, 2);
		}
		r = m_describes_rows(pr ? pr->stmt : po->stmt, 0);
		if (r < 0) {
			m_error("26000", 1);
			return;
		}
		if (r)
			m_rowdesc();
		else
			m_put('n', NULL, 0);
		return;
	}
	case 'E': {
		struct mportal *po;

		a = pgw_str(&rd, NULL);
		REQUIRE(a != NULL);
		if (!(po = m_portal(a))) {
			m_error("34000", 1);
			return;
		}
		m_run(po->stmt, 1, po);
		return;
	}
	case 'C':
		kind = pgw_u8(&rd);
		a = pgw_str(&rd, NULL);
		REQUIRE(a != NULL);
		if (kind == 'S')
			m_drop_prep(a);
		else
			m_drop_portal(a);
		m_put('3', NULL, 0);
		return;
	case 'S':
		M.skip = 0;
		m_ready();
		return;
	case 'H':
		m_flush();
		return;
	case 'd':
	case 'c':
	case 'f':
		return; /* outside a COPY: ignored */
	default:
		REQUIRE(!"hoopd forwarded a message type the agent cannot have sent");
	}
}

/* The model reads up to n messages hoopd forwarded. */
static void m_step(int n)
{
	if (S.s.s.out.len) {
		REQUIRE(buf_append(&M.wire, buf_head(&S.s.s.out), S.s.s.out.len) == 0);
		buf_consume(&S.s.s.out, S.s.s.out.len);
	}
	while (n-- > 0 && M.wire.len) {
		struct pgw_msg m;
		const char *why;

		REQUIRE(pgw_frame(buf_head(&M.wire), M.wire.len, 0, 1 << 30, &m, &why) == PGW_OK);
		m_message(&m);
		buf_consume(&M.wire, m.total);
	}
}

/* ---- the invariant, on what the agent gets ---- */

static void check_agent(void)
{
	REQUIRE(!memmem(buf_head(&S.s.a.out), S.s.a.out.len, "55555", 5));
	while (S.s.a.out.len) {
		struct pgw_msg m;
		const char *why;
		struct pgw_rd rd;
		const uint8_t *v;
		int32_t l;
		int n = 0;

		REQUIRE(pgw_frame(buf_head(&S.s.a.out), S.s.a.out.len, 0, 1 << 30, &m, &why) ==
			PGW_OK);
		if (m.type == 'D') {
			pgw_rd_init(&rd, &m);
			REQUIRE(pgw_i16(&rd) == 1);
			l = pgw_i32(&rd);
			/* a redacted form (an unknown plan: fail closed) carries no row number */
			REQUIRE(l >= -1 && (l < 0 || (v = pgw_bytes(&rd, (size_t)l)) != NULL));
			if (l < 4)
				n = -1;
			for (int i = l - 4; i >= 0 && i < l; i++)
				n = v[i] >= '0' && v[i] <= '9' && n >= 0 ? n * 10 + (v[i] - '0')
									 : -1;
			if (n > 0) {
				char raw[16];

				/* each row once, in order, and only rows the model sent */
				REQUIRE(n > M.seen && n <= M.rows && M.masked[n]);
				M.seen = n;
				snprintf(raw, sizeof(raw),
					 M.masked[n] == 1 ? "55555%04d" : "ok%04d", n);
				if (M.masked[n] == 1) /* masked by its own plan: never clear */
					REQUIRE((size_t)l != strlen(raw) ||
						memcmp(v, raw, (size_t)l));
				else /* a clean row: a masked form is another statement's plan */
					REQUIRE((size_t)l == strlen(raw) &&
						!memcmp(v, raw, (size_t)l));
			}
		}
		buf_consume(&S.s.a.out, m.total);
	}
}

/* The model's answers reach hoopd, take chunks of them; the relay then offers the agent's
 * waiting bytes again. */
static void deliver(size_t chunk)
{
	while (M.out.len && !S.s.closing) {
		size_t n = chunk && chunk < M.out.len ? chunk : M.out.len;

		REQUIRE(buf_append(&S.s.s.in, buf_head(&M.out), n) == 0);
		buf_consume(&M.out, n);
		pg_engine.server_data(S.e, &S.s.s.in);
		check_agent();
	}
	if (S.s.a.in.len && !S.s.closing)
		pg_engine.agent_data(S.e, &S.s.a.in);
	check_agent();
}

/* ---- what the agent sends ---- */

static void fe_named(uint8_t type, uint8_t kind, const char *name)
{
	uint8_t m[16];
	size_t l = strlen(name) + 1;

	m[0] = kind;
	memcpy(m + 1, name, l);
	REQUIRE(pgw_put(&S.s.a.in, type, m, l + 1) == 0);
}

static void fe_bind(const char *portal, const char *stmt)
{
	uint8_t m[32];
	size_t o = 0, l = strlen(portal) + 1;

	memcpy(m + o, portal, l), o += l;
	l = strlen(stmt) + 1;
	memcpy(m + o, stmt, l), o += l;
	memset(m + o, 0, 6), o += 6;
	REQUIRE(pgw_put(&S.s.a.in, 'B', m, o) == 0);
}

static void fe_execute(const char *portal)
{
	uint8_t m[16];
	size_t l = strlen(portal) + 1;

	memcpy(m, portal, l);
	memset(m + l, 0, 4);
	REQUIRE(pgw_put(&S.s.a.in, 'E', m, l + 4) == 0);
}

struct rd_in {
	const uint8_t *p;
	size_t n;
};

static uint8_t next(struct rd_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* One step of the input: an agent message, or the model reading and answering. */
static void step(struct rd_in *in)
{
	uint8_t op = next(in), x = next(in);

	switch (op % 16) {
	case 0:
		REQUIRE(pgw_put_query(&S.s.a.in, menu[x % NMENU].sql) == 0);
		break;
	case 1:
		REQUIRE(pgw_put_parse(&S.s.a.in, stmt_names[x % 3], menu[(x / 3) % NMENU].sql) ==
			0);
		break;
	case 2:
		fe_bind(portal_names[x % 3], stmt_names[(x / 3) % 3]);
		break;
	case 3:
		fe_named('D', x & 1 ? 'P' : 'S',
			 x & 1 ? portal_names[(x / 2) % 3] : stmt_names[(x / 2) % 3]);
		break;
	case 4:
		fe_execute(portal_names[x % 3]);
		break;
	case 5:
		fe_named('C', x & 1 ? 'P' : 'S',
			 x & 1 ? portal_names[(x / 2) % 3] : stmt_names[(x / 2) % 3]);
		break;
	case 6:
		REQUIRE(pgw_put(&S.s.a.in, 'S', NULL, 0) == 0);
		break;
	case 7:
		REQUIRE(pgw_put(&S.s.a.in, 'H', NULL, 0) == 0);
		break;
	case 8:
		REQUIRE(pgw_put(&S.s.a.in, 'd', "1\n", 2) == 0);
		break;
	case 9:
		REQUIRE(pgw_put(&S.s.a.in, 'c', NULL, 0) == 0);
		break;
	case 10:
		REQUIRE(pgw_put(&S.s.a.in, 'f', "no", 3) == 0);
		break;
	default:
		/* the model reads 1-4 messages (or all), answers in chunks of 1-64 bytes (or all)
		 */
		m_step(x & 0x80 ? 1 << 20 : 1 + (x & 3));
		deliver(x & 0x40 ? 0 : 1 + ((x >> 2) & 15) * 4);
		return;
	}
	if (!S.s.closing)
		pg_engine.agent_data(S.e, &S.s.a.in);
	check_agent();
}

static char g_dir[64];

/* The masking key the engine made in g_dir goes with the process. */
static void remove_dir(void)
{
	char key[96];

	snprintf(key, sizeof(key), "%s/mask.key", g_dir);
	unlink(key);
	rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct policy pol;
	struct mask_column_rule *r = &pol.masking.rules[0];
	char err[256];

	fz_init();
	verdict_hook = states_verdict;
	snprintf(g_dir, sizeof(g_dir), "/tmp/hoop-fuzz-states-XXXXXX");
	REQUIRE(mkdtemp(g_dir) != NULL);
	atexit(remove_dir);
	pol.masking.enabled = 1;
	pol.masking.detectors = (1u << DET_COUNT) - 1;
	pol.masking.unknown_style = MASK_REDACT;
	pol.masking.detector_style = MASK_PARTIAL;
	pol.masking.on_unmaskable = UNMASKABLE_WITHHOLD;
	snprintf(pol.masking.mrn_pattern, sizeof(pol.masking.mrn_pattern), "MRN-[0-9]{8}");
	snprintf(r->table, sizeof(r->table), "patients");
	snprintf(r->column, sizeof(r->column), "ssn");
	r->style = MASK_PARTIAL;
	r->keep_last = 4;
	pol.masking.nrules = 1;
	if (masking_load(&pol.masking, g_dir, err, sizeof(err))) {
		fprintf(stderr, "masking_load: %s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char params[] = "user\0agent\0database\0clinical\0application_name\0fuzz\0";
	struct rd_in in = {data, size};
	uint8_t startup[8 + sizeof(params)];
	int32_t ok = 0;

	buf_free(&M.wire), buf_free(&M.held), buf_free(&M.out);
	memset(&M, 0, sizeof(M));
	memset(&fz, 0, sizeof(fz));
	memset(&fz_events, 0, sizeof(fz_events));
	fz_open(&S, "sstates");
	pgw_set_be32(startup, sizeof(startup));
	pgw_set_be32(startup + 4, PG_PROTOCOL_3);
	memcpy(startup + 8, params, sizeof(params));
	REQUIRE(buf_append(&S.s.a.in, startup, sizeof(startup)) == 0);
	pg_engine.agent_data(S.e, &S.s.a.in);
	REQUIRE(fz_check_server_out(&S, NULL, NULL) == 1);
	REQUIRE(pgw_put(&S.s.s.in, 'R', &ok, 4) == 0);
	REQUIRE(pgw_put_ready(&S.s.s.in, 'I') == 0);
	pg_engine.server_data(S.e, &S.s.s.in);
	buf_consume(&S.s.a.out, S.s.a.out.len);

	while (in.n && !S.s.closing)
		step(&in);
	/* The agent ends what it started (a COPY, a pipeline); the model answers everything: no
	 * answer may be left waiting, and nothing of the agent's left unread. */
	for (int round = 0; round < 4 && !S.s.closing; round++) {
		REQUIRE(pgw_put(&S.s.a.in, 'c', NULL, 0) == 0);
		REQUIRE(pgw_put(&S.s.a.in, 'S', NULL, 0) == 0);
		for (int i = 0; i < 8 && !S.s.closing; i++) {
			pg_engine.agent_data(S.e, &S.s.a.in);
			check_agent();
			m_step(1 << 20);
			deliver(0);
		}
	}
	if (!S.s.closing) {
		REQUIRE(S.s.a.in.len == 0);
		REQUIRE(M.wire.len == 0 && !M.copy && !M.skip);
		{
			struct jbuf j;

			jb_init(&j);
			jb_obj_open(&j);
			pg_engine.status(S.e, &j);
			jb_obj_close(&j);
			REQUIRE(strstr(jb_str(&j), "\"pending_responses\":0") != NULL);
			jb_free(&j);
		}
	}
	fz_close(&S);
	return 0;
}
