/*
 * Provenance (user/hoopd/mask/maskplan.c) against a fixed catalog and masking policy, case by case,
 * plus the catalog model (user/hoopd/mask/catalog.c), rule matching, view columns and hoop's caps.
 *
 * Usage: test_maskplan CASES_FILE...
 *        test_maskplan --show SQL...   print each statement's plan (to write cases)
 *
 * A cases file has one case a line; blank lines and lines starting with '#' are ignored:
 *
 *   COLUMNS [KEY[=VALUE] ...] | SQL
 *
 *   COLUMNS  the result columns in order, comma-separated, or "-" for none. Each is "clean",
 *            "unknown", "free" (a text column no rule names, with "detectors"), or the label
 *            of the rule that masks it (the rule as the policy writes
 *            it: "patients.ssn", "*.email", "archive.visits.reason") followed by "~" when the
 *            column is derived from the masked column rather than the column itself, and
 *            optionally "@SOURCE" to check the source label ("patients.email").
 *   KEYS     what else the plan must say; anything not given must be 0 or empty:
 *            rows=0           returns_rows is 0 (default 1)
 *            probe=SOURCE     probes_masked, with that first probe
 *            probe_unknown    probes_unknown
 *            writes=SOURCE    writes_masked, with that source
 *            opaque_sql       opaque_sql (an operator that may run SQL from a string)
 *            all_unknown      all_unknown; all_clean  all_clean
 *            unknown_rel=NAME the relation the catalog lacks
 *            cursor=NAME, fetch=NAME, execute=NAME, prepare=NAME
 *            copy=text|csv|binary, delim=C, quote=C, escape=C, null=S, header
 *                             (delim=\t is a tab; copy_opts is checked only with copy=)
 *            error            maskplan_build returns -1
 *            nocat            built without a catalog
 *            detectors        with every content detector on (text columns no rule names
 *                             are then "free": the detectors' as they are, "free~" computed)
 *   SQL      everything after the first '|' and the blanks after it; {{nl}} is a newline and
 *            {{N*TEXT}} is TEXT repeated N times.
 *
 * The catalog: public.patients(id, mrn, first_name, last_name, ssn, dob, email, phone, address,
 * city, zip), public.encounters(id, patient_id, diagnosis, notes, visited_at), views
 * patient_contacts (id, email AS contact, upper(last_name) AS name), v_safe (id, city), v_zip
 * (id, zip; a rule on the view itself), v_contacts2 (over patient_contacts), v_fn (through
 * get_patient_ssn), v_cycle_a/b (each other), v_star (SELECT * FROM patients), materialized
 * views mv_emails (with a definition) and mv_plain (without), public.visits(id, patient_id,
 * reason) and archive.visits(id, patient_id, reason, archived_at), public.notes(id, body) and
 * archive.notes(id, body, ssn), v_bad (a definition that does not parse), patients_2020 (a
 * partition of patients: same columns, parent_oid set), the user function
 * get_patient_ssn(int), and user operators ~~~ (over pg_notify), ^@ (over pg_notify: a user
 * operator of a built-in's name), %%% (over ts_rewrite), <<< (over a user function), and an
 * extension's <-> and %> on its own types (not picked for built-in operand types).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "harness.h"
#include "maskplan.h"
#include "maskplan_fixture.h"

#define MAX_SQL (4 << 20)

static void rule_label(int rule, char *buf, size_t n)
{
	const struct mask_column_rule *r;

	if (rule == MASK_RULE_NONE) {
		snprintf(buf, n, "clean");
		return;
	}
	if (rule == MASK_RULE_UNKNOWN) {
		snprintf(buf, n, "unknown");
		return;
	}
	if (rule == MASK_RULE_FREE) {
		snprintf(buf, n, "free");
		return;
	}
	if (rule < 0 || rule >= pol.nrules) {
		snprintf(buf, n, "rule#%d", rule);
		return;
	}
	r = &pol.rules[rule];
	if (r->schema[0])
		snprintf(buf, n, "%s.%s.%s", r->schema, r->table, r->column);
	else
		snprintf(buf, n, "%s.%s", r->table, r->column);
}

/* The plan as one line, for failure messages. */
static void describe(const struct maskplan *p, char *buf, size_t n)
{
	size_t o = 0;

	o += (size_t)snprintf(buf + o, n - o, "rows=%d cols=[", p->returns_rows);
	for (int i = 0; i < p->ncols && o < n; i++) {
		char l[160];

		rule_label(p->cols[i].rule, l, sizeof(l));
		o += (size_t)snprintf(buf + o, n - o, "%s%s%s@%s", i ? "," : "", l,
				      p->cols[i].derived ? "~" : "", p->cols[i].source);
	}
	if (o < n)
		o += (size_t)snprintf(
		    buf + o, n - o,
		    "] probe=%d:%s probe_unknown=%d writes=%d:%s all_unknown=%d all_clean=%d "
		    "opaque_sql=%d unknown_rel=%s cursor=%s fetch=%s execute=%s prepare=%s copy=%d "
		    "error=%s",
		    p->probes_masked, p->probe, p->probes_unknown, p->writes_masked,
		    p->written_source, p->all_unknown, p->all_clean, p->opaque_sql, p->unknown_rel,
		    p->declare_cursor, p->fetch_cursor, p->execute_name, p->prepare_name, p->copy,
		    p->error);
}

