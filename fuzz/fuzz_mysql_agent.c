/*
 * libFuzzer target for the MySQL/MariaDB engine, agent direction: the input is the bytes an
 * agent sends, from its HandshakeResponse on (or an SSLRequest first). They reach
 * mysql_engine.agent_data in chunks; a small model of a MariaDB 10.11 (or MySQL 8.0) server
 * greets, logs the agent in (directly or after an auth switch; over TLS when the target says
 * prefer and the server offers it), answers hoopd's own settings query, and answers every
 * command the engine forwards the way the server would: OK, result sets (patients' with the
 * ssn MF_MARKER), prepared statements, a `SET sql_mode` that changes how it reads the
 * statements after it, `USE`. Its answers reach mysql_engine.server_data sooner or later.
 * Statements are judged by a test verdict: every DELETE and every text hoopd cannot read is
 * denied, a text whose last byte is 1 mod 7 held. Holds end by approval, refusal, fail_held,
 * cancel_held, or a KILL QUERY from a second connection of the same user (which hoopd
 * answers itself); the audit trail refuses records by decision; masking is on or off by
 * decision. Besides crashes, leaks and sanitizer reports, these are bugs:
 *   - a command reaching the server after the login that is not a COM_QUERY, COM_STMT_PREPARE,
 *     COM_STMT_EXECUTE, COM_INIT_DB, COM_FIELD_LIST or COM_PROCESS_KILL whose statements were
 *     put on record as allowed just before (each record's text that of the statement the
 *     server reads, in order), nor one of the text-free commands hoopd forwards by design
 *     (COM_PING, COM_STATISTICS, COM_SET_OPTION, COM_RESET_CONNECTION, COM_STMT_CLOSE,
 *     COM_STMT_RESET, COM_STMT_SEND_LONG_DATA of a statement the server knows, COM_QUIT,
 *     COM_CHANGE_USER, whose answer here is an OK or, for a user beginning with 'x', an ERR), nor
 *     a COM_STMT_FETCH of a cursor the server has open (an EXECUTE with CURSOR_TYPE_READ_ONLY
 *     opened it, no EXECUTE, RESET, CLOSE or COM_RESET_CONNECTION of it since, rows left), nor
 *     hoopd's own settings query; anything reaching it before the login is done or after
 *     COM_QUIT; a text the server would read under its current sql_mode as a statement
 *     hoopd cannot have allowed (a DELETE, or text hoopd's classifier cannot read);
 *   - anything queued for either peer that does not frame; anything the agent gets that a
 *     MySQL client would not read as the answer to what it sent (the server's answers here
 *     are all well-formed, and so must be what hoopd passes on, rows and column
 *     definitions included); hoopd waiting for an answer, or the client missing one, once
 *     the server has said all; with masking on, MF_MARKER in a column that says it is
 *     patients.ssn or is computed; an audit record that is not strict JSON;
 *   - a protocol error blamed on the database.
 * Seeds: fuzz/corpus/mysql_agent/ (recorded and hand-made sessions, fuzz/record_mysql.py);
 * dictionary: fuzz/mysql_wire.dict.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "my_fuzz.h"
#include "mysql_int.h"
#include "mysqlclass.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* hoopd's own settings query (mysql.c send_settings_query) begins so; the columns after these
 * two are its current database and, with masking on, the base tables it may read. */
static const char SETTINGS_PREFIX[] = "SELECT @@session.sql_mode, @@session.character_set_client";

#define CONN_ID	    7
#define SERVER_CAPS 0x81fff7feu /* MariaDB 10.11's greeting (no SSL) */

static struct mf_sess A; /* the agent's connection */
static struct mf_client C;
static struct mf_taken T;

/* ---- the verdict ---- */

static enum verdict agent_verdict(struct judgement *j)
{
	const struct sqlfacts *f = j->facts;
	unsigned last = j->len ? (unsigned char)j->text[j->len - 1] : 0;

	if (!f || f->parse_error || j->parse_error) {
		snprintf(j->rule, sizeof(j->rule), "on_parse_error");
		return VERDICT_DENY;
	}
	if (f->kinds & (1ULL << SK_DELETE)) {
		snprintf(j->rule, sizeof(j->rule), "no-delete");
		snprintf(j->message, sizeof(j->message), "hoop: DELETE is denied by policy");
		return VERDICT_DENY;
	}
	if (last % 7 == 1) {
		snprintf(j->rule, sizeof(j->rule), "approve-%u", last);
		return VERDICT_HOLD;
	}
	return VERDICT_ALLOW;
}

/* ---- the server ---- */

enum model_phase { M_GREETED, M_SWITCHED, M_READY, M_GONE };

struct shape {
	int kind; /* 0: no rows; 1: patients; 2: another table; 3: computed */
	char table[SQLFACTS_NAME];
};

struct stmt {
	uint32_t id;
	char *text;
	struct shape shape; /* of EXECUTE's result */
	uint16_t params;
	int cursor_left; /* rows left in the cursor its last execution opened; -1: none open */
};

static struct {
	enum model_phase phase;
	int mysql;	 /* MySQL 8.0 rather than MariaDB 10.11 */
	int auth_switch; /* ask the agent again before the OK */
	int offer_ssl;
	int tls_up; /* hoopd's leg is TLS now */
	int masking;
	uint32_t caps; /* as hoopd's login says */
	int deprecate_eof;
	int ansi, nbe, unread, ansi0, nbe0; /* sql_mode now, and at login */
	struct myl_settings lex;
	struct stmt st[64];
	int nst;
	uint32_t next_id, last_id;
	struct buf pending; /* said by the server, not yet read by hoopd */
	uint8_t seq;	    /* of the server's next packet */
	int quit;	    /* COM_QUIT came */
	char db[65];	    /* DATABASE(): the login's, COM_INIT_DB's, USE's */
} M;

static int g_kills_seen; /* KILLs that reached the server (kill_from_elsewhere) */

static const char *version(void)
{
	return M.mysql ? "8.0.36" : "5.5.5-10.11.19-MariaDB-0+deb12u1";
}

