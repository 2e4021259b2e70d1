/*
 * Private to the masking planner (maskplan*.c): the provenance types, the build context and the
 * functions the planner's files call in one another. Nothing outside maskplan*.c includes this;
 * the rest of hoopd uses maskplan.h. The files follow PostgreSQL's analyzer: maskplan.c (the
 * API, the arena, rules and strength, recording into the plan, names), maskplan_scope.c (scopes
 * and range entries, FROM and joins, WITH), maskplan_expr.c (expressions, output names, target
 * lists), maskplan_stmt.c (queries, DML, views and tables, statements).
 */
#ifndef HOOP_MASKPLAN_INT_H
#define HOOP_MASKPLAN_INT_H

#include <errno.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maskplan.h"
#include "strutil.h"

#define MP_MAX_TEXT	  (1 << 20) /* longer statements are not parsed: all unknown */
#define MP_MAX_DEPTH	  120	    /* nested expressions, queries and views together */
#define MP_MAX_VIEW_DEPTH 16	    /* views defined over views */
#define MP_MAX_COLS	  1664	    /* PostgreSQL's MaxTupleAttributeNumber */
#define MP_MAX_SAME_NAME  16	    /* relations of one name across schemas */
#define MP_MAX_WORK	  400000    /* nodes visited in one build, views and CTE rounds included */
#define MP_MAX_ARENA	  (64u << 20) /* bytes of scratch memory for one build */
#define MP_MAX_PB_DEPTH	  1000 /* protobuf messages nested in a parse tree (unpack recurses) */
#define MP_CTE_ROUNDS	  4    /* a recursive CTE's columns reach their fixpoint by then */
#define SRC_LEN		  130

/* ---- provenance of one value ---- */

struct src {
	int rule;    /* MASK_RULE_NONE, MASK_RULE_UNKNOWN or a rule index */
	int derived; /* not the masked column itself */
	char source[SRC_LEN];
};

struct pcol {
	char name[CAT_NAME];
	struct src s;
};

/* The output columns of a query or a FROM item. */
struct colset {
	struct pcol *v;
	int n, cap;
	int unknown;	/* there may be more columns than listed, named anything */
	struct src unk; /* what each of those is */
};

struct qres {
	struct colset cols;
	struct src aux; /* strongest reference outside the target list (WHERE, ...) */
};

enum rte_kind {
	RTE_COLS,    /* columns known: table, view, subquery, CTE, join of known sides */
	RTE_UNKNOWN, /* not in the catalog: every column unknown */
	RTE_BYNAME,  /* no catalog at all: a column's rule by matching its name */
	RTE_SYSTEM,  /* pg_catalog, information_schema: clean but for copies of user data */
	RTE_FUNC,    /* a function or XMLTABLE in FROM: every column is what its arguments are */
	RTE_JOIN,    /* a join with a side of unknown columns: look in the sides */
};

struct rte {
	enum rte_kind kind;
	char name[CAT_NAME];	/* how it is referenced: alias, or the relation's name */
	char schema[CAT_NAME];	/* the relation's schema as written ("" if none or aliased) */
	char relname[CAT_NAME]; /* BYNAME, SYSTEM, UNKNOWN: the relation */
	int named;		/* referenceable as name.column */
	int unq;		/* its columns answer unqualified names (FROM items, joins) */
	int left, right;	/* RTE_JOIN: the sides' indices */
	struct colset cols;
	/* a relation name in several schemas whose columns differ: r.* by position (column i
	 * the strongest of every candidate's column i), while cols answer names */
	struct colset *starcols;
};

struct cte {
	char name[CAT_NAME];
	struct colset cols;
	const struct cte *next;
};

struct scope {
	const struct scope *outer;
	const struct cte *ctes;
	struct rte *r;
	int n, cap;
	PgQuery__Node **windows; /* the SELECT's WINDOW clause, for OVER w */
	size_t nwindows;
};

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t data[];
};

struct vcache {
	const struct cat_rel *r;
	int state; /* 1 planning (a reference now is a cycle), 2 done */
	struct colset cols;
};

struct ctx {
	const struct catalog *cat;
	const struct mask_policy *mp;
	struct maskplan *out; /* NULL in maskplan_relcol */
	int depth, view_depth;
	int quiet; /* >0: a view's definition, plain EXPLAIN: no probes or writes */
	long work;
	int failed; /* out of memory or over the work cap: everything unknown */
	struct chunk *arena;
	size_t arena_bytes;
	struct vcache *vc;
	int nvc, capvc;
	const char (*shadow)[64]; /* relations the session made: unknown */
	int nshadow;
};