static int expand(const char *in, char **out)
{
	size_t cap = strlen(in) + 1, len = 0;
	char *s = malloc(cap);

	if (!s)
		return -1;
	while (*in) {
		const char *open = strstr(in, "{{"), *close;
		size_t piece;
		long times = 1;
		const char *text;
		char *star;

		if (!open)
			open = in + strlen(in);
		piece = (size_t)(open - in);
		if (len + piece + 1 > cap) {
			cap = (len + piece + 1) * 2;
			if (!(s = realloc(s, cap)))
				return -1;
		}
		memcpy(s + len, in, piece);
		len += piece;
		if (!*open)
			break;
		close = strstr(open, "}}");
		if (!close) {
			free(s);
			return -1;
		}
		text = open + 2;
		if (!strncmp(text, "nl}}", 4)) {
			text = "\n";
			piece = 1;
		} else {
			times = strtol(text, &star, 10);
			if (*star != '*' || times < 0) {
				free(s);
				return -1;
			}
			text = star + 1;
			piece = (size_t)(close - text);
		}
		if (len + piece * (size_t)times + 1 > MAX_SQL) {
			free(s);
			return -1;
		}
		if (len + piece * (size_t)times + 1 > cap) {
			cap = len + piece * (size_t)times + 1;
			if (!(s = realloc(s, cap)))
				return -1;
		}
		for (long k = 0; k < times; k++) {
			memcpy(s + len, text, piece);
			len += piece;
		}
		in = close + 2;
	}
	s[len] = '\0';
	*out = s;
	return 0;
}

static char unescape_char(const char *v)
{
	if (!strcmp(v, "\\t"))
		return '\t';
	return v[0];
}