static const char *mode_string(char *b, size_t n)
{
	snprintf(b, n, "STRICT_TRANS_TABLES%s%s%s", M.ansi ? ",ANSI_QUOTES" : "",
		 M.nbe ? ",NO_BACKSLASH_ESCAPES" : "", M.unread ? ",ORACLE" : "");
	return b;
}

static void relex(void)
{
	char b[128];

	mf_settings(&M.lex, version(), mode_string(b, sizeof(b)), "utf8mb4");
}

static void say(const void *p, size_t n)
{
	REQUIRE(my_put_packet(&M.pending, p, n, &M.seq) == 0);
}

static void say_ok(uint64_t affected, uint16_t status)
{
	uint8_t b[16] = {0x00, (uint8_t)affected, 0, (uint8_t)status, (uint8_t)(status >> 8), 0, 0};

	say(b, 7);
}

static void say_err(unsigned err, const char *state, const char *msg)
{
	uint8_t b[300];
	size_t n = strlen(msg) < 256 ? strlen(msg) : 256;

	b[0] = 0xff;
	b[1] = (uint8_t)err;
	b[2] = (uint8_t)(err >> 8);
	b[3] = '#';
	memcpy(b + 4, state, 5);
	memcpy(b + 9, msg, n);
	say(b, 9 + n);
}

/* EOF, or the OK that ends rows under CLIENT_DEPRECATE_EOF */
static void say_end(uint16_t status)
{
	if (M.deprecate_eof) {
		uint8_t b[7] = {0xfe, 0, 0, (uint8_t)status, (uint8_t)(status >> 8), 0, 0};

		say(b, sizeof(b));
	} else {
		uint8_t b[5] = {0xfe, 0, 0, (uint8_t)status, (uint8_t)(status >> 8)};

		say(b, sizeof(b));
	}
}

static void say_eof_cols(void)
{
	if (!M.deprecate_eof) {
		uint8_t b[5] = {0xfe, 0, 0, 2, 0};

		say(b, sizeof(b));
	}
}

static size_t put_lstr(uint8_t *b, const char *s)
{
	size_t n = strlen(s);

	b[0] = (uint8_t)n;
	memcpy(b + 1, s, n);
	return n + 1;
}

static void say_coldef(const char *table, const char *name, uint8_t type, int field_list)
{
	uint8_t b[256];
	size_t o = 0;

	o += put_lstr(b + o, "def");
	o += put_lstr(b + o, table[0] ? "clinical" : "");
	o += put_lstr(b + o, table);
	o += put_lstr(b + o, table);
	o += put_lstr(b + o, name);
	o += put_lstr(b + o, table[0] ? name : "");
	b[o++] = 0x0c;
	b[o++] = 45, b[o++] = 0;			/* utf8mb4_general_ci */
	b[o++] = 0, b[o++] = 1, b[o++] = 0, b[o++] = 0; /* length 256 */
	b[o++] = type;
	b[o++] = 0, b[o++] = 0; /* flags */
	b[o++] = 0;		/* decimals */
	b[o++] = 0, b[o++] = 0;
	if (field_list)
		b[o++] = 0xfb; /* no default */
	say(b, o);
}

/* What a statement's result looks like, as a server would describe it: patients' columns
 * (the ssn holds MF_MARKER) when it reads patients, a column of the table it reads, or a
 * computed column. */
static void shape_of(const struct sqlfacts *f, struct shape *sh)
{
	memset(sh, 0, sizeof(*sh));
	if (!(f->kinds & (1ULL << SK_SELECT | 1ULL << SK_SHOW | 1ULL << SK_EXPLAIN)) ||
	    (f->kinds & (1ULL << SK_INSERT | 1ULL << SK_UPDATE)))
		return;
	sh->kind = 3;
	for (int i = 0; i < f->nread; i++) {
		const char *dot = strrchr(f->read[i], '.'), *t = dot ? dot + 1 : f->read[i];

		if (!strcmp(t, "patients")) {
			sh->kind = 1;
			return;
		}
		if (strlen(t) < 60) {
			sh->kind = 2;
			snprintf(sh->table, sizeof(sh->table), "%s", t);
		}
	}
}

static void say_defs(const struct shape *sh)
{
	if (sh->kind == 1) {
		say_coldef("patients", "name", 0xfd, 0);
		say_coldef("patients", "ssn", 0xfd, 0);
	} else if (sh->kind == 2) {
		say_coldef(sh->table, "c", 0xfd, 0);
	} else {
		say_coldef("", "1", 0xfd, 0);
	}
}

/* The shape's one row, in the text or the binary protocol (a cursor's fetch sends it too). */
static void say_row(const struct shape *sh, int binary)
{
	uint8_t b[32];
	size_t o = 0;

	if (binary) {
		b[o++] = 0x00;
		b[o++] = 0x00; /* no NULLs */
	}
	if (sh->kind == 1) {
		o += put_lstr(b + o, "Ada");
		o += put_lstr(b + o, MF_MARKER);
	} else {
		o += put_lstr(b + o, sh->kind == 2 ? "v" : "1");
	}
	say(b, o);
}

static void say_result(const struct shape *sh, int binary, uint16_t status)
{
	uint8_t n = sh->kind == 1 ? 2 : 1;

	say(&n, 1);
	say_defs(sh);
	say_eof_cols();
	say_row(sh, binary);
	say_end(status);
}

/* The one-character literal (x'1d' or ':') after the first `after` in s[0..n), or 0. */
static char literal_after(const char *s, size_t n, const char *after)
{
	const char *p = memmem(s, n, after, strlen(after));
	unsigned v;

	if (!p)
		return 0;
	p += strlen(after);
	while (p < s + n && *p == ' ')
		p++;
	if (s + n - p >= 5 && (*p == 'x' || *p == 'X') && p[1] == '\'' && p[4] == '\'' &&
	    sscanf(p + 2, "%2x", &v) == 1)
		return (char)v;
	if (s + n - p >= 3 && *p == '\'' && p[2] == '\'')
		return p[1];
	return 0;
}

