/*
 * Masking of MySQL/MariaDB result rows (issue 17, docs/mysql.md "Masking").
 *
 * The server's column metadata (org_table, org_name) is not provenance: MariaDB reports a
 * view's column as the view's own (`v`.`alias`), a derived table's or CTE's by its alias, a
 * TEMPTABLE view's by the base table and the view's alias, and a derived table may be aliased
 * with the name of a real table. So a column is taken as a table's column itself only when the
 * statement cannot have renamed it:
 *   - the text is one plain SELECT (one SELECT keyword: no subquery, derived table, CTE,
 *     UNION, VALUES, TABLE, JSON_TABLE, user variable) reading exactly one table T;
 *   - the column's org_table is T, its schema is given, and T is a base table of that schema
 *     in the list hoopd read from information_schema at login (a view, or a table made
 *     since, is not in it);
 * and then the policy's rule for schema.T.org_name applies. A statement that reads no table,
 * calls no function and names no user variable returns nothing derived from user data (its
 * columns are clean, the detectors still read them). Every other column is of unknown
 * provenance: masked by the policy's unknown_style. Text and binary rows go through the row
 * codecs (myrow.h); a value that cannot be masked validly in its type withholds the rest of
 * the result (an ERR in place of the rows, the session goes on once the server's answer is
 * read to its end). Server error messages have their quoted parts replaced while masking is
 * on (a value can ride in "Truncated incorrect INTEGER value: '...'").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mysql_int.h"
#include "mask_live.h"
#include "myrow.h"
#include "mysqllex.h"
#include "record.h"

struct my_mask {
	struct masking *mg;
	/* the statement is one plain SELECT whose every table is a base table: a column's
	 * org_table among them names where its value comes from */
	int trust;
	char tables[SQLFACTS_MAX_NAMES][65]; /* ...those tables (name part, lower case) */
	char schemas[SQLFACTS_MAX_NAMES][130];
	int ntables;
	int clean; /* reads nothing derived from user data */
	/* trusted, and no name in the text is a masked (or free-text) column of its tables: a
	 * computed column cannot derive from a masked value */
	int names_clean;
	struct mycol *cols;
	struct col_desc *cd;
	uint64_t ncols;
	struct mask_result mr;
	struct myrow_cols rc; /* the codecs read the columns' types from here */
	int planned;
	int withheld; /* this result's rows are dropped from here on */
	struct buf out;
};

/*
 * Built-in functions that compute from their arguments and the session alone (no table, no
 * stored routine): a statement that reads no table and calls only these returns nothing
 * derived from user data. A stored function cannot take one of these names unqualified (the
 * built-in wins), and any other name may be one that reads tables.
 */
static const char *const builtins[] = {
    "abs", "ascii", "avg", "benchmark", "bin", "bit_length", "ceil", "ceiling", "char",
    "char_length", "character_length", "charset", "coalesce", "collation", "concat",
    "concat_ws", "connection_id", "conv", "convert", "cos", "count", "curdate",
    "current_date", "current_role", "current_time", "current_timestamp", "current_user",
    "curtime", "database", "date", "date_add", "date_format", "date_sub", "datediff", "day",
    "dayname", "dayofmonth", "dayofweek", "dayofyear", "degrees", "elt", "exp", "field",
    "find_in_set", "floor", "format", "found_rows", "from_days", "from_unixtime", "greatest",
    "hex", "hour", "if", "ifnull", "inet_aton", "inet_ntoa", "insert", "instr", "isnull",
    "last_day", "lcase", "least", "left", "length", "ln", "localtime",
    "localtimestamp", "locate", "log", "log10", "log2", "lower", "lpad", "ltrim", "makedate",
    "maketime", "max", "md5", "microsecond", "mid", "min", "minute", "mod", "month",
    "monthname", "now", "nullif", "oct", "ord", "pi", "position", "pow", "power", "quarter",
    "quote", "radians", "rand", "repeat", "replace", "reverse", "right", "round",
    "row_count", "rpad", "rtrim", "schema", "sec_to_time", "second", "session_user", "sha",
    "sha1", "sha2", "sign", "sin", "space", "sqrt", "str_to_date", "strcmp", "subdate",
    "substr", "substring", "substring_index", "sum", "sysdate", "system_user", "tan", "time",
    "time_format", "time_to_sec", "timediff", "timestamp", "timestampadd", "timestampdiff",
    "to_days", "trim", "truncate", "ucase", "unhex", "unix_timestamp", "upper", "user",
    "utc_date", "utc_time", "utc_timestamp", "uuid", "uuid_short", "version", "week",
    "weekday", "weekofyear", "year", "yearweek", "cast", "sleep", "octet_length", "crc32",
    "to_base64", "from_base64", "json_object", "json_array", "json_extract", "json_unquote",
    "json_value", "json_length", "json_valid", "json_type", "json_quote", "regexp_replace",
    "regexp_substr", "regexp_instr", "nvl", "nvl2", "decode_histogram", "inet6_aton",
    "inet6_ntoa", "is_ipv4", "is_ipv6", "last_value",
    /* CAST and CONVERT target types, which the classifier lists with the functions */
    "decimal", "signed", "unsigned", "datetime", "binary", "double", "float", "integer", "int",
    "nchar", "json", NULL};