/* maskplan.c */
void *mp_amalloc(struct ctx *c, size_t n);
void mp_ctx_free(struct ctx *c);
int mp_rank(const struct ctx *c, int rule);
void mp_src_none(struct src *s);
void mp_src_unknown(struct src *s, const char *why);
void mp_src_rule(struct src *s, int rule, const char *table, const char *column);
void mp_merge(const struct ctx *c, struct src *acc, const struct src *s);
void mp_merge_unknown(const struct ctx *c, struct src *acc, const char *why);
void mp_merge_pred(const struct ctx *c, struct src *acc, const struct src *s);
void mp_derive(struct src *s);
void mp_fold(const struct ctx *c, struct src *acc, const struct src *s, int first);
void mp_cs_push(struct ctx *c, struct colset *cs, const char *name, const struct src *s);
void mp_cs_unknown(struct ctx *c, struct colset *cs, const struct src *s);
void mp_cs_append(struct ctx *c, struct colset *dst, const struct colset *src);
void mp_cs_whole(const struct ctx *c, const struct colset *cs, struct src *acc);
void mp_cs_rename(struct ctx *c, struct colset *cs, PgQuery__Node **names, size_t n);
void mp_record_probe(struct ctx *c, const struct src *s);
void mp_record_write(struct ctx *c, const struct src *s);
void mp_operator_use(struct ctx *c, const char *schema, const char *name, const struct src *args,
		     struct src *acc);
void mp_record_unknown_rel(struct ctx *c, const char *schema, const char *name);
int mp_budget(struct ctx *c);
const char *mp_nstr(const PgQuery__Node *n);
void mp_qualname(PgQuery__Node **parts, size_t n, const char **schema, const char **name);
int mp_in_list(const char *const *list, const char *name, int prefix);
int mp_func_opaque(const struct ctx *c, const char *schema, const char *name);
int mp_func_keeps(const struct ctx *c, const char *schema, const char *name);
int mp_sys_col_risky(const char *rel, const char *col);
int mp_is_system(const char *schema, const char *name);
void mp_qres_unknown(struct ctx *c, struct qres *q, const char *why);

/* maskplan_scope.c */
struct rte *mp_add_rte(struct ctx *c, struct scope *sc, enum rte_kind kind);
int mp_rte_col(struct ctx *c, const struct scope *sc, const struct rte *r, const char *col,
	       struct src *out);
void mp_rte_whole(struct ctx *c, const struct scope *sc, const struct rte *r, struct src *acc,
		  int depth);
void mp_rte_star(struct ctx *c, const struct scope *sc, const struct rte *r, struct colset *out,
		 int depth);
const struct rte *mp_find_rte(const struct scope *sc, const char *schema, const char *name,
			      const struct scope **level);
int mp_colref(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr, struct src *out);
void mp_rel_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rv);
void mp_join(struct ctx *c, struct scope *sc, const PgQuery__JoinExpr *j, int depth);
int mp_from_item(struct ctx *c, struct scope *sc, const PgQuery__Node *n, int depth);
const struct cte *mp_with(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			  const PgQuery__WithClause *w);

/* maskplan_expr.c */
void mp_window(struct ctx *c, const struct scope *sc, const PgQuery__WindowDef *w, struct src *acc,
	       int depth);
void mp_ev(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *acc);
void mp_expr_src(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *out);
void mp_clause(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct qres *q);
void mp_star(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
	     struct colset *out);
void mp_targets(struct ctx *c, const struct scope *sc, PgQuery__Node **tl, size_t n,
		struct colset *out);
void mp_sort_item(struct ctx *c, const struct scope *sc, const PgQuery__Node *n,
		  const struct colset *outcols, int names_first, struct qres *q);

/* maskplan_stmt.c */
void mp_plan_select(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		    const PgQuery__SelectStmt *s, struct qres *q);
void mp_returning(struct ctx *c, struct scope *sc, PgQuery__Node **tl, size_t n, struct qres *q);
void mp_plan_node(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		  const PgQuery__Node *n, struct qres *q);
int mp_pb_depth_ok(const uint8_t *p, size_t len);
PgQuery__ParseResult *mp_parse(const char *text, PgQueryProtobufParseResult *raw, char *err,
			       size_t errn);
void mp_rel_cols(struct ctx *c, const struct cat_rel *r, struct colset *out);
void mp_plan_stmt(struct ctx *c, const PgQuery__Node *n, struct qres *q);

#endif