/* The settings query's list of base tables, as the server computes it from the item's own
 * words: CONCAT(COUNT(*), sep, GROUP_CONCAT([HEX(]CONCAT(schema, dot, name)[)] SEPARATOR ..)),
 * over the one base table there is, clinical.patients. */
static void base_tables(const char *item, size_t il, char *v, size_t n)
{
	char sep = literal_after(item, il, "COUNT(*),"),
	     dot = literal_after(item, il, "table_schema),");
	char one[64];

	snprintf(one, sizeof(one), "clinical%cpatients", dot);
	if (memmem(item, il, "HEX(", 4)) {
		size_t o = snprintf(v, n, "1%c", sep);

		for (size_t i = 0; one[i] && o + 3 < n; i++)
			o += snprintf(v + o, n - o, "%02X", (unsigned char)one[i]);
	} else {
		snprintf(v, n, "1%c%s", sep, one);
	}
}

/* The settings query's answer: its select list's items, split at the commas outside
 * parentheses, each answered as the server would (a column of any other kind says "?"). */
static void say_settings(const char *sql, size_t n)
{
	uint8_t row[512], cols = 0;
	size_t o = 0, from = 6, depth = 0; /* after "SELECT" */
	char mode[128];

	for (size_t i = from; i <= n; i++) {
		const char *item;
		size_t il;
		char v[128];

		if (i < n && (sql[i] == '(' || sql[i] == ')'))
			depth += sql[i] == '(' ? 1 : -1;
		if (i < n && (sql[i] != ',' || depth))
			continue;
		item = sql + from;
		il = i - from;
		from = i + 1;
		while (il && *item == ' ')
			item++, il--;
		if (il == 18 && !strncasecmp(item, "@@session.sql_mode", 18))
			snprintf(v, sizeof(v), "%s", mode_string(mode, sizeof(mode)));
		else if (il == 30 && !strncasecmp(item, "@@session.character_set_client", 30))
			snprintf(v, sizeof(v), "utf8mb4");
		else if (il == 10 && !strncasecmp(item, "DATABASE()", 10))
			snprintf(v, sizeof(v), "%s", M.db);
		else if (memmem(item, il, "information_schema.tables", 25))
			base_tables(item, il, v, sizeof(v));
		else
			snprintf(v, sizeof(v), "?");
		REQUIRE(cols < 16 && o + strlen(v) + 1 < sizeof(row));
		if (!strncasecmp(item, "DATABASE()", 10) && !M.db[0])
			row[o++] = 0xfb; /* NULL: no database */
		else
			o += put_lstr(row + o, v);
		cols++;
	}
	say(&cols, 1);
	for (uint8_t i = 0; i < cols; i++)
		say_coldef("", "setting", 0xfd, 0);
	say_eof_cols();
	say(row, o);
	say_end(2);
}

static void greet(void)
{
	const char *v = version();
	uint32_t caps = M.mysql ? SERVER_CAPS | MY_CLIENT_LONG_PASSWORD : SERVER_CAPS;
	uint8_t b[160];
	size_t o = 0;

	if (M.offer_ssl)
		caps |= MY_CLIENT_SSL;
	b[o++] = 10;
	memcpy(b + o, v, strlen(v) + 1), o += strlen(v) + 1;
	b[o++] = CONN_ID, b[o++] = 0, b[o++] = 0, b[o++] = 0;
	memcpy(b + o, "@1roU<k*", 8), o += 8;
	b[o++] = 0;
	b[o++] = (uint8_t)caps, b[o++] = (uint8_t)(caps >> 8);
	b[o++] = 45;
	b[o++] = 2, b[o++] = 0;
	b[o++] = (uint8_t)(caps >> 16), b[o++] = (uint8_t)(caps >> 24);
	b[o++] = 21;
	memset(b + o, 0, 6), o += 6;
	memcpy(b + o, M.mysql ? "\0\0\0\0" : "\x1d\0\0\0", 4), o += 4;
	memcpy(b + o, "+:}.iF`3x)`(", 13), o += 13;
	memcpy(b + o, "mysql_native_password", 22), o += 22;
	M.seq = 0;
	say(b, o);
	M.phase = M_GREETED;
}

/* ---- what reaches the server: judged, on record, as the server reads it ---- */

/* The last n records (since the last command reached the server) are "allow" records of
 * these texts, in order; they are used up. */
static void records_say(const char *what, const char *const *texts, const size_t *lens, int n,
			const char *prepared)
{
	int have = mf_events.nst;

	if (have < n)
		fprintf(stderr,
			"my fuzz: %s reached the server with %d statement records for %d "
			"statements\n",
			what, have, n);
	REQUIRE(have >= n);
	for (int i = 0; i < n; i++) {
		const struct mf_record *r = &mf_events.st[have - n + i];
		size_t l;
		char *want = mf_as_recorded(texts[i], lens[i], &l);

		if (strcmp(r->verdict, "allow") || r->len != l || memcmp(r->text, want, l))
			fprintf(stderr,
				"my fuzz: %s reached the server; statement %d of it: %.*s\n"
				"  but the record says %s: %s\n",
				what, i, (int)l, want, r->verdict, r->text);
		REQUIRE(!strcmp(r->verdict, "allow"));
		REQUIRE(r->len == l && !memcmp(r->text, want, l));
		if (prepared)
			REQUIRE(r->prepared && !strcmp(r->prepared, prepared));
		free(want);
	}
	mf_records_clear();
}

/* Facts of one statement as the server reads it now: nothing hoopd's policy denies. */
static void server_runs(const char *sql, size_t len, struct sqlfacts *f)
{
	memset(f, 0, sizeof(*f));
	mysql_facts(&M.lex, sql, len, f);
	if (f->parse_error || (f->kinds & (1ULL << SK_DELETE)))
		fprintf(stderr,
			"my fuzz: the server runs a statement hoopd cannot have allowed "
			"(%s): %.*s\n",
			f->parse_error ? f->error : "a DELETE", (int)len, sql);
	REQUIRE(!f->parse_error);
	REQUIRE(!(f->kinds & (1ULL << SK_DELETE)));
}

