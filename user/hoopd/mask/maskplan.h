/*
 * Provenance: which result columns of a statement derive from masked columns, read from
 * PostgreSQL's parse tree (libpg_query) and the catalog. A result column is masked when any
 * column it is computed from is masked: through aliases, casts, functions, operators,
 * concatenation, CASE, subqueries, CTEs, UNION/INTERSECT/EXCEPT, views (their definitions are
 * parsed the same way), whole-row references (p, p.*, row_to_json(p), to_jsonb(p), p::text)
 * and aggregates (array_agg, string_agg, json_agg...). What cannot be established is
 * MASK_RULE_UNKNOWN (masked by mask_policy.unknown_style): fail closed.
 */
#ifndef HOOP_MASKPLAN_H
#define HOOP_MASKPLAN_H

#include <stddef.h>

#include "catalog.h"
#include "mask.h"

struct maskplan_col {
	int rule;	  /* strongest rule among its sources, MASK_RULE_NONE or MASK_RULE_UNKNOWN */
	int derived;	  /* not the masked column itself (see mask_colplan.derived) */
	char source[130]; /* "table.column" of that source (for counts and context), or "" */
};

struct maskplan {
	int returns_rows; /* SELECT, VALUES, ... RETURNING, COPY TO STDOUT, FETCH, SHOW, EXPLAIN.. */
	int ncols;	  /* result columns in order (star expanded from the catalog) */
	struct maskplan_col *cols;
	int all_unknown;  /* the result columns could not be listed: every column unknown */
	/* Inference: a masked column is read outside the result (WHERE, JOIN ... ON, GROUP BY,
	 * HAVING, ORDER BY, DISTINCT ON, window clauses, LIMIT expressions). */
	int probes_masked;
	char probe[130];  /* "patients.ssn" */
	/* the same places read a value whose provenance is unknown (a user-defined function, a
	 * relation the catalog does not have): the engine may treat it as a probe too */
	int probes_unknown;
	/* a masked column's values (or values computed from one) are written into a relation
	 * (INSERT ... SELECT, UPDATE ... SET, MERGE, ON CONFLICT, SELECT INTO, CREATE TABLE AS):
	 * a later read of that relation would show them unless it is masked too */
	int writes_masked;
	char written_source[130]; /* "patients.ssn" */
	/* a column reference anywhere in the statement (a CTE's body, a subquery whose output is
	 * discarded, an aggregate's argument) is masked or of unknown provenance: the statement
	 * computes over such values even where no result column shows them, and the server's
	 * error and notice messages can quote them (pg_rows.c pg_mask_notice) */
	int reads_masked;
	/* an operator that may run SQL given as a string (a user operator over ts_rewrite or
	 * query_to_xml, or one hoop knows nothing of): the statement is opaque_sql (sqlfacts.h) */
	int opaque_sql;
	/* the column count is unknown (all_unknown), but none of them derives from user data
	 * (a star over system relations or over functions of constants) */
	int all_clean;
	/* COPY ... TO STDOUT: the columns above are the copied ones */
	int copy;
	struct mask_copy copy_opts;
	/* DECLARE name CURSOR FOR ...: the columns are the cursor's; FETCH/MOVE name: the plan
	 * is the cursor's (the engine remembers DECLAREd plans by name) */
	char declare_cursor[64];
	char fetch_cursor[64];
	/* EXECUTE name (SQL): the plan is the prepared statement's */
	char execute_name[64];
	/* PREPARE name AS ...: the columns are the prepared statement's (returns_rows 0) */
	char prepare_name[64];
	/* a relation named in the statement that the catalog does not have (not a CTE, not a
	 * system relation): the catalog may be stale */
	char unknown_rel[130];
	/* CREATE TABLE/VIEW/MATERIALIZED VIEW, CREATE TABLE AS, SELECT INTO, ALTER ... RENAME TO:
	 * the relation name this statement makes (unqualified). A session that made a relation
	 * can shadow a cataloged one of the same name (pg_temp comes first in search_path, and an
	 * uncommitted one is invisible to hoopd's catalog connection): the engine plans later
	 * statements with such names as unknown (maskplan_build_ex). */
	char created_rel[64];
	/* the plan depends on a numeric constant's value, not only on the tree's shape (ORDER BY
	 * 2 names a column): it is not kept by shape (stmtcache.h) */
	int const_sensitive;
	char error[256];
};

/* Index of the first rule matching schema.table.column, or MASK_RULE_NONE. A NULL schema is
 * not known (no catalog): rules naming any schema can match. */
int mask_rule_match(const struct mask_policy *mp, const char *schema, const char *table,
		    const char *column);
/* The rule for column attnum of relation r: tables by rule match; views through their
 * definitions. MASK_RULE_NONE, a rule, or MASK_RULE_UNKNOWN. */
int maskplan_relcol(const struct catalog *cat, const struct mask_policy *mp,
		    const struct cat_rel *r, int attnum, int *derived);

/* One statement (the engine splits a Query first). cat may be NULL (no catalog: only what the
 * text itself says; stars and unqualified columns become unknown). 0, or -1 on a parse error
 * (all_unknown set). */
int maskplan_build(const char *sql, size_t len, const struct catalog *cat,
		   const struct mask_policy *mp, struct maskplan *out);
void maskplan_free(struct maskplan *p);
/* The same, with names of relations the session made itself (created_rel of earlier
 * statements): any reference to one of them, qualified or not, is of unknown provenance. */
int maskplan_build_ex(const char *sql, size_t len, const struct catalog *cat,
		      const struct mask_policy *mp, const char (*shadow)[64], int nshadow,
		      struct maskplan *out);

#endif