/* One case line; returns 0 when it holds. */
static void run_case(const char *file, int line, char *text)
{
	char *bar = strchr(text, '|'), *sql_text, *sql = NULL, *save = NULL, *tok, *cols;
	char want_probe[160] = "", want_writes[160] = "", want_rel[160] = "";
	char want_cursor[64] = "", want_fetch[64] = "", want_exec[64] = "", want_prep[64] = "";
	char want_copy[16] = "", want_delim[8] = "", want_quote[8] = "", want_escape[8] = "",
	     want_null[40] = "";
	int want_rows = 1, want_probe_unknown = 0, want_all_unknown = 0, want_all_clean = 0;
	int want_error = 0, nocat = 0, want_header = 0, have_null = 0, detectors = 0, rc;
	int want_opaque_sql = 0;
	struct maskplan p;
	char desc[4096], q[512];

	unit_begin("case");
	unit_where("%s:%d", file, line);
	if (!bar) {
		unit_fail(file, line, "no '|' before the SQL");
		unit_end();
		return;
	}
	*bar = '\0';
	sql_text = bar + 1;
	while (*sql_text == ' ' || *sql_text == '\t')
		sql_text++;
	cols = strtok_r(text, " \t", &save);
	if (!cols) {
		unit_fail(file, line, "no columns");
		unit_end();
		return;
	}
	while ((tok = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(tok, '='), *v = eq ? eq + 1 : (char *)"";

		if (eq)
			*eq = '\0';
		if (!strcmp(tok, "rows"))
			want_rows = atoi(v);
		else if (!strcmp(tok, "probe"))
			snprintf(want_probe, sizeof(want_probe), "%s", v);
		else if (!strcmp(tok, "probe_unknown"))
			want_probe_unknown = 1;
		else if (!strcmp(tok, "writes"))
			snprintf(want_writes, sizeof(want_writes), "%s", v);
		else if (!strcmp(tok, "opaque_sql"))
			want_opaque_sql = 1;
		else if (!strcmp(tok, "all_unknown"))
			want_all_unknown = 1;
		else if (!strcmp(tok, "all_clean"))
			want_all_clean = 1;
		else if (!strcmp(tok, "unknown_rel"))
			snprintf(want_rel, sizeof(want_rel), "%s", v);
		else if (!strcmp(tok, "cursor"))
			snprintf(want_cursor, sizeof(want_cursor), "%s", v);
		else if (!strcmp(tok, "fetch"))
			snprintf(want_fetch, sizeof(want_fetch), "%s", v);
		else if (!strcmp(tok, "execute"))
			snprintf(want_exec, sizeof(want_exec), "%s", v);
		else if (!strcmp(tok, "prepare"))
			snprintf(want_prep, sizeof(want_prep), "%s", v);
		else if (!strcmp(tok, "copy"))
			snprintf(want_copy, sizeof(want_copy), "%s", v);
		else if (!strcmp(tok, "delim"))
			snprintf(want_delim, sizeof(want_delim), "%s", v);
		else if (!strcmp(tok, "quote"))
			snprintf(want_quote, sizeof(want_quote), "%s", v);
		else if (!strcmp(tok, "escape"))
			snprintf(want_escape, sizeof(want_escape), "%s", v);
		else if (!strcmp(tok, "null"))
			snprintf(want_null, sizeof(want_null), "%s", v), have_null = 1;
		else if (!strcmp(tok, "header"))
			want_header = 1;
		else if (!strcmp(tok, "error"))
			want_error = 1;
		else if (!strcmp(tok, "nocat"))
			nocat = 1;
		else if (!strcmp(tok, "detectors"))
			detectors = 1;
		else
			unit_fail(file, line, "unknown key %s", tok);
	}
	if (expand(sql_text, &sql)) {
		unit_fail(file, line, "bad {{...}} in the SQL");
		unit_end();
		return;
	}
	unit_where("%s:%d: %.200s", file, line, unit_quote(sql, q, sizeof(q)));
	pol.detectors = detectors ? (1u << DET_COUNT) - 1 : 0;
	rc = maskplan_build(sql, strlen(sql), nocat ? NULL : cat, &pol, &p);
	pol.detectors = 0;
	describe(&p, desc, sizeof(desc));
	if (want_error ? rc != -1 : rc != 0)
		unit_fail(file, line, "returned %d (%s)", rc, desc);
	if (p.returns_rows != want_rows)
		unit_fail(file, line, "returns_rows %d, want %d (%s)", p.returns_rows, want_rows,
			  desc);
	if (p.all_unknown != want_all_unknown || p.all_clean != want_all_clean)
		unit_fail(file, line, "all_unknown %d all_clean %d, want %d %d (%s)", p.all_unknown,
			  p.all_clean, want_all_unknown, want_all_clean, desc);
	{
		/* the columns */
		char buf[1024], *s2 = NULL, *c;
		int i = 0;

		snprintf(buf, sizeof(buf), "%s", strcmp(cols, "-") ? cols : "");
		for (c = strtok_r(buf, ",", &s2); c; c = strtok_r(NULL, ",", &s2), i++) {
			char label[160], want[160], *at = strchr(c, '@'), *src = NULL;
			int want_derived = 0;
			size_t l;

			if (at) {
				*at = '\0';
				src = at + 1;
			}
			l = strlen(c);
			if (l && c[l - 1] == '~') {
				c[l - 1] = '\0';
				want_derived = 1;
			}
			snprintf(want, sizeof(want), "%s", c);
			if (i >= p.ncols) {
				unit_fail(file, line, "column %d missing (%s)", i + 1, desc);
				break;
			}
			rule_label(p.cols[i].rule, label, sizeof(label));
			if (strcmp(label, want))
				unit_fail(file, line, "column %d is %s, want %s (%s)", i + 1, label,
					  want, desc);
			else if (strcmp(want, "clean") && strcmp(want, "unknown") &&
				 p.cols[i].derived != want_derived)
				unit_fail(file, line, "column %d derived %d, want %d (%s)", i + 1,
					  p.cols[i].derived, want_derived, desc);
			if (src && strcmp(p.cols[i].source, src))
				unit_fail(file, line, "column %d source %s, want %s (%s)", i + 1,
					  p.cols[i].source, src, desc);
		}
		if (i != p.ncols)
			unit_fail(file, line, "%d columns, want %d (%s)", p.ncols, i, desc);
	}
	if (!!want_probe[0] != p.probes_masked || strcmp(want_probe, p.probe))
		unit_fail(file, line, "probe %d:%s, want %s (%s)", p.probes_masked, p.probe,
			  want_probe[0] ? want_probe : "none", desc);
	if (p.probes_unknown != want_probe_unknown)
		unit_fail(file, line, "probes_unknown %d, want %d (%s)", p.probes_unknown,
			  want_probe_unknown, desc);
	if (!!want_writes[0] != p.writes_masked || strcmp(want_writes, p.written_source))
		unit_fail(file, line, "writes %d:%s, want %s (%s)", p.writes_masked,
			  p.written_source, want_writes[0] ? want_writes : "none", desc);
	if (p.opaque_sql != want_opaque_sql)
		unit_fail(file, line, "opaque_sql %d, want %d (%s)", p.opaque_sql, want_opaque_sql,
			  desc);
	if (strcmp(p.unknown_rel, want_rel))
		unit_fail(file, line, "unknown_rel \"%s\", want \"%s\"", p.unknown_rel, want_rel);
	if (strcmp(p.declare_cursor, want_cursor) || strcmp(p.fetch_cursor, want_fetch) ||
	    strcmp(p.execute_name, want_exec) || strcmp(p.prepare_name, want_prep))
		unit_fail(file, line, "names: %s", desc);
	if (p.copy != !!want_copy[0])
		unit_fail(file, line, "copy %d, want %d", p.copy, !!want_copy[0]);
	if (want_copy[0] && p.copy) {
		const struct mask_copy *o = &p.copy_opts;
		int fmt = !strcmp(want_copy, "csv") ? 1 : !strcmp(want_copy, "binary") ? 2 : 0;

		CHECK_EQ_INT(o->format, fmt);
		CHECK_EQ_INT(o->header, want_header);
		if (want_delim[0])
			CHECK_EQ_INT(o->delim, unescape_char(want_delim));
		if (want_quote[0])
			CHECK_EQ_INT(o->quote, want_quote[0]);
		if (want_escape[0])
			CHECK_EQ_INT(o->escape, want_escape[0]);
		if (have_null)
			CHECK_STREQ(o->null_str, want_null);
	}
	maskplan_free(&p);
	free(sql);
	unit_end();
}

static int run_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, cases = 0;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s = line;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		run_case(path, lineno, s);
		cases++;
	}
	free(line);
	fclose(f);
	return cases;
}