/* `SET [SESSION|LOCAL] sql_mode = '...'` (or @@[session.|local.]sql_mode, :=, DEFAULT):
 * the server's sql_mode changes. 1 when it did, -1 for a mode it refuses, 0 when the
 * statement is no such SET. */
static int set_sql_mode(const char *sql, size_t len)
{
	struct myl_result r;
	size_t k = 0;
	int ret = 0, ansi = 0, nbe = 0, unread = 0;
	char v[256];

	if (myl_lex(&M.lex, sql, len, &r)) {
		myl_free(&r);
		return 0;
	}
	if (r.n < 4 || !myl_is(sql, &r.tok[k++], "set"))
		goto out;
	if (myl_is(sql, &r.tok[k], "session") || myl_is(sql, &r.tok[k], "local"))
		k++;
	if (k >= r.n)
		goto out;
	{
		const struct myl_token *t = &r.tok[k++];
		char name[64];

		if (t->len >= sizeof(name))
			goto out;
		memcpy(name, sql + t->off, t->len);
		name[t->len] = '\0';
		if (!(t->kind == MYL_IDENT && !strcasecmp(name, "sql_mode")) &&
		    !(t->kind == MYL_QIDENT && !strcasecmp(name, "`sql_mode`")) &&
		    !(t->kind == MYL_SYSVAR &&
		      (!strcasecmp(name, "@@sql_mode") || !strcasecmp(name, "@@session.sql_mode") ||
		       !strcasecmp(name, "@@local.sql_mode"))))
			goto out;
	}
	if (k + 2 != r.n || r.tok[k].kind != MYL_OP ||
	    (strcmp(r.tok[k].op, "=") && strcmp(r.tok[k].op, ":=")))
		goto out;
	k++;
	if (myl_is(sql, &r.tok[k], "default")) {
		v[0] = '\0';
		ansi = M.ansi0, nbe = M.nbe0;
	} else if (r.tok[k].kind == MYL_STRING && r.tok[k].len >= 2 && r.tok[k].len < sizeof(v) &&
		   sql[r.tok[k].off] == '\'') {
		char *save = NULL;

		memcpy(v, sql + r.tok[k].off + 1, r.tok[k].len - 2);
		v[r.tok[k].len - 2] = '\0';
		for (char *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (!strcasecmp(t, "ANSI_QUOTES") || !strcasecmp(t, "ANSI"))
				ansi = 1;
			else if (!strcasecmp(t, "NO_BACKSLASH_ESCAPES"))
				nbe = 1;
			else if (!strcasecmp(t, "ORACLE") || !strcasecmp(t, "MSSQL"))
				unread = 1;
			else if (strcasecmp(t, "STRICT_TRANS_TABLES") &&
				 strcasecmp(t, "TRADITIONAL"))
				ret = -1;
		}
	} else {
		goto out;
	}
	if (!ret) {
		M.ansi = ansi, M.nbe = nbe, M.unread = unread;
		relex();
		ret = 1;
	}
out:
	myl_free(&r);
	return ret;
}

/* `USE db`: the current database changes. */
static void use_db(const char *sql, size_t len)
{
	struct myl_result r;

	if (!myl_lex(&M.lex, sql, len, &r) && r.n == 2 && myl_is(sql, &r.tok[0], "use") &&
	    (r.tok[1].kind == MYL_IDENT || r.tok[1].kind == MYL_QIDENT) &&
	    r.tok[1].len < sizeof(M.db)) {
		int q = r.tok[1].kind == MYL_QIDENT;

		memcpy(M.db, sql + r.tok[1].off + q, r.tok[1].len - 2 * q);
		M.db[r.tok[1].len - 2 * q] = '\0';
	}
	myl_free(&r);
}

/*
 * COM_QUERY as the server runs it: a statement at a time, each read under the sql_mode the
 * ones before it left (a SET of sql_mode changes how the rest of the text reads). Before
 * that, the statements as the server reads them now must be the ones on record as allowed.
 */
static void run_query(const uint8_t *p, size_t len)
{
	const char *sql = (const char *)p + 1;
	size_t n = len - 1, pos = 0;
	struct mysql_split *sp = malloc(sizeof(*sp));
	struct sqlfacts *f = malloc(sizeof(*f));
	char why[200];

	REQUIRE(sp && f);
	if (n >= strlen(SETTINGS_PREFIX) &&
	    !memcmp(sql, SETTINGS_PREFIX, strlen(SETTINGS_PREFIX))) {
		/* hoopd's own (or the agent's, judged: its record is used up then) */
		if (mf_events.nst && mf_events.st[mf_events.nst - 1].len == n &&
		    !memcmp(mf_events.st[mf_events.nst - 1].text, sql, n))
			mf_records_clear();
		say_settings(sql, n);
		goto out;
	}
	if (mysql_split(&M.lex, sql, n, sp, why, sizeof(why)) || sp->n > 64)
		fprintf(stderr, "my fuzz: a text hoopd cannot read reached the server (%s): %.*s\n",
			why, (int)n, sql);
	REQUIRE(!mysql_split(&M.lex, sql, n, sp, why, sizeof(why)) && sp->n <= 64);
	if (!sp->n) {
		const char *t = sql;

		records_say("a blank COM_QUERY", &t, &n, 1, NULL);
		say_err(1065, "42000", "Query was empty");
		goto out;
	} else {
		const char *t[64];

		for (int i = 0; i < sp->n; i++)
			t[i] = sql + sp->off[i];
		records_say("COM_QUERY", t, sp->len, sp->n, NULL);
	}
	for (;;) {
		const char *s = sql + pos + sp->off[0];
		size_t l = sp->len[0], end = pos + sp->off[0] + l;
		int more, set;
		struct shape sh;

		server_runs(s, l, f);
		if (l >= 4 && !strncasecmp(s, "kill", 4))
			g_kills_seen++;
		set = set_sql_mode(s, l);
		use_db(s, l);
		/* the rest, read under the sql_mode now */
		while (end < n && sql[end] != ';')
			end++;
		pos = end < n ? end + 1 : n;
		if (mysql_split(&M.lex, sql + pos, n - pos, sp, why, sizeof(why))) {
			more = 1; /* the server's parse error comes as the next result */
			sp->n = 0;
		} else {
			more = sp->n > 0;
		}
		if (set < 0)
			say_err(1231, "42000", "Variable 'sql_mode' can't be set to that value");
		else if (shape_of(f, &sh), sh.kind) {
			say_result(&sh, 0, 2 | (more ? MY_SERVER_MORE_RESULTS : 0));
		} else {
			say_ok(0, 2 | (more ? MY_SERVER_MORE_RESULTS : 0));
		}
		if (set < 0 || !more)
			break;
		if (!sp->n) {
			say_err(1064, "42000", "You have an error in your SQL syntax");
			break;
		}
	}
out:
	free(sp);
	free(f);
}

