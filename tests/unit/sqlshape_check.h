/*
 * What makes two SQL texts "the same" for hoopd's statement shapes (user/hoopd/sql/sqlshape.h),
 * shared by tests/unit/test_sqlshape.c and fuzz/fuzz_sqlshape.c: a text with its numeric
 * literals replaced, identical policy facts, identical masking plans, PostgreSQL's split.
 * Include after pg_query.h, maskplan.h, sqlfacts.h and sqlshape.h.
 */
#ifndef HOOP_SQLSHAPE_CHECK_H
#define HOOP_SQLSHAPE_CHECK_H

#include <stdlib.h>
#include <string.h>

/* sql with every numeric literal the shaper marked replaced: ints by iv, floats by fv. */
static char *variant(const char *sql, size_t len, const char *iv, const char *fv)
{
	struct sqlshape sh;
	char *o = malloc(len * 12 + 64);
	size_t k = 0, i = 0, j = 0;

	if (!o || sqlshape(sql, len, &sh)) {
		free(o);
		return NULL;
	}
	/* walk the text and the key together: the key is the text with each number one byte */
	while (i < len && j < sh.klen) {
		if (sh.key[j] == SQLSHAPE_INT || sh.key[j] == SQLSHAPE_FLOAT) {
			const char *v = sh.key[j] == SQLSHAPE_INT ? iv : fv;

			while (i < len && ((sql[i] >= '0' && sql[i] <= '9') || sql[i] == '.'))
				i++;
			memcpy(o + k, v, strlen(v));
			k += strlen(v);
			j++;
		} else {
			o[k++] = sql[i++];
			j++;
		}
	}
	while (i < len)
		o[k++] = sql[i++];
	o[k] = '\0';
	return o;
}

static int same_facts(const struct sqlfacts *a, const struct sqlfacts *b)
{
	if (a->kinds != b->kinds || a->nread != b->nread || a->nwritten != b->nwritten ||
	    a->nfunctions != b->nfunctions || a->copy != b->copy ||
	    a->write_without_where != b->write_without_where ||
	    a->select_without_limit != b->select_without_limit || a->too_many != b->too_many ||
	    a->parse_error != b->parse_error || strcmp(a->execute_name, b->execute_name))
		return 0;
	for (int i = 0; i < a->nread && i < SQLFACTS_MAX_NAMES; i++)
		if (strcmp(a->read[i], b->read[i]))
			return 0;
	for (int i = 0; i < a->nwritten && i < SQLFACTS_MAX_NAMES; i++)
		if (strcmp(a->written[i], b->written[i]))
			return 0;
	for (int i = 0; i < a->nfunctions && i < SQLFACTS_MAX_NAMES; i++)
		if (strcmp(a->functions[i], b->functions[i]))
			return 0;
	return 1;
}

static int same_plan(const struct maskplan *a, const struct maskplan *b)
{
	if (a->returns_rows != b->returns_rows || a->ncols != b->ncols ||
	    a->all_unknown != b->all_unknown || a->probes_masked != b->probes_masked ||
	    strcmp(a->probe, b->probe) || a->probes_unknown != b->probes_unknown ||
	    a->writes_masked != b->writes_masked || strcmp(a->written_source, b->written_source) ||
	    a->all_clean != b->all_clean || a->copy != b->copy ||
	    strcmp(a->declare_cursor, b->declare_cursor) ||
	    strcmp(a->fetch_cursor, b->fetch_cursor) || strcmp(a->execute_name, b->execute_name) ||
	    strcmp(a->prepare_name, b->prepare_name) || strcmp(a->unknown_rel, b->unknown_rel) ||
	    strcmp(a->created_rel, b->created_rel) || !a->error[0] != !b->error[0])
		return 0;
	if (a->copy && memcmp(&a->copy_opts, &b->copy_opts, sizeof(a->copy_opts)))
		return 0;
	for (int i = 0; i < a->ncols; i++)
		if (a->cols[i].rule != b->cols[i].rule || a->cols[i].derived != b->cols[i].derived ||
		    strcmp(a->cols[i].source, b->cols[i].source))
			return 0;
	return 1;
}

/* Where libpg_query's split (the dialect's) puts the only statement of sql, or -1 when it is not exactly one. */
static int split_one(const char *sql, size_t len, size_t *off, size_t *slen)
{
	PgQuerySplitResult r = pg_query_split_with_parser(sql);
	int ok = !r.error && r.n_stmts == 1;

	if (ok) {
		size_t o = (size_t)r.stmts[0]->stmt_location, l = (size_t)r.stmts[0]->stmt_len;

		if (l == 0 || o + l > len)
			l = len - o;
		while (l > 0 && (sql[o] == ' ' || sql[o] == '\n' || sql[o] == '\t' || sql[o] == '\r')) {
			o++;
			l--;
		}
		*off = o;
		*slen = l;
	}
	pg_query_free_split_result(r);
	return ok ? 0 : -1;
}

#endif