/* ---- the catalog model ---- */

static void test_catalog_lookups(void)
{
	const struct cat_rel *out[8];
	const struct cat_rel *r;

	CHECK_EQ_INT(cat_nrels(cat), 18);
	CHECK_EQ_INT(cat_rels_by_name(cat, NULL, "visits", out, 8), 2);
	CHECK_EQ_INT(cat_rels_by_name(cat, "archive", "visits", out, 8), 1);
	CHECK_STREQ(out[0]->schema, "archive");
	CHECK_EQ_INT(cat_rels_by_name(cat, "public", "patients", out, 1), 1);
	CHECK_EQ_INT(out[0]->oid, 16001);
	CHECK_EQ_INT(cat_rels_by_name(cat, NULL, "visits", out, 1), 1);	  /* max respected */
	CHECK_EQ_INT(cat_rels_by_name(cat, NULL, "Patients", out, 8), 0); /* case-sensitive */
	CHECK_EQ_INT(cat_rels_by_name(cat, NULL, "nope", out, 8), 0);
	r = cat_rel_by_oid(cat, 16003);
	CHECK(r && !strcmp(r->name, "patient_contacts") && r->kind == 'v' && r->viewdef);
	CHECK(cat_rel_by_oid(cat, 1) == NULL);
	r = cat_rel_by_oid(cat, 16001);
	CHECK(r && cat_col_by_attnum(r, 5) && !strcmp(cat_col_by_attnum(r, 5)->name, "ssn"));
	CHECK(r && cat_col_by_name(r, "zip") && cat_col_by_name(r, "zip")->attnum == 11);
	CHECK(r && !cat_col_by_name(r, "nope") && !cat_col_by_attnum(r, 0));
	CHECK(cat_is_user_function(cat, NULL, "get_patient_ssn"));
	CHECK(cat_is_user_function(cat, "public", "get_patient_ssn"));
	CHECK(!cat_is_user_function(cat, "other", "get_patient_ssn"));
	CHECK(!cat_is_user_function(cat, NULL, "upper"));
	CHECK(!cat_is_user_function(NULL, NULL, "x"));
	CHECK_EQ_INT(cat_nrels(NULL), 0);
}