static struct stmt *stmt_find(uint32_t id)
{
	if (id == 0xffffffffu)
		id = M.last_id;
	for (int i = 0; i < M.nst; i++)
		if (M.st[i].id == id)
			return &M.st[i];
	return NULL;
}

static void stmt_drop(uint32_t id)
{
	struct stmt *t = stmt_find(id);

	if (!t)
		return;
	free(t->text);
	*t = M.st[--M.nst];
}

static void stmts_clear(void)
{
	while (M.nst)
		free(M.st[--M.nst].text);
}

static void prepare(const uint8_t *p, size_t len)
{
	const char *sql = (const char *)p + 1, *t = sql;
	size_t n = len - 1;
	struct mysql_split *sp = malloc(sizeof(*sp));
	struct sqlfacts *f = malloc(sizeof(*f));
	struct myl_result r;
	char why[200];
	uint16_t params = 0;
	uint8_t ok[12] = {0};
	struct stmt *s;

	REQUIRE(sp && f);
	records_say("COM_STMT_PREPARE", &t, &n, 1, "?");
	if (mysql_split(&M.lex, sql, n, sp, why, sizeof(why)) || sp->n != 1 || M.nst == 64) {
		say_err(1064, "42000", "You have an error in your SQL syntax");
		goto out;
	}
	server_runs(sql + sp->off[0], sp->len[0], f);
	if (!myl_lex(&M.lex, sql, n, &r))
		for (size_t i = 0; i < r.n && params < 8; i++)
			params += r.tok[i].kind == MYL_PARAM;
	myl_free(&r);
	s = &M.st[M.nst++];
	s->id = ++M.next_id;
	s->text = strndup(sql, n);
	REQUIRE(s->text != NULL);
	shape_of(f, &s->shape);
	s->params = params;
	s->cursor_left = -1;
	M.last_id = s->id;
	ok[1] = (uint8_t)s->id;
	ok[2] = (uint8_t)(s->id >> 8);
	ok[5] = s->shape.kind == 1 ? 2 : s->shape.kind ? 1 : 0;
	ok[7] = (uint8_t)params;
	say(ok, sizeof(ok));
	for (int i = 0; i < params; i++)
		say_coldef("", "?", 0xfd, 0);
	if (params)
		say_eof_cols();
	if (s->shape.kind) {
		say_defs(&s->shape);
		say_eof_cols();
	}
out:
	free(sp);
	free(f);
}

static void execute(const uint8_t *p, size_t len)
{
	struct stmt *s;
	char name[16];
	struct sqlfacts *f = malloc(sizeof(*f));

	REQUIRE(f && len >= 10); /* hoopd refuses shorter ones */
	s = stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24);
	if (!s)
		fprintf(stderr,
			"my fuzz: COM_STMT_EXECUTE of a statement the server does not know\n");
	REQUIRE(s != NULL); /* hoopd refuses those itself */
	snprintf(name, sizeof(name), "%u", s->id);
	{
		const char *t = s->text;
		size_t n = strlen(s->text);

		records_say("COM_STMT_EXECUTE", &t, &n, 1, name);
	}
	server_runs(s->text, strlen(s->text), f);
	free(f);
	/* hoopd forwards no cursor type but READ_ONLY, nor another flag */
	REQUIRE(!(p[5] & ~1u));
	s->cursor_left = -1; /* an execution closes the cursor */
	if (s->shape.kind && (p[5] & 1)) {
		/* MariaDB 10.11: a cursor, its rows materialized; definitions, then the EOF (or
		 * the OK in place of rows) with SERVER_STATUS_CURSOR_EXISTS */
		uint8_t nc = s->shape.kind == 1 ? 2 : 1;

		say(&nc, 1);
		say_defs(&s->shape);
		say_end(0x42);
		s->cursor_left = 3;
	} else if (s->shape.kind) {
		say_result(&s->shape, 1, 2);
	} else {
		say_ok(1, 2);
	}
}

/* COM_STMT_FETCH: hoopd forwards it only for a cursor the server has open. Rows up to the
 * number asked; reaching the end sends LAST_ROW_SENT and closes the cursor (exactly the rows
 * left keep it open: the next fetch finds the end), as MariaDB's Materialized_cursor. */
static void fetch(const uint8_t *p, size_t len)
{
	struct stmt *s;
	uint32_t want;

	REQUIRE(len == 9); /* hoopd refuses other lengths */
	s = stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24);
	if (!s || s->cursor_left < 0)
		fprintf(stderr, "my fuzz: COM_STMT_FETCH of a statement with no open cursor\n");
	REQUIRE(s && s->cursor_left >= 0);
	want = p[5] | p[6] << 8 | p[7] << 16 | (uint32_t)p[8] << 24;
	for (uint32_t i = 0; i < want; i++) {
		if (!s->cursor_left) {
			s->cursor_left = -1;
			say_end(0x82);
			return;
		}
		say_row(&s->shape, 1);
		s->cursor_left--;
	}
	say_end(0x42);
}