static int builtin(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot)
		return 0; /* db.f: a stored function */
	for (int i = 0; builtins[i]; i++)
		if (!strcmp(name, builtins[i]))
			return 1;
	return 0;
}

static int base_table(const struct my *m, const char *schema, const char *table);

/* Words of the text as the server lexes it: selects counts SELECT keywords; 0 when a word
 * that brings rows in under another name, or a user variable, is there (or it cannot be
 * lexed). *warn: SHOW WARNINGS / ERRORS (they quote values of the last statement). */
static int plain_select(const struct myl_settings *ls, const char *sql, size_t len, int *warn)
{
	static const char *const other[] = {"union", "with", "values", "table", "json_table",
					     "except", "intersect", "into", NULL};
	struct myl_result r = {0};
	int selects = 0, ok = 1;

	*warn = 0;
	if (myl_lex(ls, sql, len, &r)) {
		myl_free(&r);
		return 0;
	}
	for (size_t i = 0; i < r.n && ok; i++) {
		const struct myl_token *t = &r.tok[i];

		if (t->kind == MYL_VAR)
			ok = 0;
		if (t->kind != MYL_IDENT)
			continue;
		if (myl_is(sql, t, "select"))
			selects++;
		if (myl_is(sql, t, "warnings") || myl_is(sql, t, "errors"))
			*warn = 1;
		for (int w = 0; other[w]; w++)
			if (myl_is(sql, t, other[w]))
				ok = 0;
	}
	myl_free(&r);
	return ok ? selects : -1;
}

/* Does any name in the text (unquoted or in backticks) name a column a masking rule covers in
 * one of the tables (schemas[i].tables[i])? 1 also when the text cannot be lexed. */