static void test_catalog_build(void)
{
	struct catalog *c = cat_new();
	struct cat_rel *r;
	const struct cat_rel *out[4];
	char longname[100];

	CHECK(c != NULL);
	if (!c)
		return;
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	errno = 0;
	CHECK(cat_add_rel(c, 1, "s", longname, 'r', NULL) == NULL && errno == ENAMETOOLONG);
	r = cat_add_rel(c, 7, "s", "t", 'r', NULL);
	CHECK(r != NULL);
	if (r) {
		/* columns in any order: cat_index sorts them by attnum */
		CHECK_EQ_INT(cat_add_col(r, 3, "c", 25), 0);
		CHECK_EQ_INT(cat_add_col(r, 1, "a", 23), 0);
		CHECK_EQ_INT(cat_add_col(r, 2, "b", 25), 0);
		CHECK_EQ_INT(cat_add_col(r, 0, "z", 25), -EINVAL);
		CHECK_EQ_INT(cat_add_col(r, 4, longname, 25), -ENAMETOOLONG);
	}
	/* lookups work before cat_index too (by scanning) */
	CHECK_EQ_INT(cat_rels_by_name(c, "s", "t", out, 4), 1);
	CHECK(cat_rel_by_oid(c, 7) == r);
	for (int i = 0; i < 40; i++) {
		char n[16];

		snprintf(n, sizeof(n), "f%02d", i);
		CHECK_EQ_INT(cat_add_function(c, i % 2 ? "a" : "b", n), 0);
	}
	CHECK_EQ_INT(cat_index(c), 0);
	CHECK(r && r->cols[0].attnum == 1 && !strcmp(r->cols[2].name, "c"));
	CHECK(cat_is_user_function(c, NULL, "f17") && cat_is_user_function(c, "a", "f17"));
	CHECK(!cat_is_user_function(c, "b", "f17") && !cat_is_user_function(c, NULL, "f40"));
	CHECK(cat_rel_by_oid(c, 7) == r && cat_rel_by_oid(c, 8) == NULL);
	cat_free(c);
	cat_free(NULL);
}