/* "USE `db`", "SHOW COLUMNS FROM `t`": the text hoopd judges a command by (mysql.c judge_as) */
static void quoted(char *out, size_t cap, const char *prefix, const uint8_t *s, size_t n)
{
	size_t o = strlen(prefix);

	REQUIRE(o + 2 * n + 3 <= cap);
	memcpy(out, prefix, o);
	out[o++] = '`';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '`')
			out[o++] = '`';
		out[o++] = (char)s[i];
	}
	out[o++] = '`';
	out[o] = '\0';
}

static void command(const uint8_t *p, size_t len, uint8_t seq)
{
	char text[2200];
	const char *t = text;
	size_t tl;

	REQUIRE(seq == 0 && len > 0);
	M.seq = 1;
	switch (p[0]) {
	case MY_COM_QUERY:
		run_query(p, len);
		return;
	case MY_COM_STMT_PREPARE:
		prepare(p, len);
		return;
	case MY_COM_STMT_EXECUTE:
		execute(p, len);
		return;
	case MY_COM_STMT_FETCH:
		fetch(p, len);
		return;
	case MY_COM_INIT_DB:
		quoted(text, sizeof(text), "USE ", p + 1, len - 1);
		tl = strlen(text);
		records_say("COM_INIT_DB", &t, &tl, 1, NULL);
		snprintf(M.db, sizeof(M.db), "%.*s", (int)(len - 1), (const char *)p + 1);
		say_ok(0, 2);
		return;
	case MY_COM_FIELD_LIST:
		quoted(text, sizeof(text), "SHOW COLUMNS FROM ", p + 1,
		       strnlen((const char *)p + 1, len - 1));
		tl = strlen(text);
		records_say("COM_FIELD_LIST", &t, &tl, 1, NULL);
		say_coldef("patients", "ssn", 0xfd, 1);
		say_end(2);
		return;
	case MY_COM_PROCESS_KILL:
		REQUIRE(len == 5);
		g_kills_seen++;
		snprintf(text, sizeof(text), "KILL %u",
			 p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24);
		tl = strlen(text);
		records_say("COM_PROCESS_KILL", &t, &tl, 1, NULL);
		say_err(1094, "HY000", "Unknown thread id");
		return;
	case MY_COM_STMT_RESET:
		if (len == 5 && stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24))
			stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24)
			    ->cursor_left = -1;
		say_ok(0, 2);
		return;
	case MY_COM_PING:
		say_ok(0, 2);
		return;
	case MY_COM_RESET_CONNECTION:
		stmts_clear();
		M.ansi = M.ansi0, M.nbe = M.nbe0, M.unread = 0;
		relex();
		say_ok(0, 2);
		return;
	case MY_COM_STATISTICS:
		say("Uptime: 7  Threads: 1  Questions: 3", 35);
		return;
	case MY_COM_SET_OPTION: {
		uint8_t b[5] = {0xfe, 0, 0, 2, 0};

		REQUIRE(len == 3);
		say(b, sizeof(b));
		return;
	}
	case MY_COM_STMT_CLOSE:
		REQUIRE(len == 5);
		stmt_drop(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24);
		return;
	case MY_COM_STMT_SEND_LONG_DATA:
		if (len < 7 || !stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24))
			fprintf(stderr, "my fuzz: COM_STMT_SEND_LONG_DATA of no known statement\n");
		REQUIRE(len >= 7);
		REQUIRE(stmt_find(p[1] | p[2] << 8 | p[3] << 16 | (uint32_t)p[4] << 24));
		return;
	case MY_COM_CHANGE_USER:
		/* a new login (mysql.c change_user): not a statement; the server drops the
		 * session's prepared statements and settings whatever it answers, and refuses a
		 * user whose name begins with 'x' */
		mf_records_clear();
		stmts_clear();
		M.ansi = M.ansi0, M.nbe = M.nbe0, M.unread = 0;
		relex();
		if (len > 1 && p[1] == 'x')
			say_err(1045, "28000", "Access denied for user");
		else
			say_ok(0, 2);
		return;
	case MY_COM_QUIT:
		M.phase = M_GONE;
		M.quit = 1;
		return;
	default:
		fprintf(stderr, "my fuzz: command 0x%02x reached the server\n", p[0]);
		REQUIRE(!"a command hoopd forwards");
	}
}

/* The server reads sequence ids: a packet out of order ends the connection. hoopd relays the
 * agent's authentication packets as they are numbered. */
static int out_of_order(uint8_t seq, uint8_t want)
{
	if (seq == want)
		return 0;
	M.seq = (uint8_t)(seq + 1);
	say_err(1156, "08S01", "Got packets out of order");
	M.phase = M_GONE;
	return 1;
}

/* The login as hoopd forwards it: capabilities hoopd follows, SSL only when its leg is TLS. */
static void login(const uint8_t *p, size_t len, uint8_t seq)
{
	uint32_t caps, allowed = MY_CAPS_ALLOWED | (M.tls_up ? MY_CLIENT_SSL : 0);

	REQUIRE(len >= 32);
	if (out_of_order(seq, M.tls_up ? 2 : 1))
		return;
	caps = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
	if (caps & ~allowed)
		fprintf(stderr, "my fuzz: the login asks for capabilities 0x%x\n", caps & ~allowed);
	REQUIRE(!(caps & ~allowed));
	REQUIRE(!p[28] && !p[29] && !p[30] && !p[31]); /* no MariaDB extended capabilities */
	M.caps = caps;
	M.deprecate_eof = (caps & MY_CLIENT_DEPRECATE_EOF) != 0;
	{
		/* user, auth data, database */
		size_t off = 32 + strnlen((const char *)p + 32, len - 32) + 1;

		if (off < len && (caps & MY_CLIENT_PLUGIN_AUTH_LENENC))
			off += 1 + (p[off] < 0xfb ? p[off] : 0);
		else if (off < len && (caps & MY_CLIENT_SECURE_CONNECTION))
			off += 1 + p[off];
		else if (off < len)
			off += strnlen((const char *)p + off, len - off) + 1;
		if ((caps & MY_CLIENT_CONNECT_WITH_DB) && off < len)
			snprintf(M.db, sizeof(M.db), "%.*s",
				 (int)strnlen((const char *)p + off, len - off),
				 (const char *)p + off);
	}
	M.seq = (uint8_t)(seq + 1);
	if (M.auth_switch) {
		static const char sw[] = "\xfemysql_native_password\0"
					 "0123456789abcdefghij";

		say(sw, sizeof(sw));
		M.phase = M_SWITCHED;
		return;
	}
	say_ok(0, 2);
	M.phase = M_READY;
}