static int names_masked(const struct my *m, const struct mask_policy *mp, const char *sql,
			size_t len, char (*schemas)[130], char (*tables)[65], int nt)
{
	struct myl_result r = {0};
	int hit = 0;

	if (myl_lex(&m->lex, sql, len, &r)) {
		myl_free(&r);
		return 1;
	}
	for (size_t i = 0; i < r.n && !hit; i++) {
		const struct myl_token *t = &r.tok[i];
		char name[130];
		size_t o = 0;

		if (t->kind != MYL_IDENT && t->kind != MYL_QIDENT)
			continue;
		for (uint32_t k = 0; k < t->len && o < sizeof(name) - 1; k++) {
			char c = sql[t->off + k];

			if (t->kind == MYL_QIDENT && (k == 0 || k == t->len - 1))
				continue; /* the quotes (a doubled one inside stays: no rule names it) */
			name[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		name[o] = '\0';
		for (int k = 0; k < nt && !hit; k++)
			hit = mask_rule_match(mp, schemas[k], tables[k], name) != MASK_RULE_NONE;
	}
	myl_free(&r);
	return hit;
}

void my_mask_begin(struct my *m, const char *sql, size_t len, const struct sqlfacts *f, int n)
{
	struct my_mask *k;

	my_mask_end(m);
	if (m->internal || !masking_enabled())
		return;
	if (!(k = calloc(1, sizeof(*k))))
		return; /* my_mask_row withholds without it */
	k->mg = masking_get();
	if (f && n == 1 && !f->parse_error) {
		int warn, sel = plain_select(&m->lex, sql, len, &warn), fns = 1;

		for (int i = 0; i < f->nfunctions; i++)
			fns &= builtin(f->functions[i]);
		/* clean: nothing read from a table, only built-in functions, no user variable
		 * (what an earlier statement put there), not SHOW WARNINGS */
		k->clean = f->nread == 0 && fns && !f->too_many && sel >= 0 && !warn &&
			   !(f->kinds & ~(1ULL << SK_SELECT | 1ULL << SK_SHOW | 1ULL << SK_SET));
		k->trust = f->kinds == 1ULL << SK_SELECT && f->nread >= 1 && !f->too_many &&
			   sel == 1 && m->ncat;
		for (int i = 0; k->trust && i < f->nread; i++) {
			const char *dot = strrchr(f->read[i], '.');
			char schema[130];

			/* every table is a base table: a view's columns are named by the view */
			if (dot)
				snprintf(schema, sizeof(schema), "%.*s", (int)(dot - f->read[i]),
					 f->read[i]);
			else
				snprintf(schema, sizeof(schema), "%s", m->curdb);
			snprintf(k->tables[i], sizeof(k->tables[i]), "%s", dot ? dot + 1 : f->read[i]);
			k->ntables = i + 1;
			snprintf(k->schemas[i], sizeof(k->schemas[i]), "%s", schema);
			if (!schema[0] || !base_table(m, schema, k->tables[i]))
				k->trust = 0;
		}
		k->names_clean = k->trust && k->mg && fns &&
				 !names_masked(m, &k->mg->mp, sql, len, k->schemas, k->tables,
					       k->ntables);
	}
	m->mk = k;
}

int my_mask_coldef(struct my *m, const uint8_t *p, size_t len, uint64_t i)
{
	struct my_mask *k = m->mk;

	if (!k)
		return masking_enabled() && !m->internal
			       ? my_violation(m, "database", "no memory to mask a result")
			       : 0;
	if (i == 0) {
		free(k->cols);
		free(k->cd);
		mask_result_free(&k->mr);
		k->planned = 0; /* withheld stays: the command's answer is cut off */
		k->ncols = m->ncols;
		k->cols = calloc(m->ncols, sizeof(*k->cols));
		k->cd = calloc(m->ncols, sizeof(*k->cd));
		if (!k->cols || !k->cd)
			return -1;
	}
	if (i >= k->ncols || mycol_parse(p, len, &k->cols[i]))
		return my_violation(m, "database", "malformed column definition");
	return 0;
}

/* s folded to lower case (ASCII) into out. */
static void fold(char *out, const char *s, size_t n)
{
	size_t i = 0;

	for (; s[i] && i < n - 1; i++)
		out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
	out[i] = '\0';
}

/* Is schema.table a base table of the list read at login? */
static int base_table(const struct my *m, const char *schema, const char *table)
{
	if (my_made(m, table))
		return 0; /* this session made or changed a table of that name: not trusted */
	char key[300];

	snprintf(key, sizeof(key), "%s\x1f%s", schema, table);
	for (char *q = key; *q; q++)
		*q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
	return my_catalog_has(m, key);
}

int my_mask_plan(struct my *m)
{
	struct my_mask *k = m->mk;
	struct maskplan sp = {0};
	struct row_codec codec;
	int r;

	if (!k)
		return 0;
	if (!k->mg)
		return 0; /* masking was turned off since: nothing to mask */
	sp.ncols = (int)k->ncols;
	sp.returns_rows = 1;
	if (!(sp.cols = calloc(k->ncols, sizeof(*sp.cols))))
		return -1;
	for (uint64_t i = 0; i < k->ncols; i++) {
		const struct mycol *c = &k->cols[i];
		struct col_desc *d = &k->cd[i];
		int direct = k->trust && c->org_name[0] && c->schema[0] &&
			     base_table(m, c->schema, c->org_table);

		for (int t = 0; direct && t < k->ntables; t++)
			if (!strcasecmp(c->org_table, k->tables[t]))
				break;
			else if (t == k->ntables - 1)
				direct = 0;

		d->name = c->name;
		d->schema = c->schema;
		/* what the server said the column is (the records'); masking goes by sp below */
		d->table = c->org_table[0] ? c->org_table : NULL;
		d->column = c->org_name[0] ? c->org_name : NULL;
		d->engine = COL_ENGINE_MYSQL;
		d->type = c->type;
		d->type_mod = c->decimals;
		d->length = (int32_t)c->length;
		d->charset = c->charset;
		d->flags = c->flags;
		d->format = 0; /* the codecs present every cell as its text */
		if (direct) {
			/* names as the rules write them: MySQL's column names are not case
			 * sensitive, and the server reports them as declared (SSN) */
			char sc[MYCOL_NAME], tb[MYCOL_NAME], co[MYCOL_NAME];

			fold(sc, c->schema, sizeof(sc));
			fold(tb, c->org_table, sizeof(tb));
			fold(co, c->org_name, sizeof(co));
			sp.cols[i].rule = mask_rule_match(&k->mg->mp, sc, tb, co);
			snprintf(sp.cols[i].source, sizeof(sp.cols[i].source), "%s.%s", tb, co);
		} else {
			sp.cols[i].rule = k->clean || k->names_clean ? MASK_RULE_NONE
								     : MASK_RULE_UNKNOWN;
		}
	}
	k->rc.ncols = (int)k->ncols;
	k->rc.cols = k->cols;
	if (m->binary)
		myrow_bin_codec(&codec, &k->rc);
	else
		myrow_text_codec(&codec, &k->rc);
	r = masking_plan_rows(&k->mr, k->mg, NULL, &sp, k->cd, (int)k->ncols, &codec);
	free(sp.cols);
	if (r)
		return -1;
	for (uint64_t i = 0; i < k->ncols; i++)
		k->mr.cols[i].type_oid = mycol_pg_type(&k->cols[i]);
	k->planned = 1;
	if (!m->internal && m->first_seq)
		ev_columns(sess_agent(m->s), m->first_seq + (uint64_t)(m->cur < m->nseq ? m->cur : 0),
			   k->cd, (int)k->ncols);
	return 0;
}

int my_mask_row(struct my *m, const uint8_t *p, size_t len)
{
	struct my_mask *k = m->mk;
	int r;

	if (!k) {
		if (masking_enabled() && !m->internal)
			return my_violation(m, "database", "no memory to mask a result");
		return my_forward(m, p, len);
	}
	if (!k->mg)
		return my_forward(m, p, len);
	if (k->withheld)
		return 0;
	if (!k->planned)
		return my_violation(m, "database", "a row before its columns");
	k->out.len = 0;
	r = masking_rows(&k->mr, k->mg, p, len, &k->out);
	if (r < 0)
		return my_violation(m, "database", "a row hoopd cannot read");
	if (r == 1) {
		char msg[400];

		/* what cannot be masked is not sent: an ERR ends the result for the agent */
		snprintf(msg, sizeof(msg),
			 "hoop: a value in this result cannot be masked validly (%s); the rest of "
			 "the result is withheld",
			 k->mr.counts.why[0] ? k->mr.counts.why : "unmaskable value");
		k->withheld = 1;
		return my_put_err(&m->s->a.out, m->out_seq++, MY_ER_UNKNOWN_ERROR, "HY000", msg);
	}
	return my_forward(m, buf_head(&k->out), k->out.len);
}

/*
 * An ERR from the server while masking is on: its message up to the first quote (the server's
 * own words: "Duplicate entry ", "Truncated incorrect INTEGER value: ") and no further, since
 * MySQL quotes values in its messages and an agent can put a quote inside a value to end a
 * redacted part early; a message with a run of digits before that (an unquoted number) is
 * withheld whole. Code and SQLSTATE are kept.
 */
int my_mask_err(struct my *m, const uint8_t *p, size_t len)
{
	static const char tail[] = " ... (hoop: the rest of the server's message is withheld while "
				   "masking is on)";
	uint8_t b[9 + 256 + sizeof(tail)];
	size_t n = 9, digits = 0, maxdigits = 0;

	if (my_mask_withheld(m))
		return 0;
	if (!masking_enabled() || m->internal || len < 9 || p[3] != '#')
		return my_forward(m, p, len);
	memcpy(b, p, 9);
	for (size_t i = 9; i < len && n < 9 + 256; i++) {
		if (p[i] == '\'' || p[i] == '"' || p[i] == '`')
			break;
		digits = p[i] >= '0' && p[i] <= '9' ? digits + 1 : 0;
		if (digits > maxdigits)
			maxdigits = digits;
		b[n++] = p[i];
	}
	if (maxdigits >= 4)
		n = 9 + (size_t)snprintf((char *)b + 9, sizeof(b) - 9,
					 "hoop: the server's message is withheld while masking is on");
	else if (n < len) {
		memcpy(b + n, tail, sizeof(tail) - 1);
		n += sizeof(tail) - 1;
	}
	return my_forward(m, b, n);
}

char *my_mask_json(struct my *m)
{
	return m->mk && m->mk->planned ? mask_result_json(&m->mk->mr) : NULL;
}

void my_mask_result_end(struct my *m)
{
	(void)m; /* a withheld result stays so to the end of the command's answer */
}

int my_mask_withheld(const struct my *m)
{
	return m->mk && m->mk->withheld;
}

void my_mask_end(struct my *m)
{
	my_mask_free(m->mk);
	m->mk = NULL;
}

void my_mask_free(struct my_mask *k)
{
	if (!k)
		return;
	masking_put(k->mg);
	mask_result_free(&k->mr);
	free(k->cols);
	free(k->cd);
	buf_free(&k->out);
	free(k);
}

struct my_mask *my_mask_detach(struct my *m)
{
	struct my_mask *k = m->mk;

	m->mk = NULL;
	return k;
}

void my_mask_attach(struct my *m, struct my_mask *k)
{
	my_mask_end(m);
	m->mk = k;
}

void my_mask_counts_clear(struct my *m)
{
	struct mask_counts *c = m->mk ? &m->mk->mr.counts : NULL;

	if (!c)
		return;
	if (c->cols)
		memset(c->cols, 0, (size_t)(c->ncols ? c->ncols : 1) * sizeof(*c->cols));
	memset(c->det, 0, sizeof(c->det));
	c->withheld = 0;
}

int my_mask_usable(const struct my_mask *k)
{
	/* a plan made while masking was on masks by it still; rows the execution would have
	 * sent unmasked are not fetched once masking is on */
	return !masking_enabled() || (k && k->mg && k->planned && !k->withheld);
}

/* A token's name, unquoted and folded to lower case, into name (n bytes). */
static void tok_name(const char *sql, const struct myl_token *t, char *name, size_t n)
{
	size_t o = 0;

	for (uint32_t k = 0; k < t->len && o < n - 1; k++) {
		char c = sql[t->off + k];

		if (t->kind == MYL_QIDENT && (k == 0 || k == t->len - 1))
			continue;
		name[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	name[o] = '\0';
}

/* Is name a column a (non free-text) masking rule covers in one of f's tables? */
static int masked_name(const struct mask_policy *mp, const struct sqlfacts *f, const char *name,
		       char *hit, size_t hitn)
{
	for (int k = 0; k < f->nread; k++) {
		const char *dot = strrchr(f->read[k], '.');
		int rule = mask_rule_match(mp, NULL, dot ? dot + 1 : f->read[k], name);

		/* free text is masked by the detectors, not as a whole: not a probe */
		if (rule >= 0 && rule < mp->nrules && !mp->rules[rule].free_text) {
			snprintf(hit, hitn, "%s.%s", dot ? dot + 1 : f->read[k], name);
			return 1;
		}
	}
	return 0;
}

static int is_any(const char *sql, const struct myl_token *t, const char *const *words)
{
	for (int i = 0; words[i]; i++)
		if (myl_is(sql, t, words[i]))
			return 1;
	return 0;
}

/*
 * The facts rules on masked columns match (sqlfacts probes_masked, writes_masked), worked out
 * from the names in the text, since MySQL text has no provenance plan here. A "masked name" is
 * a name a masking rule covers in one of the statement's tables (any name: a column is not told
 * from an alias). probes_masked when the statement decides something by a masked value:
 *  (a) a masked name after WHERE, ON, USING, HAVING, ORDER or GROUP;
 *  (b) a masked name inside a derived table or a WITH body, when the statement filters, joins,
 *      groups or sorts anywhere (the outer query reads it under an alias);
 *  (c) a select list item with a masked name whose alias (a name of the item outside its
 *      parentheses) or position is what ORDER BY, GROUP BY or HAVING names;
 *  (d) a table that is not a base table hoopd knows (a view, one made since login), when the
 *      statement filters, joins, groups or sorts (its columns' sources are not known);
 *  (e) an UPDATE or DELETE naming a masked name anywhere (affected rows answer the predicate).
 * writes_masked when a statement that writes (INSERT, REPLACE, UPDATE, CREATE TABLE, ALTER,
 * SELECT ... INTO a variable or a file) names a masked name anywhere (conservative: an UPDATE
 * that sets a masked column to a constant is one too).
 */
void my_mask_probes(const struct my *m, const char *sql, size_t len, struct sqlfacts *f)
{
	static const char *const pred_words[] = {"where", "on", "using", "having", "order", "group",
						 NULL};
	static const char *const sort_words[] = {"order", "group", "having", NULL};
	const uint64_t writes = 1ULL << SK_INSERT | 1ULL << SK_UPDATE | 1ULL << SK_CREATE_TABLE |
				1ULL << SK_SET | 1ULL << SK_COPY_TO | 1ULL << SK_ALTER_TABLE;
	struct masking *mg;
	struct myl_result r = {0};
	int dml = (f->kinds & (1ULL << SK_UPDATE | 1ULL << SK_DELETE)) != 0;
	int any_pred = 0, seen_pred = 0, seen_from = 0, with = 0, depth = 0, any_masked = 0;
	int in_sort = 0, in_order = 0, item_masked = 0, pos_masked = 0, item_no = 1, sorted_pos = 0;
	int derived_masked = 0, unknown_table = 0, unknown_read = 0;
	char alias[16][130];
	int nalias = 0;
	char hit[130] = "", name[130];

	if (f->parse_error || !f->nread || !masking_enabled() || !(mg = masking_get()))
		return;
	if (myl_lex(&m->lex, sql, len, &r)) {
		myl_free(&r);
		masking_put(mg);
		return; /* the classifier read it, so the lexer does: not reached */
	}
	for (int k = 0; k < f->nread; k++) {
		const char *dot = strrchr(f->read[k], '.');
		char schema[130];
		int written = 0;

		snprintf(schema, sizeof(schema), "%.*s", dot ? (int)(dot - f->read[k]) : 0, f->read[k]);
		if (!base_table(m, dot ? schema : m->curdb, dot ? dot + 1 : f->read[k])) {
			unknown_table = 1;
			for (int w = 0; w < f->nwritten; w++)
				written |= !strcmp(f->written[w], f->read[k]);
			unknown_read |= !written; /* read from, not only written to */
		}
	}
	for (size_t i = 0; i < r.n; i++)
		if (r.tok[i].kind == MYL_IDENT && is_any(sql, &r.tok[i], pred_words))
			any_pred = 1;
	for (size_t i = 0; i < r.n; i++) {
		const struct myl_token *t = &r.tok[i];
		int is_masked = 0;

		if (t->kind == MYL_OP && t->op[0] == '(') {
			depth++;
			continue;
		}
		if (t->kind == MYL_OP && t->op[0] == ')') {
			depth -= depth > 0;
			continue;
		}
		if (t->kind == MYL_OP && t->op[0] == ',' && depth == 0 && !seen_from) {
			pos_masked |= item_masked << (item_no < 31 ? item_no : 31);
			item_no++;
			item_masked = 0;
			continue;
		}
		/* ORDER BY 2 / GROUP BY 1, 2: by position */
		if (in_order && t->kind == MYL_NUMBER && i &&
		    ((r.tok[i - 1].kind == MYL_IDENT && myl_is(sql, &r.tok[i - 1], "by")) ||
		     (r.tok[i - 1].kind == MYL_OP && r.tok[i - 1].op[0] == ',')))
			sorted_pos = 1;
		if (t->kind != MYL_IDENT && t->kind != MYL_QIDENT)
			continue;
		if (t->kind == MYL_IDENT && (myl_is(sql, t, "order") || myl_is(sql, t, "group")))
			in_order = 1;
		else if (t->kind == MYL_IDENT && (myl_is(sql, t, "limit") || myl_is(sql, t, "having")))
			in_order = 0;
		if (t->kind == MYL_IDENT && myl_is(sql, t, "with"))
			with = 1;
		if (t->kind == MYL_IDENT && myl_is(sql, t, "from") && depth == 0) {
			if (!seen_from)
				pos_masked |= item_masked << (item_no < 31 ? item_no : 31);
			seen_from = 1;
		}
		if (t->kind == MYL_IDENT && is_any(sql, t, pred_words))
			seen_pred = 1;
		if (t->kind == MYL_IDENT && is_any(sql, t, sort_words))
			in_sort = 1;
		tok_name(sql, t, name, sizeof(name));
		is_masked = masked_name(&mg->mp, f, name, hit, sizeof(hit));
		any_masked |= is_masked;
		if (is_masked && (seen_pred || dml))
			f->probes_masked = 1; /* (a), (e) */
		if (is_masked && depth > 0 && (seen_from || with))
			derived_masked = 1; /* (b) */
		if (!seen_from)
			item_masked |= is_masked;
		if (!seen_from && item_masked && depth == 0 && nalias < 16)
			snprintf(alias[nalias++], sizeof(alias[0]), "%s", name);
		if (in_sort) /* (c): sorted by an alias of a masked item */
			for (int a = 0; a < nalias; a++)
				if (!strcmp(alias[a], name))
					f->probes_masked = 1;
	}
	if (!seen_from)
		pos_masked |= item_masked << (item_no < 31 ? item_no : 31);
	if ((derived_masked && any_pred) || (unknown_table && any_pred) || (sorted_pos && pos_masked))
		f->probes_masked = 1; /* (b), (d), (c) by position */
	if (f->probes_masked && !f->probe[0])
		snprintf(f->probe, sizeof(f->probe), "%s", hit[0] ? hit : "a column of unknown source");
	if (any_masked && (f->kinds & writes))
		f->writes_masked = 1;
	/* a value from a table into a variable (SELECT ... INTO @v, SET @v = (SELECT ...), @v :=
	 * in a query): read back later by a statement that reads no table */
	if ((f->kinds & (1ULL << SK_SET)) && f->nread &&
	    !(r.n >= 2 && myl_is(sql, &r.tok[0], "set") && myl_is(sql, &r.tok[1], "statement")))
		f->writes_masked = 1; /* (SET STATEMENT ... FOR: settings for one statement) */
	/* into session state a later statement reads back: LAST_INSERT_ID(expr), lock names */
	for (int k = 0; k < f->nfunctions; k++)
		if (!strcmp(f->functions[k], "last_insert_id") || !strcmp(f->functions[k], "get_lock") ||
		    !strcmp(f->functions[k], "setval"))
			f->writes_masked = 1;
	/* a write from a table whose columns' sources hoop does not know (a view, a table made
	 * since login): its renamed columns are not masked names */
	if ((f->kinds & writes) && unknown_read)
		f->writes_masked = 1;
	myl_free(&r);
	masking_put(mg);
}