static void test_rule_match(void)
{
	CHECK_EQ_INT(mask_rule_match(&pol, "public", "patients", "ssn"), 0);
	CHECK_EQ_INT(mask_rule_match(&pol, "x", "anything", "email"), 1);
	CHECK_EQ_INT(mask_rule_match(&pol, "public", "visits", "reason"), MASK_RULE_NONE);
	CHECK_EQ_INT(mask_rule_match(&pol, "archive", "visits", "reason"), 7);
	/* no schema known: a rule naming one may match */
	CHECK_EQ_INT(mask_rule_match(&pol, NULL, "visits", "reason"), 7);
	CHECK_EQ_INT(mask_rule_match(&pol, "public", "patients", "city"), MASK_RULE_NONE);
	CHECK_EQ_INT(mask_rule_match(NULL, "public", "patients", "ssn"), MASK_RULE_NONE);
	{
		/* the first match wins */
		struct mask_policy mp;

		memset(&mp, 0, sizeof(mp));
		mp.nrules = 2;
		snprintf(mp.rules[0].table, MASK_NAME, "pat*");
		snprintf(mp.rules[0].column, MASK_NAME, "s?n");
		snprintf(mp.rules[1].table, MASK_NAME, "patients");
		snprintf(mp.rules[1].column, MASK_NAME, "ssn");
		CHECK_EQ_INT(mask_rule_match(&mp, "public", "patients", "ssn"), 0);
		CHECK_EQ_INT(mask_rule_match(&mp, "public", "patients", "sn"), MASK_RULE_NONE);
	}
}

static void test_relcol(void)
{
	const struct cat_rel *pat = cat_rel_by_oid(cat, 16001), *pc = cat_rel_by_oid(cat, 16003);
	int d = -1;

	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pat, 5, &d), 0);
	CHECK_EQ_INT(d, 0);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pat, 1, &d), MASK_RULE_NONE);
	CHECK_EQ_INT(d, 0);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pat, 99, &d), MASK_RULE_UNKNOWN);
	/* view columns through the definition */
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pc, 2, &d), 1);
	CHECK_EQ_INT(d, 0);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pc, 3, &d), 6);
	CHECK_EQ_INT(d, 1);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, pc, 1, &d), MASK_RULE_NONE);
	/* a rule on the view's own column */
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16005), 2, &d), 8);
	CHECK_EQ_INT(d, 0);
	/* views over views, cycles, functions, unparsable definitions */
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16006), 1, &d), 1);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16008), 1, &d),
		     MASK_RULE_UNKNOWN);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16007), 2, &d),
		     MASK_RULE_UNKNOWN);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16017), 1, &d),
		     MASK_RULE_UNKNOWN);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16010), 5, &d), 0);
	/* materialized views: with a definition through it, without by rule */
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16011), 2, &d), 1);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16012), 3, &d), 1);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, cat_rel_by_oid(cat, 16012), 2, &d), MASK_RULE_NONE);
	CHECK_EQ_INT(maskplan_relcol(cat, &pol, NULL, 1, &d), MASK_RULE_UNKNOWN);
}

/* One refresh of the fixture's database after DDL: patients (16001) as `name`, its column 4
 * (last_name) as `col4`, column 5 (ssn) as `col5`; v_zip (16005) unchanged. */
static struct catalog *refreshed(const char *name, const char *col4, const char *col5)
{
	struct catalog *c = cat_new();
	struct cat_rel *r;
	const char *cols[] = {"id",  "mrn",   "first_name", col4,   col5,	"dob",
			      "email", "phone", "address",	  "city", "zip"};

	if (!c || !(r = cat_add_rel(c, 16001, "public", name, 'r', NULL)))
		exit(2);
	for (int i = 0; i < 11; i++)
		if (cat_add_col(r, (int16_t)(i + 1), cols[i], 25))
			exit(2);
	if (!(r = cat_add_rel(c, 16002, "public", "encounters", 'r', NULL)) ||
	    cat_add_col(r, 1, "id", 25) || cat_add_col(r, 2, "notes", 25) || cat_index(c))
		exit(2);
	return c;
}

static int plan_col0(const struct catalog *c, const char *sql, int *writes)
{
	struct maskplan p;
	int rule;

	if (maskplan_build(sql, strlen(sql), c, &pol, &p) || p.ncols < 1) {
		maskplan_free(&p);
		return 99;
	}
	rule = p.cols[0].rule;
	if (writes)
		*writes = p.writes_masked;
	maskplan_free(&p);
	return rule;
}