static void server_packet(void *arg, const uint8_t *p, size_t len, uint8_t seq)
{
	mf_dump("to the server", p, len, seq);
	switch (M.phase) {
	case M_GREETED:
		login(p, len, seq);
		return;
	case M_SWITCHED:
		if (out_of_order(seq, M.seq)) /* the agent's answer to the switch, renumbered */
			return;
		M.seq++;
		say_ok(0, 2);
		M.phase = M_READY;
		return;
	case M_READY:
		command(p, len, seq);
		return;
	case M_GONE:
		/* the server closed the connection (hoopd ends the session on its ERR) */
		REQUIRE(!M.quit); /* nothing reaches the server after COM_QUIT */
		return;
	}
}

/* ---- driving ---- */

static void server_out(void)
{
	mf_packets(&A.s.s.out, server_packet, NULL);
}

/* The server's answers so far reach hoopd: all, none yet, or a few bytes of them. */
static void from_server(uint8_t d)
{
	size_t n = M.pending.len;

	if (d >= 128 && d < 192)
		return;
	if (d >= 192 && n > (size_t)(d & 63) + 1)
		n = (size_t)(d & 63) + 1;
	if (!n || A.s.closing || A.s.s.handshaking)
		return;
	REQUIRE(buf_append(&A.s.s.in, buf_head(&M.pending), n) == 0);
	buf_consume(&M.pending, n);
	mysql_engine.server_data(A.e, &A.s.s.in);
}

/* What the relay does after the engine asked it for a TLS handshake. */
static void relay_follow_up(uint8_t d)
{
	if (mf.agent_tls_started) {
		int ok = d != 0xee;

		mf.agent_tls_started = 0;
		A.s.a.handshaking = 0;
		if (ok)
			A.s.a.ssl = mf_fake_ssl;
		mysql_engine.tls_done(A.e, 1, ok);
	}
	if (mf.server_tls_started) {
		uint8_t req[64];
		size_t n = mf_server_socket_drain(req, sizeof(req));
		int ok = d != 0xef;

		/* hoopd's SSLRequest on the socket itself: 32 bytes numbered 1, asking for SSL */
		if (mf_trace)
			mf_dump("to the server socket", req, n < sizeof(req) ? n : sizeof(req), 0);
		REQUIRE(M.offer_ssl);
		REQUIRE(M.phase == M_GREETED);
		REQUIRE(n == 36);
		REQUIRE(req[0] == 32 && !req[1] && !req[2] && req[3] == 1);
		REQUIRE(req[5] & (MY_CLIENT_SSL >> 8));
		mf.server_tls_started = 0;
		A.s.s.handshaking = 0;
		if (ok) {
			A.s.s.ssl = mf_fake_ssl;
			M.tls_up = 1;
		}
		mysql_engine.tls_done(A.e, 0, ok);
	}
}

/*
 * A second connection of the same database user from the same agent logs in and sends
 * KILL QUERY (COM_QUERY or COM_PROCESS_KILL) for the held session's connection id: hoopd
 * answers it itself, and the held statement fails; the server never sees the KILL.
 */
static void kill_from_elsewhere(uint8_t d)
{
	__typeof__(M) a_model = M;
	struct mf_sess b;
	uint8_t login[200], seq = 1;
	size_t o = 0, ul = strlen(A.s.user);
	uint32_t caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH;
	int was_held = A.s.held;

	memset(&M, 0, sizeof(M));
	M.mysql = a_model.mysql;
	M.ansi = M.ansi0 = a_model.ansi0;
	M.nbe = M.nbe0 = a_model.nbe0;
	relex();
	mf_open(&b, "skill");
	greet();
	memcpy(login, &caps, 4), o += 4;
	memset(login + o, 0, 28), o += 28;
	memcpy(login + o, A.s.user, ul + 1), o += ul + 1;
	login[o++] = 20;
	memset(login + o, 'k', 20), o += 20;
	memcpy(login + o, "mysql_native_password", 22), o += 22;
	REQUIRE(my_put_packet(&b.s.a.in, login, o, &seq) == 0);
	for (int i = 0; i < 8 && !b.s.closing; i++) {
		if (M.pending.len) {
			REQUIRE(buf_append(&b.s.s.in, buf_head(&M.pending), M.pending.len) == 0);
			buf_consume(&M.pending, M.pending.len);
			mysql_engine.server_data(b.e, &b.s.s.in);
		}
		if (b.s.a.in.len && !b.s.closing)
			mysql_engine.agent_data(b.e, &b.s.a.in);
		mf_packets(&b.s.s.out, server_packet, NULL);
		mf_packets(&b.s.a.out, NULL, NULL);
		if (i == 3 && M.phase == M_READY) {
			uint8_t k[5] = {MY_COM_PROCESS_KILL, CONN_ID, 0, 0, 0};
			static const char q[] = "\x03KILL QUERY 7";

			seq = 0;
			if (d & 1)
				REQUIRE(my_put_packet(&b.s.a.in, k, sizeof(k), &seq) == 0);
			else
				REQUIRE(my_put_packet(&b.s.a.in, q, sizeof(q) - 1, &seq) == 0);
			g_kills_seen = 0;
		}
	}
	if (was_held && M.phase == M_READY && !b.s.closing && !A.s.closing) {
		/* answered by hoopd: the held statement failed, the server never heard of it */
		REQUIRE(!A.s.held);
		REQUIRE(!g_kills_seen);
	}
	mf_close(&b);
	buf_free(&M.pending);
	stmts_clear();
	M = a_model;
	mf_records_clear(); /* the second session's */
}

static void decide_hold(uint8_t d, int may_wait)
{
	int r = 0;

	if (d < 64 && may_wait)
		return;
	if (d >= 240) {
		kill_from_elsewhere(d);
		if (A.s.held) /* it did not log in: the hold ends another way */
			r = mysql_engine.cancel_held(A.s.est);
		REQUIRE(r == 0 || A.s.closing);
		REQUIRE(!A.s.held);
		return;
	}
	if (d < 128)
		r = mysql_engine.resume_held(A.s.est, VERDICT_ALLOW, NULL);
	else if (d < 160)
		r = mysql_engine.resume_held(A.s.est, VERDICT_DENY, NULL);
	else if (d < 176)
		r = mysql_engine.resume_held(A.s.est, VERDICT_DENY, "an approver said no \xff\xfe");
	else if (d < 208)
		r = mysql_engine.fail_held(A.s.est, "57P01",
					   "terminating connection due to shutdown");
	else
		r = mysql_engine.cancel_held(A.s.est);
	REQUIRE(r == 0 || A.s.closing);
	REQUIRE(!A.s.held);
}

static void to_agent(void)
{
	mf_client_read(&C, &A.s.a.out, A.s.closing);
}

/* Once the server has said all it has to, hoopd waits for no answer, and the client has
 * every answer in full. */
static void check_quiet(void)
{
	const struct my *m = A.e;

	if (A.s.closing || A.s.held || M.phase != M_READY || M.pending.len || A.s.s.in.len ||
	    A.s.s.out.len || C.phase != MC_READY)
		return;
	if (m->resp != MR_NONE || !mf_client_idle(&C))
		fprintf(stderr, "my fuzz: the server said all; hoopd %s, the client %s\n",
			m->resp != MR_NONE ? "waits for more" : "does not",
			mf_client_idle(&C) ? "has every answer" : "waits for more");
	REQUIRE(m->resp == MR_NONE);
	REQUIRE(mf_client_idle(&C));
}

static void exchange(uint8_t db_d, uint8_t hold_d, int may_wait)
{
	if (A.s.a.in.len && !A.s.held && !A.s.closing) {
		mf_agent_mark(&T, &A.s.a.in);
		mysql_engine.agent_data(A.e, &A.s.a.in);
		mf_agent_taken(&T, &A.s.a.in, &C, A.s.closing);
	}
	relay_follow_up(db_d);
	server_out();
	if (A.s.held && !A.s.closing) {
		decide_hold(hold_d, may_wait);
		server_out();
	}
	from_server(db_d);
	server_out();
	to_agent();
	check_quiet();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	mf_init();
	verdict_hook = agent_verdict;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_in in = {data, size};
	uint8_t cfg = mf_pick(&in), cfg2 = mf_pick(&in);

	if (mf_trace)
		fprintf(stderr, "input of %zu bytes, settings 0x%02x 0x%02x\n", size, cfg, cfg2);

	memset(&mf, 0, sizeof(mf));
	memset(&mf_events, 0, sizeof(mf_events));
	memset(&M, 0, sizeof(M));
	M.mysql = cfg & 1;
	M.ansi = M.ansi0 = !!(cfg & 2);
	M.nbe = M.nbe0 = !!(cfg & 4);
	M.auth_switch = !!(cfg & 8);
	M.masking = !!(cfg & 0x10);
	mf.agent_tls = !!(cfg & 0x20);
	switch (cfg >> 6) {
	case 1:
		mf.upstream = UPSTREAM_TLS_PREFER;
		M.offer_ssl = 1;
		break;
	case 2:
		mf.upstream = UPSTREAM_TLS_REQUIRE;
		M.offer_ssl = !!(cfg2 & 0x80);
		break;
	case 3:
		mf.upstream = UPSTREAM_TLS_PREFER;
		break;
	default:
		mf.upstream = UPSTREAM_TLS_DISABLE;
	}
	mf.agent_tls_result = cfg2 & 1 ? -1 : 0;
	mf.server_tls_result = cfg2 & 2 ? -1 : 0;
	mf.hold_open_result = cfg2 & 4 ? -EIO : 0;
	relex();
	mf_masking(M.masking);
	mf_client_init(&C, 1, 1, M.masking);
	mf_open(&A, "sagent");

	greet();
	from_server(0);
	to_agent();
	while (in.n && !A.s.closing && M.phase != M_GONE) {
		const uint8_t *chunk;
		size_t n = mf_chunk(&in);
		uint8_t db_d = mf_pick(&in), hold_d = mf_pick(&in);

		mf.audit_fail = mf_pick(&in) >= 0xf0;
		n = mf_take(&in, n, &chunk);
		if (!n)
			break; /* the decisions took the last bytes */
		REQUIRE(buf_append(&A.s.a.in, chunk, n) == 0);
		exchange(db_d, hold_d, 1);
	}
	/* The input is used up: end any hold, let the server say everything, until quiet. */
	mf.audit_fail = 0;
	for (int i = 0; i < 256 && !A.s.closing; i++) {
		size_t before = A.s.a.in.len, said = M.pending.len;

		exchange(0, 64, 0);
		if (!A.s.held && !said && !M.pending.len && A.s.a.in.len == before)
			break;
	}
	to_agent();
	/* Every command hoopd took got its whole answer. */
	if (!A.s.closing && M.phase != M_GONE && !mf_client_idle(&C))
		fprintf(stderr, "my fuzz: %u answers missing at the end\n", C.qn);
	REQUIRE(A.s.closing || M.phase == M_GONE || mf_client_idle(&C));
	mf_close(&A);
	mf_client_free(&C);
	buf_free(&M.pending);
	stmts_clear();
	mf_records_clear();
	free(mf_events.st);
	mf_events.st = NULL;
	mf_events.capst = 0;
	/* The model's answers are well-formed: hoopd has nothing to blame the server for (but
	 * a TLS handshake the relay could not start). */
	REQUIRE(mf_events.protocol_error_database == 0 || mf.server_tls_refused);
	return 0;
}