/* Issue 14 point 5: rules follow the column's identity (table OID, attnum) across catalog
 * refreshes: a renamed masked column, or a renamed table's masked columns, stay masked. */
static void test_identity(void)
{
	struct catalog *c1 = refreshed("patients", "last_name", "ssn");
	struct catalog *c2 = refreshed("people", "ln", "ssn");
	struct catalog *c3 = refreshed("people", "x", "s2");
	struct catalog *fresh = refreshed("people", "ln", "ssn");
	const struct cat_rel *r;
	int d = -1, w = -1;

	/* without history a renamed column is whatever its new name says */
	CHECK_EQ_INT(plan_col0(fresh, "SELECT ln FROM people", NULL), MASK_RULE_NONE);
	CHECK_EQ_INT(cat_inherit(c2, c1), 0);
	r = cat_rel_by_oid(c2, 16001);
	CHECK(r && r->was_name && !strcmp(r->was_name, "patients"));
	CHECK(r && r->cols[3].was && !strcmp(r->cols[3].was, "last_name"));
	CHECK(r && !r->cols[4].was && !r->cols[0].was);
	CHECK(cat_rel_by_oid(c2, 16002) && !cat_rel_by_oid(c2, 16002)->was_name);
	CHECK_EQ_INT(plan_col0(c2, "SELECT ln FROM people", NULL), 6);
	CHECK_EQ_INT(plan_col0(c2, "SELECT upper(p.ln) FROM people p", NULL), 6);
	CHECK_EQ_INT(plan_col0(c2, "SELECT ssn FROM people", NULL), 0);
	CHECK_EQ_INT(plan_col0(c2, "SELECT * FROM people", NULL), MASK_RULE_NONE); /* id */
	CHECK_EQ_INT(plan_col0(c2, "SELECT 1 FROM people p, notes n WHERE n.id = 1", NULL),
		     MASK_RULE_NONE);
	CHECK_EQ_INT(plan_col0(c2, "INSERT INTO encounters (notes) SELECT ln FROM people "
				   "RETURNING 1",
			       &w),
		     MASK_RULE_NONE);
	CHECK_EQ_INT(w, 1);
	CHECK_EQ_INT(maskplan_relcol(c2, &pol, cat_rel_by_oid(c2, 16001), 4, &d), 6);
	CHECK_EQ_INT(d, 0);
	/* a second refresh: the names at first sight, not the last ones */
	CHECK_EQ_INT(cat_inherit(c3, c2), 0);
	CHECK_EQ_INT(plan_col0(c3, "SELECT x FROM people", NULL), 6);
	CHECK_EQ_INT(plan_col0(c3, "SELECT s2 FROM people", NULL), 0);
	CHECK_EQ_INT(maskplan_relcol(c3, &pol, cat_rel_by_oid(c3, 16001), 5, &d), 0);
	CHECK_EQ_INT(cat_inherit(c3, NULL), 0);
	cat_free(c1);
	cat_free(c2);
	cat_free(c3);
	cat_free(fresh);
}

/* hoop's caps: nothing crashes, and what cannot be planned is unknown. */
static void test_caps(void)
{
	struct maskplan p;
	size_t n = (1 << 20) + 10;
	char *big = malloc(n + 1), *s;
	int rc;

	CHECK(big != NULL);
	if (!big)
		return;
	memset(big, ' ', n);
	memcpy(big, "SELECT 1", 8);
	big[n] = '\0';
	CHECK_EQ_INT(maskplan_build(big, n, cat, &pol, &p), -1);
	CHECK_EQ_INT(p.all_unknown, 1);
	CHECK_EQ_INT(p.returns_rows, 1);
	maskplan_free(&p);
	free(big);

	/* 3000 nested subqueries: deeper than the cap; the parser or the cap says unknown */
	s = malloc(3000 * 40 + 100);
	if (s) {
		size_t o = 0;

		for (int i = 0; i < 3000; i++)
			o += (size_t)sprintf(s + o, "(SELECT ");
		o += (size_t)sprintf(s + o, "ssn FROM patients");
		for (int i = 0; i < 3000; i++)
			s[o++] = ')';
		s[o] = '\0';
		{
			char *q = malloc(o + 16);

			if (q) {
				sprintf(q, "SELECT %s", s);
				rc = maskplan_build(q, strlen(q), cat, &pol, &p);
				CHECK(rc == -1 ? p.all_unknown
					       : p.ncols == 1 && p.cols[0].rule != MASK_RULE_NONE);
				maskplan_free(&p);
				free(q);
			}
		}
		free(s);
	}

	/* 300 UNION ALL branches: walked without recursion, the ssn branch still counts */
	s = malloc(300 * 40 + 100);
	if (s) {
		size_t o = (size_t)sprintf(s, "SELECT id FROM patients");

		for (int i = 0; i < 300; i++)
			o += (size_t)sprintf(s + o, " UNION ALL SELECT %d", i);
		o += (size_t)sprintf(s + o, " UNION ALL SELECT ssn FROM patients");
		CHECK_EQ_INT(maskplan_build(s, o, cat, &pol, &p), 0);
		CHECK(p.ncols == 1 && p.cols[0].rule == 0 && !p.all_unknown);
		maskplan_free(&p);
		free(s);
	}
	/* 5000: deeper than the parse tree cap (protobuf-c unpacks recursively): unknown */
	s = malloc(5000 * 40 + 100);
	if (s) {
		size_t o = (size_t)sprintf(s, "SELECT id FROM patients");

		for (int i = 0; i < 5000; i++)
			o += (size_t)sprintf(s + o, " UNION ALL SELECT %d", i);
		o += (size_t)sprintf(s + o, " UNION ALL SELECT ssn FROM patients");
		rc = maskplan_build(s, o, cat, &pol, &p);
		CHECK_EQ_INT(rc, -1);
		CHECK(p.all_unknown && p.returns_rows);
		maskplan_free(&p);
		free(s);
	}
	/* NUL inside the given length, empty input, NULL output */
	CHECK_EQ_INT(maskplan_build("SELECT ssn\0 FROM x", 18, cat, &pol, &p), 0);
	maskplan_free(&p);
	CHECK_EQ_INT(maskplan_build("", 0, cat, &pol, &p), 0);
	CHECK_EQ_INT(p.returns_rows, 0);
	maskplan_free(&p);
	CHECK_EQ_INT(maskplan_build("SELECT 1", 8, cat, &pol, NULL), -1);
	/* no policy at all: nothing is masked, nothing crashes */
	CHECK_EQ_INT(maskplan_build("SELECT ssn FROM patients", 24, cat, NULL, &p), 0);
	CHECK(p.ncols == 1 && p.cols[0].rule == MASK_RULE_NONE);
	maskplan_free(&p);
	maskplan_free(NULL);
}

int main(int argc, char **argv)
{
	int total = 0;

	build_policy();
	build_catalog();
	if (argc > 1 && !strcmp(argv[1], "--show")) {
		for (int i = 2; i < argc; i++) {
			struct maskplan p;
			char desc[4096];
			int rc = maskplan_build(argv[i], strlen(argv[i]), cat, &pol, &p);

			describe(&p, desc, sizeof(desc));
			printf("%d %s\n   %s\n", rc, argv[i], desc);
			maskplan_free(&p);
		}
		cat_free(cat);
		return 0;
	}
	UNIT_RUN(test_catalog_lookups);
	UNIT_RUN(test_catalog_build);
	UNIT_RUN(test_rule_match);
	UNIT_RUN(test_relcol);
	UNIT_RUN(test_caps);
	UNIT_RUN(test_identity);
	for (int i = 1; i < argc; i++) {
		int n = run_file(argv[i]);

		if (n <= 0) {
			fprintf(stderr, "%s: no cases\n", argv[i]);
			unit_state.failed++;
		}
		total += n > 0 ? n : 0;
	}
	fprintf(stderr, "%d cases\n", total);
	cat_free(cat);
	return unit_report();
}
