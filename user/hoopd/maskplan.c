/*
 * Provenance of result columns (maskplan.h): PostgreSQL's parse tree, read through libpg_query's
 * protobuf form, against the catalog and the policy's masking rules. Every column reference is
 * resolved the way the server resolves it (FROM items, joins, aliases, CTEs, outer queries),
 * views are planned from their definitions, and whatever this file does not model is walked
 * generically through protobuf-c's descriptors, so that a column reference in a node type it
 * has never heard of still counts: unknown shapes over-mask, they never leak.
 */
#include "maskplan.h"

#include <errno.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pglex.h"
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

/* ---- scratch memory: one arena per build, freed at once ---- */

static void *amalloc(struct ctx *c, size_t n)
{
	struct chunk *k = c->arena;
	void *p;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (!k || k->cap - k->used < n) {
		size_t cap = n > 65536 ? n : 65536;

		if (c->arena_bytes + cap > MP_MAX_ARENA || !(k = malloc(sizeof(*k) + cap))) {
			c->failed = 1;
			return NULL;
		}
		c->arena_bytes += cap;
		k->cap = cap;
		k->used = 0;
		k->next = c->arena;
		c->arena = k;
	}
	p = (char *)k->data + k->used;
	k->used += n;
	memset(p, 0, n);
	return p;
}

static void ctx_free(struct ctx *c)
{
	while (c->arena) {
		struct chunk *k = c->arena;

		c->arena = k->next;
		free(k);
	}
	free(c->vc);
}

/* ---- rules and strength ---- */

int mask_rule_match(const struct mask_policy *mp, const char *schema, const char *table,
		    const char *column)
{
	if (!mp || !table || !column)
		return MASK_RULE_NONE;
	for (int i = 0; i < mp->nrules && i < MASK_MAX_RULES; i++) {
		const struct mask_column_rule *r = &mp->rules[i];

		if (r->schema[0] && schema && !glob_match(r->schema, schema))
			continue;
		if (!glob_match(r->table, table) || !glob_match(r->column, column))
			continue;
		return i;
	}
	return MASK_RULE_NONE;
}

static int style_rank(enum mask_style s)
{
	switch (s) {
	case MASK_NULL:
		return 5;
	case MASK_REDACT:
		return 4;
	case MASK_HASH:
		return 3;
	case MASK_FORMAT_PRESERVING:
		return 2;
	case MASK_PARTIAL:
		return 1;
	default:
		return 4;
	}
}

/* null > redact > hash > format_preserving > partial > free > none; unknown ranks as the style
 * it is masked with, and wins a tie (it says less about the value). */
static int rank(const struct ctx *c, int rule)
{
	if (rule == MASK_RULE_NONE)
		return 0;
	if (rule == MASK_RULE_FREE)
		return 1; /* the weakest: any rule says more */
	if (rule == MASK_RULE_UNKNOWN)
		return style_rank(c->mp ? c->mp->unknown_style : MASK_REDACT) * 2 + 1;
	if (!c->mp || rule < 0 || rule >= c->mp->nrules)
		return 11;
	return style_rank(c->mp->rules[rule].style) * 2;
}

static void src_none(struct src *s)
{
	s->rule = MASK_RULE_NONE;
	s->derived = 0;
	s->source[0] = '\0';
}

static void src_unknown(struct src *s, const char *why)
{
	s->rule = MASK_RULE_UNKNOWN;
	s->derived = 1;
	snprintf(s->source, sizeof(s->source), "%s", why ? why : "");
}

static void src_rule(struct src *s, int rule, const char *table, const char *column)
{
	s->rule = rule;
	s->derived = 0;
	/* also for a clean column: a column passed through as it is tells the engine its type
	 * (binary COPY) and its name (detector context) */
	snprintf(s->source, sizeof(s->source), "%s.%s", table, column);
}

/* Folds s into acc: the stronger wins. The caller decides whether acc is derived. */
static void merge(const struct ctx *c, struct src *acc, const struct src *s)
{
	if (rank(c, s->rule) > rank(c, acc->rule)) {
		acc->rule = s->rule;
		acc->derived = s->derived;
		memcpy(acc->source, s->source, sizeof(acc->source));
	}
}

static void merge_unknown(const struct ctx *c, struct src *acc, const char *why)
{
	struct src u;

	src_unknown(&u, why);
	merge(c, acc, &u);
}

/* Folds what decided a value without being it (a subquery's WHERE, an aggregate's FILTER or
 * ORDER BY, a window): a free text column there is no copy of its text. */
static void merge_pred(const struct ctx *c, struct src *acc, const struct src *s)
{
	if (s->rule != MASK_RULE_FREE)
		merge(c, acc, s);
}

static void derive(struct src *s)
{
	if (s->rule != MASK_RULE_NONE)
		s->derived = 1;
}

/* Folds one of several candidates for a value: two masked ones make it derived (two free text
 * columns do not: the value is one of them as it is, which the detectors read). */
static void fold(const struct ctx *c, struct src *acc, const struct src *s, int first)
{
	int both;

	if (first) {
		*acc = *s;
		return;
	}
	both = acc->rule != MASK_RULE_NONE && s->rule != MASK_RULE_NONE &&
	       !(acc->rule == MASK_RULE_FREE && s->rule == MASK_RULE_FREE);
	merge(c, acc, s);
	if (both)
		acc->derived = 1;
}

/* ---- column sets ---- */

static void cs_push(struct ctx *c, struct colset *cs, const char *name, const struct src *s)
{
	if (cs->n >= MP_MAX_COLS) {
		if (!cs->unknown)
			src_none(&cs->unk);
		cs->unknown = 1;
		merge(c, &cs->unk, s);
		return;
	}
	if (cs->n == cs->cap) {
		int ncap = cs->cap ? cs->cap * 2 : 8;
		struct pcol *v = amalloc(c, (size_t)ncap * sizeof(*v));

		if (!v)
			return;
		if (cs->n)
			memcpy(v, cs->v, (size_t)cs->n * sizeof(*v));
		cs->v = v;
		cs->cap = ncap;
	}
	snprintf(cs->v[cs->n].name, CAT_NAME, "%s", name ? name : "");
	cs->v[cs->n].s = *s;
	cs->n++;
}

static void cs_unknown(struct ctx *c, struct colset *cs, const struct src *s)
{
	if (!cs->unknown)
		src_none(&cs->unk);
	cs->unknown = 1;
	merge(c, &cs->unk, s);
}

static void cs_append(struct ctx *c, struct colset *dst, const struct colset *src)
{
	for (int i = 0; i < src->n; i++)
		cs_push(c, dst, src->v[i].name, &src->v[i].s);
	if (src->unknown)
		cs_unknown(c, dst, &src->unk);
}

/* Every column's provenance folded into acc (a whole-row reference). */
static void cs_whole(const struct ctx *c, const struct colset *cs, struct src *acc)
{
	for (int i = 0; i < cs->n; i++)
		merge(c, acc, &cs->v[i].s);
	if (cs->unknown)
		merge(c, acc, &cs->unk);
}

/* Renames the first columns by an alias's column list. */
static void cs_rename(struct ctx *c, struct colset *cs, PgQuery__Node **names, size_t n)
{
	struct pcol *v;

	if (!n || !cs->n)
		return;
	v = amalloc(c, (size_t)cs->n * sizeof(*v));
	if (!v)
		return;
	memcpy(v, cs->v, (size_t)cs->n * sizeof(*v));
	for (size_t i = 0; i < n && i < (size_t)cs->n; i++)
		if (names[i]->node_case == PG_QUERY__NODE__NODE_STRING)
			snprintf(v[i].name, CAT_NAME, "%s", names[i]->string->sval);
	cs->v = v;
	cs->cap = cs->n;
}

/* ---- recording into the plan ---- */

static void record_probe(struct ctx *c, const struct src *s)
{
	if (!c->out || c->quiet)
		return;
	if (s->rule >= 0 && !c->out->probes_masked) {
		c->out->probes_masked = 1;
		snprintf(c->out->probe, sizeof(c->out->probe), "%s", s->source);
	} else if (s->rule == MASK_RULE_UNKNOWN) {
		c->out->probes_unknown = 1;
	}
}

static void record_write(struct ctx *c, const struct src *s)
{
	if (!c->out || c->quiet || s->rule < 0 || c->out->writes_masked)
		return;
	c->out->writes_masked = 1;
	snprintf(c->out->written_source, sizeof(c->out->written_source), "%s", s->source);
}

enum { OP_PURE, OP_KEEPS, OP_OPAQUE };
static int op_class(const struct ctx *c, const char *schema, const char *name, int *sql);

/* An operator applied to values of provenance args (its operands): like a function call of
 * what op_class says runs it. */
static void operator_use(struct ctx *c, const char *schema, const char *name,
			 const struct src *args, struct src *acc)
{
	int sql, cls = op_class(c, schema, name, &sql);

	if (sql && c->out && !c->quiet)
		c->out->opaque_sql = 1;
	if (cls != OP_PURE) /* first: args may be acc */
		record_write(c, args);
	if (cls == OP_OPAQUE) {
		char why[SRC_LEN];

		snprintf(why, sizeof(why), "operator(%s%s%s)", schema ? schema : "",
			 schema ? "." : "", name ? name : "?");
		merge_unknown(c, acc, why);
		/* what the operator computed over is as good as read: its messages can say */
		if (c->out && !c->quiet)
			c->out->reads_masked = 1;
	}
}

static void record_unknown_rel(struct ctx *c, const char *schema, const char *name)
{
	if (!c->out || c->out->unknown_rel[0])
		return;
	if (schema && *schema)
		snprintf(c->out->unknown_rel, sizeof(c->out->unknown_rel), "%s.%s", schema, name);
	else
		snprintf(c->out->unknown_rel, sizeof(c->out->unknown_rel), "%s", name);
}

/* Counts work; past the cap the whole plan becomes unknown (no input makes this slow). */
static int budget(struct ctx *c)
{
	if (++c->work > MP_MAX_WORK)
		c->failed = 1;
	return c->failed;
}

/* ---- names ---- */

static const char *nstr(const PgQuery__Node *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string->sval ? n->string->sval
										   : NULL;
}

/* A qualified name (list of String): its last part and the one before. */
static void qualname(PgQuery__Node **parts, size_t n, const char **schema, const char **name)
{
	*schema = *name = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *s = nstr(parts[i]);

		if (s) {
			*schema = *name;
			*name = s;
		}
	}
}

/* Built-in functions that run SQL text, or read data that is not among their arguments:
 * tables as XML, other databases, files, large objects, WAL, raw pages, other sessions'
 * queries, what other statements left in locks, sequences, cursors and prepared statements.
 * Matched as prefixes, in any schema. */
/* clang-format off */
static const char *const opaque_prefixes[] = {
	"query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml",
	"ts_stat", "ts_rewrite", "dblink", "pg_read_file", "pg_read_binary_file", "pg_file_read",
	"lo_", "loread", "pg_logical_slot_", "get_raw_page", "heap_page_item", "heap_tuple_",
	"tuple_data_split", "bt_page_items", "brin_page_items", "gin_leafpage_items",
	"gist_page_items", "hash_page_items", "page_header", "pg_stat_get_activity",
	"pg_stat_get_backend_activity", "pg_stat_statements", "pg_lock_status",
	"pg_sequence_last_value", "pg_cursor", "pg_prepared_statement", NULL};
/* clang-format on */

/* Every function name in pg_catalog (PostgreSQL 15), generated from a real server's catalog by
 * scripts/gen-pgfuncs.sh with the reviewed exceptions of scripts/pgfuncs-reviewed.txt. A name
 * is pure when every function of that name is IMMUTABLE or STABLE (PostgreSQL's contract: it
 * cannot modify the database), so its arguments are not kept anywhere another statement can
 * read them back; any other name keeps its arguments (advisory locks, setval, lo_*,
 * pg_notify, set_config...). An allowlist, not a list of known writers: a built-in nobody
 * reviewed is a writer. */
enum { PGF_PURE = 1, PGF_KEEPS = 2 };

struct pgf {
	const char *name;
	int cls;
};

#define PGF(n, c) {n, c}
static const struct pgf pgfuncs[] = {
#include "pgfuncs.h"
};
#undef PGF

static int pgf_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct pgf *)elem)->name);
}

/* PGF_PURE, PGF_KEEPS, or 0: not a built-in */
static int pgf_class(const char *name)
{
	const struct pgf *f;

	if (!name)
		return 0;
	f = bsearch(name, pgfuncs, sizeof(pgfuncs) / sizeof(pgfuncs[0]), sizeof(pgfuncs[0]),
		    pgf_cmp);
	return f ? f->cls : 0;
}

static int in_list(const char *const *list, const char *name, int prefix)
{
	for (int i = 0; list[i]; i++)
		if (prefix ? !strncmp(name, list[i], strlen(list[i])) : !strcmp(name, list[i]))
			return 1;
	return 0;
}

/* Can this function's result carry data that is not among its arguments? An unqualified
 * name that is no built-in may be a function created after the catalog was read. */
static int func_opaque(const struct ctx *c, const char *schema, const char *name)
{
	if (!name)
		return 1;
	if (in_list(opaque_prefixes, name, 1))
		return 1;
	if (c->cat && cat_is_user_function(c->cat, schema, name))
		return 1;
	if (schema && strcmp(schema, "pg_catalog"))
		return 1;
	return !pgf_class(name);
}

/* Can a value handed to this function be kept where another statement reads it back? */
static int func_keeps(const struct ctx *c, const char *schema, const char *name)
{
	return func_opaque(c, schema, name) || pgf_class(name) != PGF_PURE;
}

/* Every operator name in pg_catalog (PostgreSQL 15), classed by the functions that run it
 * (pg_operator.oprcode), generated by scripts/gen-pgfuncs.sh --operators. */
static const struct pgf pgops[] = {
#define PGF(n, c) {n, c}
#include "pgops.h"
#undef PGF
};

/* The built-ins that run SQL given as a string (sqlfacts.c's opaque_sql list): an operator
 * that runs one is that call under another name. */
static const char *const runs_sql_fns[] = {
	"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
	"table_to_xml", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xml_and_xmlschema",
	"database_to_xml", "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite", "crosstab",
	"connectby", "xpath_table", "dblink", NULL};

/*
 * What runs where an operator is written: PostgreSQL looks an operator up by name through
 * search_path, and a user's operator of a built-in's name wins where its argument types fit
 * better (or its schema comes first), so the name says nothing once any user operator has it.
 * Pure: pg_catalog has the name, every function behind it is pure, and no user operator of
 * that name can be picked for built-in operand types. Keeps: likewise, but one of its functions
 * keeps its arguments. Opaque (a user function): a user operator of that name can be picked
 * (cat_add_operator's shadows), the name is not pg_catalog's (an extension's, or one no one
 * knows: made after the catalog was read), or it is written with a schema other than
 * pg_catalog (OPERATOR(public.||)).
 * *sql: it may run SQL from a string (a user operator over ts_rewrite or query_to_xml, or an
 * operator hoop knows nothing of).
 */
static int op_class(const struct ctx *c, const char *schema, const char *name, int *sql)
{
	const char *fns[16];
	int n, shadows = 0, cls;
	const struct pgf *f;

	*sql = 0;
	if (!name) {
		*sql = 1;
		return OP_OPAQUE;
	}
	n = c->cat ? cat_user_operator(c->cat, name, fns, 16, &shadows) : 0;
	for (int i = 0; i < n && i < 16; i++)
		if (!fns[i][0] || in_list(runs_sql_fns, fns[i], 1))
			*sql = 1;
	if (n > 16)
		*sql = 1;
	f = bsearch(name, pgops, sizeof(pgops) / sizeof(pgops[0]), sizeof(pgops[0]), pgf_cmp);
	cls = f ? f->cls : 0;
	if (schema && strcmp(schema, "pg_catalog")) {
		if (!n)
			*sql = 1;
		return OP_OPAQUE;
	}
	if (!cls) {
		/* an extension's own name is its user function; a name no one knows may be an
		 * operator made after the catalog was read */
		if (!n)
			*sql = 1;
		return OP_OPAQUE;
	}
	/* a built-in's name: only a user operator the server can pick for built-in types
	 * (citext's = on citext is not) takes it over */
	if (shadows)
		return OP_OPAQUE;
	return cls == PGF_PURE ? OP_PURE : OP_KEEPS;
}

/* ---- system relations ---- */

/* System relations are clean, but for these, which copy user data: column statistics (most
 * common values, histograms), large objects, other sessions' query texts. "*" = every column. */
static const struct {
	const char *rel, *cols;
} sys_risky[] = {
    {"pg_statistic", "*"},
    {"pg_statistic_ext_data", "*"},
    {"pg_stats", " most_common_vals histogram_bounds most_common_elems "},
    {"pg_stats_ext", " most_common_vals exprs "},
    {"pg_stats_ext_exprs", " most_common_vals histogram_bounds most_common_elems "},
    {"pg_largeobject", " data "},
    {"pg_stat_activity", " query "},
    {"pg_stat_statements", " query "},
    /* what statements stored there: advisory lock keys, a sequence's last value (setval),
     * the text of prepared statements and cursors */
    {"pg_locks", " classid objid objsubid "},
    {"pg_sequences", " last_value "},
    {"pg_prepared_statements", " statement "},
    {"pg_cursors", " statement "},
};

/* 0 clean, 1 this column copies user data; col NULL: does any? */
static int sys_col_risky(const char *rel, const char *col)
{
	for (size_t i = 0; i < sizeof(sys_risky) / sizeof(sys_risky[0]); i++) {
		char word[CAT_NAME + 2];

		if (strcmp(rel, sys_risky[i].rel))
			continue;
		if (!col || !strcmp(sys_risky[i].cols, "*"))
			return 1;
		snprintf(word, sizeof(word), " %s ", col);
		return strstr(sys_risky[i].cols, word) != NULL;
	}
	return 0;
}

static int is_system(const char *schema, const char *name)
{
	if (schema)
		return !strcmp(schema, "pg_catalog") || !strcmp(schema, "information_schema") ||
		       !strncmp(schema, "pg_toast", 8);
	return !strncmp(name, "pg_", 3);
}

/* ---- forward declarations ---- */

static void ev(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *acc);
static void plan_node(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		      const PgQuery__Node *n, struct qres *q);
static void plan_select(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__SelectStmt *s, struct qres *q);
static void rel_cols(struct ctx *c, const struct cat_rel *r, struct colset *out);

static void qres_unknown(struct ctx *c, struct qres *q, const char *why)
{
	struct src u;

	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	src_unknown(&u, why);
	cs_unknown(c, &q->cols, &u);
}

/* ---- scopes ---- */

static struct rte *add_rte(struct ctx *c, struct scope *sc, enum rte_kind kind)
{
	struct rte *r;

	if (sc->n == sc->cap) {
		int ncap = sc->cap ? sc->cap * 2 : 8;
		struct rte *v = amalloc(c, (size_t)ncap * sizeof(*v));

		if (!v)
			return NULL;
		if (sc->n)
			memcpy(v, sc->r, (size_t)sc->n * sizeof(*v));
		sc->r = v;
		sc->cap = ncap;
	}
	r = &sc->r[sc->n++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->named = r->unq = 1;
	r->left = r->right = -1;
	src_none(&r->cols.unk);
	return r;
}

/* Column col of FROM item r: 2 it has it, 1 it may have it (columns not known), 0 it has not. */
static int rte_col(struct ctx *c, const struct scope *sc, const struct rte *r, const char *col,
		   struct src *out)
{
	int found = 0;

	src_none(out);
	switch (r->kind) {
	case RTE_COLS: {
		int k = 0;

		for (int i = 0; i < r->cols.n; i++)
			if (!strcmp(r->cols.v[i].name, col))
				fold(c, out, &r->cols.v[i].s, k++ == 0);
		if (k)
			return 2;
		if (r->cols.unknown) {
			*out = r->cols.unk;
			return 1;
		}
		return 0;
	}
	case RTE_UNKNOWN: {
		char why[SRC_LEN];

		snprintf(why, sizeof(why), "%s.%s", r->relname, col);
		src_unknown(out, why);
		return 1;
	}
	case RTE_BYNAME:
		src_rule(out,
			 mask_rule_match(c->mp, r->schema[0] ? r->schema : NULL, r->relname, col),
			 r->relname, col);
		return 1;
	case RTE_SYSTEM:
		if (sys_col_risky(r->relname, col)) {
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", r->relname, col);
			src_unknown(out, why);
		}
		return 1;
	case RTE_FUNC:
		for (int i = 0; i < r->cols.n; i++)
			if (!strcmp(r->cols.v[i].name, col)) {
				*out = r->cols.v[i].s;
				return 2;
			}
		*out = r->cols.unk;
		return 1;
	case RTE_JOIN: {
		struct src a, b;
		int fa = 0, fb = 0;

		if (r->left >= 0 && r->left < sc->n)
			fa = rte_col(c, sc, &sc->r[r->left], col, &a);
		if (r->right >= 0 && r->right < sc->n)
			fb = rte_col(c, sc, &sc->r[r->right], col, &b);
		if (fa)
			merge(c, out, &a);
		if (fb)
			merge(c, out, &b);
		if (fa && fb && a.rule != MASK_RULE_NONE && b.rule != MASK_RULE_NONE &&
		    !(a.rule == MASK_RULE_FREE && b.rule == MASK_RULE_FREE))
			derive(out);
		found = fa > fb ? fa : fb;
		return found;
	}
	}
	return 0;
}

/* The whole row of r (r, r.*, row_to_json(r)): every column. */
static void rte_whole(struct ctx *c, const struct scope *sc, const struct rte *r, struct src *acc,
		      int depth)
{
	char why[SRC_LEN];

	if (depth > MP_MAX_DEPTH) {
		merge_unknown(c, acc, "nesting");
		return;
	}
	switch (r->kind) {
	case RTE_COLS:
	case RTE_FUNC:
		cs_whole(c, &r->cols, acc);
		if (r->starcols)
			cs_whole(c, r->starcols, acc);
		break;
	case RTE_UNKNOWN:
	case RTE_BYNAME:
		/* no catalog to list the columns: any of them may be masked (or a view's) */
		snprintf(why, sizeof(why), "%s.*", r->relname);
		merge_unknown(c, acc, why);
		break;
	case RTE_SYSTEM:
		if (sys_col_risky(r->relname, NULL)) {
			snprintf(why, sizeof(why), "%s.*", r->relname);
			merge_unknown(c, acc, why);
		}
		break;
	case RTE_JOIN:
		if (r->left >= 0 && r->left < sc->n)
			rte_whole(c, sc, &sc->r[r->left], acc, depth + 1);
		if (r->right >= 0 && r->right < sc->n)
			rte_whole(c, sc, &sc->r[r->right], acc, depth + 1);
		break;
	}
	derive(acc);
}

/* r.* in a target list: its columns in order, or an unknown count. */
static void rte_star(struct ctx *c, const struct scope *sc, const struct rte *r, struct colset *out,
		     int depth)
{
	struct src s;

	if (depth > MP_MAX_DEPTH) {
		src_unknown(&s, "nesting");
		cs_unknown(c, out, &s);
		return;
	}
	switch (r->kind) {
	case RTE_COLS:
	case RTE_FUNC:
		cs_append(c, out, r->starcols ? r->starcols : &r->cols);
		break;
	case RTE_JOIN:
		if (r->left >= 0 && r->left < sc->n)
			rte_star(c, sc, &sc->r[r->left], out, depth + 1);
		if (r->right >= 0 && r->right < sc->n)
			rte_star(c, sc, &sc->r[r->right], out, depth + 1);
		break;
	default:
		src_none(&s);
		rte_whole(c, sc, r, &s, depth + 1);
		if (s.rule != MASK_RULE_NONE)
			s.derived = 0;
		cs_unknown(c, out, &s);
		break;
	}
}

static const struct rte *find_rte(const struct scope *sc, const char *schema, const char *name,
				  const struct scope **level)
{
	for (const struct scope *l = sc; l; l = l->outer)
		for (int i = l->n - 1; i >= 0; i--) {
			const struct rte *r = &l->r[i];

			if (!r->named || strcmp(r->name, name))
				continue;
			if (schema && r->schema[0] && strcmp(r->schema, schema))
				continue;
			*level = l;
			return r;
		}
	return NULL;
}

/* Relations under r whose columns only the catalog could list (BYNAME, UNKNOWN). */
static int opaque_leaves(const struct scope *sc, const struct rte *r, int depth)
{
	if (depth > MP_MAX_DEPTH)
		return 1;
	if (r->kind == RTE_JOIN)
		return (r->left >= 0 && r->left < sc->n
			    ? opaque_leaves(sc, &sc->r[r->left], depth + 1)
			    : 0) +
		       (r->right >= 0 && r->right < sc->n
			    ? opaque_leaves(sc, &sc->r[r->right], depth + 1)
			    : 0);
	return r->kind == RTE_BYNAME || r->kind == RTE_UNKNOWN;
}

static int is_system_column(const char *col)
{
	static const char *const sys[] = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", NULL};

	return in_list(sys, col, 0);
}

/*
 * A column reference's provenance. Returns 1 when it is exactly one column (out->derived is that
 * column's), 0 when it is several, a whole row, or not known.
 */
static int colref_resolve(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
			  struct src *out);

/* A column reference's provenance (colref_resolve), noting in the plan that the statement
 * reads a masked or untraceable value wherever the reference is (maskplan.reads_masked). */
static int colref(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
		  struct src *out)
{
	int r = colref_resolve(c, sc, cr, out);

	if (c->out && out->rule != MASK_RULE_NONE)
		c->out->reads_masked = 1;
	return r;
}

static int colref_resolve(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
			  struct src *out)
{
	const char *f[4] = {NULL, NULL, NULL, NULL};
	size_t n = cr->n_fields;
	int star = n && cr->fields[n - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR;
	const char *col, *rel = NULL, *schema = NULL;

	src_none(out);
	if (!n || n > 4) {
		src_unknown(out, "column reference");
		return 0;
	}
	for (size_t i = 0; i < n - (size_t)star; i++) {
		f[i] = nstr(cr->fields[i]);
		if (!f[i]) {
			src_unknown(out, "column reference");
			return 0;
		}
	}
	if (star) {
		if (n == 1) { /* bare * as a value: every FROM item's row */
			for (int i = 0; i < sc->n; i++)
				if (sc->r[i].unq)
					rte_whole(c, sc, &sc->r[i], out, 0);
			derive(out);
			return 0;
		}
		rel = f[n - 2];
		schema = n >= 3 ? f[n - 3] : NULL;
		{
			const struct scope *lv;
			const struct rte *r = find_rte(sc, schema, rel, &lv);

			if (!r) {
				src_unknown(out, rel);
				return 0;
			}
			rte_whole(c, lv, r, out, 0);
		}
		return 0;
	}
	col = f[n - 1];
	if (n >= 2) {
		const struct scope *lv;
		const struct rte *r;

		rel = f[n - 2];
		schema = n >= 3 ? f[n - 3] : NULL;
		r = find_rte(sc, schema, rel, &lv);
		if (!r) {
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", rel, col);
			src_unknown(out, why);
			return 0;
		}
		if (rte_col(c, lv, r, col, out))
			return out->rule == MASK_RULE_UNKNOWN ? 0 : 1;
		if (is_system_column(col))
			return 1;
		{
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", rel, col);
			src_unknown(out, why); /* not in the catalog's columns: stale catalog */
		}
		return 0;
	}
	/* Unqualified: the innermost level that has the column decides; levels whose FROM items
	 * only may have it (columns not known) add what they would give and defer outward. */
	{
		int definite = 0, maybes = 0, byname = 0;
		struct src def, may, s;

		src_none(&def);
		src_none(&may);
		for (const struct scope *l = sc; l && !definite; l = l->outer) {
			for (int i = 0; i < l->n; i++)
				if (l->r[i].unq && rte_col(c, l, &l->r[i], col, &s) == 2)
					fold(c, &def, &s, definite++ == 0);
			if (definite)
				break;
			for (int i = 0; i < l->n; i++)
				if (l->r[i].unq && rte_col(c, l, &l->r[i], col, &s) == 1) {
					byname += opaque_leaves(l, &l->r[i], 0);
					fold(c, &may, &s, maybes++ == 0);
				}
		}
		if (definite) {
			*out = def;
			if (maybes)
				fold(c, out, &may, 0);
			return out->rule != MASK_RULE_UNKNOWN && !(definite > 1 && out->derived);
		}
		if (maybes) {
			/* Several relations of unknown columns: a rule that matches one decides;
			 * none matching, the column may still be a masked one under another name
			 * (a view), so it is unknown. */
			const struct scope *lv;
			const struct rte *r = find_rte(sc, NULL, col, &lv);

			*out = may;
			if (byname > 1 && out->rule == MASK_RULE_NONE) {
				src_unknown(out, col);
				return 0;
			}
			if (r) { /* the name of a FROM item too: maybe its whole row */
				struct src w;

				src_none(&w);
				rte_whole(c, lv, r, &w, 0);
				if (w.rule != MASK_RULE_NONE) {
					fold(c, out, &w, 0);
					derive(out);
					return 0;
				}
			}
			return out->rule != MASK_RULE_UNKNOWN;
		}
		/* no column of that name: the whole row of a FROM item of that name */
		{
			const struct scope *lv;
			const struct rte *r = find_rte(sc, NULL, col, &lv);

			if (r) {
				rte_whole(c, lv, r, out, 0);
				return 0;
			}
		}
		if (is_system_column(col))
			return 1;
		src_unknown(out, col);
		return 0;
	}
}

/* ---- expressions ---- */

static void ev_msg(struct ctx *c, const struct scope *sc, const ProtobufCMessage *m,
		   struct src *acc);
static int field_of_row(struct ctx *c, const struct scope *sc, const PgQuery__AIndirection *ai,
			struct src *out);

/* Every child of any message: what this file does not model is still walked. */
static void ev_children(struct ctx *c, const struct scope *sc, const ProtobufCMessage *m,
			struct src *acc)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr =
			    *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n && arr; k++)
				if (arr[k])
					ev_msg(c, sc, arr[k], acc);
		} else {
			const ProtobufCMessage *sub =
			    *(ProtobufCMessage *const *)(base + f->offset);

			if (sub)
				ev_msg(c, sc, sub, acc);
		}
	}
}

static void ev_msg(struct ctx *c, const struct scope *sc, const ProtobufCMessage *m,
		   struct src *acc)
{
	if (m->descriptor == &pg_query__node__descriptor) {
		ev(c, sc, (const PgQuery__Node *)m, acc);
		return;
	}
	if (++c->depth > MP_MAX_DEPTH * 2 || budget(c))
		merge_unknown(c, acc, "nesting");
	else
		ev_children(c, sc, m, acc);
	c->depth--;
}

/* Partition and order of a window: part of the value, and a probe. */
static void window(struct ctx *c, const struct scope *sc, const PgQuery__WindowDef *w,
		   struct src *acc, int depth)
{
	struct src s;

	if (!w || depth > 4)
		return;
	src_none(&s);
	for (size_t i = 0; i < w->n_partition_clause; i++)
		ev(c, sc, w->partition_clause[i], &s);
	for (size_t i = 0; i < w->n_order_clause; i++)
		ev(c, sc, w->order_clause[i], &s);
	ev(c, sc, w->start_offset, &s);
	ev(c, sc, w->end_offset, &s);
	record_probe(c, &s);
	merge(c, acc, &s);
	/* OVER w, OVER (w ORDER BY ...): the named window's clauses too */
	for (const char *ref = w->refname && *w->refname ? w->refname : w->name; ref && *ref;
	     ref = NULL)
		for (size_t i = 0; i < sc->nwindows; i++) {
			const PgQuery__Node *wn = sc->windows[i];

			if (wn->node_case == PG_QUERY__NODE__NODE_WINDOW_DEF &&
			    wn->window_def->name && !strcmp(wn->window_def->name, ref) &&
			    wn->window_def != w)
				window(c, sc, wn->window_def, acc, depth + 1);
		}
}

static void funccall(struct ctx *c, const struct scope *sc, const PgQuery__FuncCall *fc,
		     struct src *acc)
{
	const char *schema, *name;

	struct src args, pred;
	int opaque;

	qualname(fc->funcname, fc->n_funcname, &schema, &name);
	opaque = func_opaque(c, schema, name);
	if (opaque) {
		char why[SRC_LEN];

		snprintf(why, sizeof(why), "%s()", name ? name : "?");
		merge_unknown(c, acc, why);
	}
	src_none(&args);
	for (size_t i = 0; i < fc->n_args; i++)
		ev(c, sc, fc->args[i], &args);
	/* A masked value handed to code that can keep it (a user function, a setting that
	 * current_setting() reads back, a notification to a listener, an advisory lock that
	 * pg_locks shows, a sequence that currval() reads): a write. */
	if (args.rule >= 0 && (opaque || func_keeps(c, schema, name)))
		record_write(c, &args);
	/* count(notes) says how many, nothing of the text */
	if (args.rule == MASK_RULE_FREE && name && !strcmp(name, "count"))
		src_none(&args);
	merge(c, acc, &args);
	src_none(&pred);
	for (size_t i = 0; i < fc->n_agg_order; i++)
		ev(c, sc, fc->agg_order[i], &pred);
	ev(c, sc, fc->agg_filter, &pred);
	window(c, sc, fc->over, &pred, 0);
	merge_pred(c, acc, &pred);
	derive(acc);
}

/* x::t (CAST(x AS t)) to a type a conversion into runs user code (cat_add_code_type: a user
 * CAST WITH FUNCTION, even between built-in types, a domain's CHECK, a user input function):
 * that code gets x, like a user function. */
static void typecast(struct ctx *c, const PgQuery__TypeCast *tc, const struct src *arg,
		     struct src *acc)
{
	const char *schema, *name;
	char why[SRC_LEN];

	if (!c->cat || !tc->type_name)
		return;
	qualname(tc->type_name->names, tc->type_name->n_names, &schema, &name);
	if (!name || !cat_code_type(c->cat, name))
		return;
	record_write(c, arg);
	snprintf(why, sizeof(why), "cast(%s)", name);
	merge_unknown(c, acc, why);
	if (c->out && !c->quiet)
		c->out->reads_masked = 1;
}

/*
 * An operator expression: its operands, and the operator (or, for the forms PostgreSQL spells
 * with operators, the ones it looks up by name: IN and IS DISTINCT FROM and NULLIF use =,
 * BETWEEN uses >= and <= (< and > for NOT BETWEEN: both are checked for every form), LIKE ~~,
 * ILIKE ~~*, SIMILAR TO ~; the parse tree names them).
 */
static void aexpr(struct ctx *c, const struct scope *sc, const PgQuery__AExpr *e, struct src *acc)
{
	const char *schema, *name;
	struct src args;

	src_none(&args);
	ev(c, sc, e->lexpr, &args);
	ev(c, sc, e->rexpr, &args);
	merge(c, acc, &args);
	qualname(e->name, e->n_name, &schema, &name);
	switch (e->kind) {
	case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN:
	case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN:
	case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
	case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM: {
		static const char *const cmp[] = {">=", "<=", "<", ">"};

		for (int i = 0; i < 4; i++)
			operator_use(c, NULL, cmp[i], &args, acc);
		break;
	}
	default:
		operator_use(c, schema, name, &args, acc);
	}
}

/* A subquery as a value: every column it selects and every column it reads anywhere. Returns 1
 * when it is exactly one column passed through ((SELECT ssn FROM ...)). */
static int sublink(struct ctx *c, const struct scope *sc, const PgQuery__SubLink *sl,
		   struct src *out)
{
	struct qres q;
	struct src t;

	src_none(out);
	plan_node(c, sc, sc->ctes, sl->subselect, &q);
	if (sl->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXPR_SUBLINK && !sl->testexpr &&
	    q.cols.n == 1 && !q.cols.unknown &&
	    (q.aux.rule == MASK_RULE_NONE || q.aux.rule == MASK_RULE_FREE)) {
		*out = q.cols.v[0].s;
		return 1;
	}
	cs_whole(c, &q.cols, out);
	merge_pred(c, out, &q.aux);
	src_none(&t);
	ev(c, sc, sl->testexpr, &t);
	merge(c, out, &t);
	if (sl->testexpr) { /* x op ANY (SELECT ...), x IN (SELECT ...): op runs on both */
		const char *schema, *name;

		qualname(sl->oper_name, sl->n_oper_name, &schema, &name);
		operator_use(c, schema, name ? name : "=", out, out);
	}
	derive(out);
	return 0;
}

static void ev(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *acc)
{
	struct src s;

	if (!n)
		return;
	if (++c->depth > MP_MAX_DEPTH * 2 || budget(c)) {
		merge_unknown(c, acc, "nesting");
		c->depth--;
		return;
	}
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE__NOT_SET:
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_PARAM_REF:
	case PG_QUERY__NODE__NODE_STRING:
	case PG_QUERY__NODE__NODE_INTEGER:
	case PG_QUERY__NODE__NODE_FLOAT:
	case PG_QUERY__NODE__NODE_BOOLEAN:
	case PG_QUERY__NODE__NODE_TYPE_NAME:
		break;
	case PG_QUERY__NODE__NODE_COLUMN_REF:
		colref(c, sc, n->column_ref, &s);
		merge(c, acc, &s);
		break;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		funccall(c, sc, n->func_call, acc);
		break;
	case PG_QUERY__NODE__NODE_A_EXPR:
		aexpr(c, sc, n->a_expr, acc);
		break;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		src_none(&s);
		ev_children(c, sc, &n->base, &s);
		merge(c, acc, &s);
		typecast(c, n->type_cast, &s, acc);
		break;
	case PG_QUERY__NODE__NODE_CASE_EXPR:
		/* CASE x WHEN y: x = y, by the name = */
		src_none(&s);
		ev_children(c, sc, &n->base, &s);
		merge(c, acc, &s);
		if (n->case_expr->arg)
			operator_use(c, NULL, "=", &s, acc);
		break;
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		if (field_of_row(c, sc, n->a_indirection, &s))
			merge(c, acc, &s);
		else
			ev_children(c, sc, &n->base, acc);
		break;
	case PG_QUERY__NODE__NODE_SUB_LINK:
		sublink(c, sc, n->sub_link, &s);
		merge(c, acc, &s);
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT: {
		struct qres q;

		plan_node(c, sc, sc->ctes, n, &q);
		cs_whole(c, &q.cols, acc);
		merge_pred(c, acc, &q.aux);
		break;
	}
	default:
		ev_children(c, sc, &n->base, acc);
		break;
	}
	c->depth--;
}

/* (p).col where p is a FROM item and no column: the same as p.col. Returns 1 with out set. */
static int field_of_row(struct ctx *c, const struct scope *sc, const PgQuery__AIndirection *ai,
			struct src *out)
{
	const PgQuery__Node *arg = ai->arg;
	const struct scope *lv;
	PgQuery__Node *fields[2];
	PgQuery__ColumnRef cr = PG_QUERY__COLUMN_REF__INIT;
	const char *nm;
	struct src s;

	if (ai->n_indirection != 1 || !nstr(ai->indirection[0]) || !arg ||
	    arg->node_case != PG_QUERY__NODE__NODE_COLUMN_REF || arg->column_ref->n_fields != 1 ||
	    !(nm = nstr(arg->column_ref->fields[0])) || !find_rte(sc, NULL, nm, &lv))
		return 0;
	for (const struct scope *l = sc; l; l = l->outer)
		for (int i = 0; i < l->n; i++)
			if (l->r[i].unq && rte_col(c, l, &l->r[i], nm, &s))
				return 0; /* p is (or may be) a column: a field of a composite */
	fields[0] = arg->column_ref->fields[0];
	fields[1] = ai->indirection[0];
	cr.n_fields = 2;
	cr.fields = fields;
	if (!colref(c, sc, &cr, out))
		derive(out);
	return 1;
}

/* Does this expression give its free text column's text as it is, for the detectors to read?
 * A short list: one of several values chosen whole (coalesce, greatest, least, min, max,
 * array_agg, an array element), a cast to unbounded text, a whitespace trim, a JSON field, a
 * case change that every detector still matches (case_safe). Not concatenation (a digit written
 * next to an SSN hides it from a detector that wants no digit around it). */
/* Does a case change keep every detector's match? The digits' detectors do not care, e-mail
 * takes both cases; the MRN pattern is the policy's and may be case-sensitive: a case change
 * is kept when the pattern has no letter of the other case (or says (?i)). upper: 1, lower: 0 */
static int case_safe(const struct ctx *c, int upper)
{
	const char *pat;

	if (!c->mp || !(c->mp->detectors & 1u << DET_MRN))
		return 1;
	pat = c->mp->mrn_pattern[0] ? c->mp->mrn_pattern : "MRN-[0-9]{8}";
	if (!strncmp(pat, "(?i)", 4))
		return 1;
	for (; *pat; pat++)
		if (upper ? (*pat >= 'a' && *pat <= 'z') : (*pat >= 'A' && *pat <= 'Z'))
			return 0;
	return 1;
}

static int free_plain(const struct ctx *c, const PgQuery__Node *n, int depth)
{
	const char *schema, *name;

	if (!n || depth > 32)
		return 0;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF:
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_PARAM_REF:
		return 1;
	case PG_QUERY__NODE__NODE_TYPE_CAST: {
		const PgQuery__TypeName *t = n->type_cast->type_name;

		if (!t || t->n_typmods || t->n_array_bounds)
			return 0;
		qualname(t->names, t->n_names, &schema, &name);
		return name && (!strcmp(name, "text") || !strcmp(name, "varchar")) &&
		       free_plain(c, n->type_cast->arg, depth + 1);
	}
	case PG_QUERY__NODE__NODE_FUNC_CALL: {
		const PgQuery__FuncCall *fc = n->func_call;
		static const char *const choose[] = {"min", "max", "array_agg", "coalesce", NULL};
		static const char *const trims[] = {"btrim", "ltrim", "rtrim", NULL};

		qualname(fc->funcname, fc->n_funcname, &schema, &name);
		if (!name || (schema && strcmp(schema, "pg_catalog")) || fc->agg_star)
			return 0;
		if (!in_list(choose, name, 0) && !(in_list(trims, name, 0) && fc->n_args == 1) &&
		    !(fc->n_args == 1 && ((!strcmp(name, "upper") && case_safe(c, 1)) ||
					  (!strcmp(name, "lower") && case_safe(c, 0)))))
			return 0;
		for (size_t i = 0; i < fc->n_args; i++)
			if (!free_plain(c, fc->args[i], depth + 1))
				return 0;
		return 1;
	}
	case PG_QUERY__NODE__NODE_COALESCE_EXPR:
		for (size_t i = 0; i < n->coalesce_expr->n_args; i++)
			if (!free_plain(c, n->coalesce_expr->args[i], depth + 1))
				return 0;
		return 1;
	case PG_QUERY__NODE__NODE_MIN_MAX_EXPR:
		for (size_t i = 0; i < n->min_max_expr->n_args; i++)
			if (!free_plain(c, n->min_max_expr->args[i], depth + 1))
				return 0;
		return 1;
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		return free_plain(c, n->a_indirection->arg, depth + 1);
	case PG_QUERY__NODE__NODE_A_EXPR: {
		const PgQuery__AExpr *e = n->a_expr;

		if (e->kind != PG_QUERY__A__EXPR__KIND__AEXPR_OP || e->n_name != 1 ||
		    !(name = nstr(e->name[0])))
			return 0;
		return (!strcmp(name, "->>") || !strcmp(name, "->") || !strcmp(name, "#>>") ||
			!strcmp(name, "#>")) &&
		       free_plain(c, e->lexpr, depth + 1);
	}
	default:
		return 0;
	}
}

/* An expression's provenance: exactly a column (derived as that column), or computed. */
static void expr_src(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *out)
{
	src_none(out);
	if (!n)
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_COLUMN_REF) {
		if (!colref(c, sc, n->column_ref, out))
			derive(out);
		return;
	}
	if (n->node_case == PG_QUERY__NODE__NODE_A_INDIRECTION &&
	    field_of_row(c, sc, n->a_indirection, out))
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_SUB_LINK) {
		if (c->depth > MP_MAX_DEPTH * 2) {
			src_unknown(out, "nesting");
			return;
		}
		c->depth++;
		sublink(c, sc, n->sub_link, out);
		c->depth--;
		return;
	}
	ev(c, sc, n, out);
	derive(out);
	if (out->rule == MASK_RULE_FREE && free_plain(c, n, 0))
		out->derived = 0;
}

/* A clause read outside the result (WHERE, ON, GROUP BY, ...): a probe when masked. */
static void clause(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct qres *q)
{
	struct src s;

	if (!n)
		return;
	src_none(&s);
	ev(c, sc, n, &s);
	record_probe(c, &s);
	merge(c, &q->aux, &s);
}

/* ---- output column names (FigureColname, enough to find a subquery's columns by name) ---- */

static const char *colname(const PgQuery__Node *n, int depth)
{
	const char *schema, *name;

	if (!n || depth > 8)
		return "?column?";
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF: {
		const PgQuery__ColumnRef *cr = n->column_ref;
		const char *s = cr->n_fields ? nstr(cr->fields[cr->n_fields - 1]) : NULL;

		return s ? s : "?column?";
	}
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		for (size_t i = n->a_indirection->n_indirection; i > 0; i--) {
			const char *s = nstr(n->a_indirection->indirection[i - 1]);

			if (s)
				return s;
		}
		return colname(n->a_indirection->arg, depth + 1);
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		qualname(n->func_call->funcname, n->func_call->n_funcname, &schema, &name);
		return name ? name : "?column?";
	case PG_QUERY__NODE__NODE_TYPE_CAST: {
		const char *s = colname(n->type_cast->arg, depth + 1);

		if (strcmp(s, "?column?") || !n->type_cast->type_name)
			return s;
		qualname(n->type_cast->type_name->names, n->type_cast->type_name->n_names, &schema,
			 &name);
		return name ? name : "?column?";
	}
	case PG_QUERY__NODE__NODE_CASE_EXPR:
		return "case";
	case PG_QUERY__NODE__NODE_COALESCE_EXPR:
		return "coalesce";
	case PG_QUERY__NODE__NODE_A_ARRAY_EXPR:
		return "array";
	case PG_QUERY__NODE__NODE_ROW_EXPR:
		return "row";
	case PG_QUERY__NODE__NODE_MIN_MAX_EXPR:
		return n->min_max_expr->op == PG_QUERY__MIN_MAX_OP__IS_GREATEST ? "greatest"
										: "least";
	case PG_QUERY__NODE__NODE_SUB_LINK:
		if (n->sub_link->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXISTS_SUBLINK)
			return "exists";
		if (n->sub_link->sub_link_type == PG_QUERY__SUB_LINK_TYPE__ARRAY_SUBLINK)
			return "array";
		if (n->sub_link->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXPR_SUBLINK &&
		    n->sub_link->subselect &&
		    n->sub_link->subselect->node_case == PG_QUERY__NODE__NODE_SELECT_STMT) {
			const PgQuery__SelectStmt *s = n->sub_link->subselect->select_stmt;

			while (s->larg && s->op > PG_QUERY__SET_OPERATION__SETOP_NONE)
				s = s->larg;
			if (s->n_target_list &&
			    s->target_list[0]->node_case == PG_QUERY__NODE__NODE_RES_TARGET) {
				const PgQuery__ResTarget *rt = s->target_list[0]->res_target;

				return rt->name && *rt->name ? rt->name
							     : colname(rt->val, depth + 1);
			}
		}
		return "?column?";
	default:
		return "?column?";
	}
}

/* ---- target lists ---- */

static int is_star_ref(const PgQuery__Node *n)
{
	const PgQuery__ColumnRef *cr;

	if (!n || n->node_case != PG_QUERY__NODE__NODE_COLUMN_REF)
		return 0;
	cr = n->column_ref;
	return cr->n_fields &&
	       cr->fields[cr->n_fields - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR;
}

static void star(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
		 struct colset *out)
{
	const char *schema = NULL, *rel;
	const struct scope *lv;
	const struct rte *r;
	struct src u;

	if (cr->n_fields == 1) {
		for (int i = 0; i < sc->n; i++)
			if (sc->r[i].unq)
				rte_star(c, sc, &sc->r[i], out, 0);
		return;
	}
	rel = nstr(cr->fields[cr->n_fields - 2]);
	if (cr->n_fields >= 3)
		schema = nstr(cr->fields[cr->n_fields - 3]);
	r = rel ? find_rte(sc, schema, rel, &lv) : NULL;
	if (!r) {
		src_unknown(&u, rel ? rel : "*");
		cs_unknown(c, out, &u);
		return;
	}
	rte_star(c, lv, r, out, 0);
}

static void targets(struct ctx *c, const struct scope *sc, PgQuery__Node **tl, size_t n,
		    struct colset *out)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt;
		const PgQuery__Node *v;
		struct src s;

		if (tl[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET) {
			src_unknown(&s, "target");
			cs_push(c, out, "?column?", &s);
			continue;
		}
		rt = tl[i]->res_target;
		v = rt->val;
		if (is_star_ref(v)) {
			star(c, sc, v->column_ref, out);
			continue;
		}
		if (v && v->node_case == PG_QUERY__NODE__NODE_A_INDIRECTION &&
		    v->a_indirection->n_indirection &&
		    v->a_indirection->indirection[v->a_indirection->n_indirection - 1]->node_case ==
			PG_QUERY__NODE__NODE_A_STAR) {
			/* (p).*: p's columns when p is a FROM item; else a composite of unknown
			 * width */
			const PgQuery__Node *arg = v->a_indirection->arg;
			const struct scope *lv;
			const struct rte *r = NULL;
			const char *nm;

			if (v->a_indirection->n_indirection == 1 && arg &&
			    arg->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
			    arg->column_ref->n_fields == 1 &&
			    (nm = nstr(arg->column_ref->fields[0])))
				r = find_rte(sc, NULL, nm, &lv);
			if (r) {
				rte_star(c, lv, r, out, 0);
			} else {
				expr_src(c, sc, v, &s);
				cs_unknown(c, out, &s);
			}
			continue;
		}
		expr_src(c, sc, v, &s);
		cs_push(c, out, rt->name && *rt->name ? rt->name : colname(v, 0), &s);
	}
}

/* ORDER BY / DISTINCT ON / GROUP BY item: an output column by name or position, else an
 * expression over the FROM items. */
static void sort_item(struct ctx *c, const struct scope *sc, const PgQuery__Node *n,
		      const struct colset *outcols, int names_first, struct qres *q)
{
	const PgQuery__Node *e = n;
	struct src s;

	if (!n)
		return;
	if (e->node_case == PG_QUERY__NODE__NODE_SORT_BY) {
		if (e->sort_by->n_use_op) { /* ORDER BY x USING op: op compares the values */
			const char *schema, *name;

			src_none(&s);
			ev(c, sc, e->sort_by->node, &s);
			qualname(e->sort_by->use_op, e->sort_by->n_use_op, &schema, &name);
			operator_use(c, schema, name, &s, &s);
		}
		e = e->sort_by->node;
	}
	if (!e)
		return;
	if (e->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	    e->a_const->val_case == PG_QUERY__A__CONST__VAL_IVAL && e->a_const->ival) {
		int k = e->a_const->ival->ival;

		if (c->out)
			c->out->const_sensitive = 1; /* ORDER BY 2: the value chooses the column */
		if (k >= 1 && k <= outcols->n) {
			s = outcols->v[k - 1].s;
			record_probe(c, &s);
			merge(c, &q->aux, &s);
		} else if (outcols->unknown) {
			s = outcols->unk;
			record_probe(c, &s);
			merge(c, &q->aux, &s);
		}
		return;
	}
	if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_REF && e->column_ref->n_fields == 1 &&
	    nstr(e->column_ref->fields[0])) {
		/* ORDER BY prefers an output column of that name, GROUP BY an input one; where
		 * both exist both count. An output name that is no input column is not
		 * unknown. */
		const char *nm = nstr(e->column_ref->fields[0]);
		struct src in;
		int found = 0;

		src_none(&s);
		for (int i = 0; i < outcols->n; i++)
			if (!strcmp(outcols->v[i].name, nm)) {
				merge(c, &s, &outcols->v[i].s);
				found = 1;
			}
		colref(c, sc, e->column_ref, &in);
		if (!found || in.rule != MASK_RULE_UNKNOWN)
			merge(c, &s, &in);
		record_probe(c, &s);
		merge(c, &q->aux, &s);
		return;
	}
	clause(c, sc, e, q);
}

/* ---- FROM ---- */

static const struct cte *find_cte(const struct cte *ctes, const char *name)
{
	for (const struct cte *t = ctes; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static void rel_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rv)
{
	const char *schema = rv->schemaname && *rv->schemaname ? rv->schemaname : NULL;
	const char *name = rv->relname ? rv->relname : "";
	const char *alias = rv->alias && rv->alias->aliasname && *rv->alias->aliasname
				? rv->alias->aliasname
				: NULL;
	const struct cte *t = schema ? NULL : find_cte(sc->ctes, name);
	const struct cat_rel *rels[MP_MAX_SAME_NAME];
	int nr = 0;
	struct rte *r;

	int shadowed = 0;

	for (int k = 0; !t && k < c->nshadow && !shadowed; k++)
		/* the session made a relation of this name: whatever the catalog says of the
		 * name, this one is not known */
		shadowed = !strcmp(c->shadow[k], name);
	if (shadowed) {
		record_unknown_rel(c, schema, name);
		r = add_rte(c, sc, RTE_UNKNOWN);
		if (!r)
			return;
	} else if (t) {
		r = add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = t->cols;
	} else if (c->cat &&
		   (nr = cat_rels_by_name(c->cat, schema, name, rels, MP_MAX_SAME_NAME)) > 0) {
		struct colset merged = {0}, bypos = {0};
		int differ = 0;

		src_none(&merged.unk);
		src_none(&bypos.unk);
		for (int k = 0; k < nr; k++) {
			struct colset one;

			rel_cols(c, rels[k], &one);
			if (k == 0) {
				cs_append(c, &merged, &one);
				cs_append(c, &bypos, &one);
				continue;
			}
			/* the same name in another schema (search_path decides): the union */
			differ |= one.n != merged.n;
			for (int i = 0; i < one.n; i++) {
				int hit = 0;

				for (int j = 0; j < merged.n; j++)
					if (!strcmp(merged.v[j].name, one.v[i].name)) {
						merge(c, &merged.v[j].s, &one.v[i].s);
						hit = 1;
						differ |= i != j;
					}
				if (!hit) {
					cs_push(c, &merged, one.v[i].name, &one.v[i].s);
					differ = 1;
				}
				if (i < bypos.n)
					merge(c, &bypos.v[i].s, &one.v[i].s);
				else
					cs_push(c, &bypos, one.v[i].name, &one.v[i].s);
			}
			if (one.unknown) {
				cs_unknown(c, &merged, &one.unk);
				cs_unknown(c, &bypos, &one.unk);
			}
		}
		r = add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = merged;
		if (differ && (r->starcols = amalloc(c, sizeof(*r->starcols))))
			*r->starcols = bypos;
	} else if (is_system(schema, name)) {
		r = add_rte(c, sc, RTE_SYSTEM);
		if (!r)
			return;
	} else if (c->cat) {
		record_unknown_rel(c, schema, name);
		r = add_rte(c, sc, RTE_UNKNOWN);
		if (!r)
			return;
	} else {
		r = add_rte(c, sc, RTE_BYNAME);
		if (!r)
			return;
	}
	snprintf(r->relname, CAT_NAME, "%s", name);
	snprintf(r->name, CAT_NAME, "%s", alias ? alias : name);
	if (!alias && schema)
		snprintf(r->schema, CAT_NAME, "%s", schema);
	if (rv->alias && r->kind == RTE_COLS)
		cs_rename(c, &r->cols, rv->alias->colnames, rv->alias->n_colnames);
}

/* How many columns a built-in set-returning function gives; -1 not known. */
static int func_width(const char *name, size_t nargs)
{
	static const char *const one[] = {"generate_series",
					  "generate_subscripts",
					  "regexp_matches",
					  "regexp_split_to_table",
					  "string_to_table",
					  "json_array_elements",
					  "jsonb_array_elements",
					  "json_array_elements_text",
					  "jsonb_array_elements_text",
					  "json_object_keys",
					  "jsonb_object_keys",
					  "jsonb_path_query",
					  NULL};
	static const char *const two[] = {"json_each", "jsonb_each", "json_each_text",
					  "jsonb_each_text", NULL};

	if (!name)
		return -1;
	if (!strcmp(name, "unnest"))
		return nargs ? (int)nargs : 1;
	if (in_list(one, name, 0))
		return 1;
	if (in_list(two, name, 0))
		return 2;
	return -1;
}

static void func_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeFunction *rf)
{
	struct src s;
	int width = 0, known = 1;
	const char *fname = NULL;
	struct rte *r;

	src_none(&s);
	for (size_t i = 0; i < rf->n_functions; i++) {
		const PgQuery__Node *it = rf->functions[i];
		const PgQuery__Node *fn = NULL;
		size_t ndef = 0;

		/* each is a List: the call, then its column definitions (or nothing) */
		if (it->node_case == PG_QUERY__NODE__NODE_LIST && it->list->n_items) {
			fn = it->list->items[0];
			if (it->list->n_items > 1 &&
			    it->list->items[1]->node_case == PG_QUERY__NODE__NODE_LIST)
				ndef = it->list->items[1]->list->n_items;
		} else {
			fn = it;
		}
		ev(c, sc, fn, &s);
		if (fn && fn->node_case == PG_QUERY__NODE__NODE_FUNC_CALL) {
			const char *schema, *name;
			int w;

			qualname(fn->func_call->funcname, fn->func_call->n_funcname, &schema,
				 &name);
			fname = name;
			w = ndef ? (int)ndef : func_width(name, fn->func_call->n_args);
			if (w < 0)
				known = 0;
			else
				width += w;
		} else {
			known = 0;
		}
	}
	if (rf->n_coldeflist)
		width = (int)rf->n_coldeflist, known = 1;
	if (rf->ordinality)
		width++;
	derive(&s);
	r = add_rte(c, sc, RTE_FUNC);
	if (!r)
		return;
	r->cols.unk = s;
	if (known && width <= MP_MAX_COLS) {
		for (int i = 0; i < width; i++)
			cs_push(c, &r->cols, width == 1 && fname ? fname : "", &s);
	} else {
		r->cols.unknown = 1;
	}
	if (rf->alias && rf->alias->aliasname && *rf->alias->aliasname) {
		snprintf(r->name, CAT_NAME, "%s", rf->alias->aliasname);
		if (width == 1 && known && !rf->alias->n_colnames && r->cols.n)
			snprintf(r->cols.v[0].name, CAT_NAME, "%s", rf->alias->aliasname);
		cs_rename(c, &r->cols, rf->alias->colnames, rf->alias->n_colnames);
	} else {
		snprintf(r->name, CAT_NAME, "%s", fname ? fname : "");
	}
}

static int from_item(struct ctx *c, struct scope *sc, const PgQuery__Node *n, int depth);

static void join(struct ctx *c, struct scope *sc, const PgQuery__JoinExpr *j, int depth)
{
	int start = sc->n, l, rr;
	struct qres dummy;
	struct rte *r;
	const char *alias =
	    j->alias && j->alias->aliasname && *j->alias->aliasname ? j->alias->aliasname : NULL;
	char using[64][CAT_NAME];
	int nusing = 0;

	memset(&dummy, 0, sizeof(dummy));
	src_none(&dummy.aux);
	l = from_item(c, sc, j->larg, depth + 1);
	rr = from_item(c, sc, j->rarg, depth + 1);
	if (l < 0 || rr < 0 || l >= sc->n || rr >= sc->n)
		return;
	/* the sides answer unqualified names while ON is read */
	clause(c, sc, j->quals, &dummy);
	for (size_t i = 0; i < j->n_using_clause && nusing < 64; i++)
		if (nstr(j->using_clause[i]))
			snprintf(using[nusing++], CAT_NAME, "%s", nstr(j->using_clause[i]));
	if (j->is_natural && sc->r[l].kind == RTE_COLS && sc->r[rr].kind == RTE_COLS)
		for (int a = 0; a < sc->r[l].cols.n && nusing < 64; a++)
			for (int b = 0; b < sc->r[rr].cols.n; b++)
				if (!strcmp(sc->r[l].cols.v[a].name, sc->r[rr].cols.v[b].name)) {
					snprintf(using[nusing++], CAT_NAME, "%s",
						 sc->r[l].cols.v[a].name);
					break;
				}
	/* USING / NATURAL compare the columns with =: a probe like ON */
	for (int k = 0; k < nusing; k++) {
		struct src a, b, both;

		src_none(&both);
		if (rte_col(c, sc, &sc->r[l], using[k], &a)) {
			record_probe(c, &a);
			merge(c, &both, &a);
		}
		if (rte_col(c, sc, &sc->r[rr], using[k], &b)) {
			record_probe(c, &b);
			merge(c, &both, &b);
		}
		operator_use(c, NULL, "=", &both, &both);
	}
	for (int i = start; i < sc->n; i++) {
		sc->r[i].unq = 0;
		if (alias)
			sc->r[i].named = 0;
	}
	if (sc->r[l].kind == RTE_COLS && sc->r[rr].kind == RTE_COLS && !sc->r[l].cols.unknown &&
	    !sc->r[rr].cols.unknown) {
		/* the join's columns as the server lists them: merged USING columns first */
		struct colset out = {0};
		const struct colset *lc = &sc->r[l].cols, *rc = &sc->r[rr].cols;

		src_none(&out.unk);
		for (int k = 0; k < nusing; k++) {
			struct src a, b;
			int fa = rte_col(c, sc, &sc->r[l], using[k], &a);
			int fb = rte_col(c, sc, &sc->r[rr], using[k], &b);

			if (!fa)
				a = b;
			else if (fb && b.rule != MASK_RULE_NONE) {
				if (a.rule != MASK_RULE_NONE)
					derive(&a);
				merge(c, &a, &b);
			}
			cs_push(c, &out, using[k], &a);
		}
		for (int side = 0; side < 2; side++) {
			const struct colset *cs = side ? rc : lc;

			for (int i = 0; i < cs->n; i++) {
				int merged = 0;

				for (int k = 0; k < nusing; k++)
					merged |= !strcmp(cs->v[i].name, using[k]);
				if (!merged)
					cs_push(c, &out, cs->v[i].name, &cs->v[i].s);
			}
		}
		r = add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = out;
	} else {
		r = add_rte(c, sc, RTE_JOIN);
		if (!r)
			return;
		r->left = l;
		r->right = rr;
	}
	r->named = alias != NULL;
	snprintf(r->name, CAT_NAME, "%s", alias ? alias : "");
	if (alias && r->kind == RTE_COLS)
		cs_rename(c, &r->cols, j->alias->colnames, j->alias->n_colnames);
}

/* Adds one FROM item (and, for a join, its parts); returns its index or -1. */
static int from_item(struct ctx *c, struct scope *sc, const PgQuery__Node *n, int depth)
{
	struct rte *r;

	if (!n)
		return -1;
	if (depth > MP_MAX_DEPTH || budget(c)) {
		r = add_rte(c, sc, RTE_UNKNOWN);
		if (r)
			snprintf(r->relname, CAT_NAME, "nesting");
		return r ? sc->n - 1 : -1;
	}
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_RANGE_VAR:
		rel_rte(c, sc, n->range_var);
		break;
	case PG_QUERY__NODE__NODE_RANGE_SUBSELECT: {
		const PgQuery__RangeSubselect *rs = n->range_subselect;
		struct qres q;

		/* LATERAL sees the FROM items before it; otherwise only outer queries */
		plan_node(c, rs->lateral ? sc : sc->outer, sc->ctes, rs->subquery, &q);
		r = add_rte(c, sc, RTE_COLS);
		if (!r)
			return -1;
		r->cols = q.cols;
		if (rs->alias) {
			snprintf(r->name, CAT_NAME, "%s", rs->alias->aliasname);
			cs_rename(c, &r->cols, rs->alias->colnames, rs->alias->n_colnames);
		} else {
			r->named = 0;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_RANGE_FUNCTION:
		func_rte(c, sc, n->range_function);
		break;
	case PG_QUERY__NODE__NODE_JOIN_EXPR:
		join(c, sc, n->join_expr, depth);
		break;
	case PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE: {
		struct qres dummy;

		memset(&dummy, 0, sizeof(dummy));
		if (from_item(c, sc, n->range_table_sample->relation, depth + 1) < 0)
			return -1;
		for (size_t i = 0; i < n->range_table_sample->n_args; i++)
			clause(c, sc, n->range_table_sample->args[i], &dummy);
		clause(c, sc, n->range_table_sample->repeatable, &dummy);
		return sc->n - 1;
	}
	case PG_QUERY__NODE__NODE_RANGE_TABLE_FUNC: {
		const PgQuery__RangeTableFunc *tf = n->range_table_func;
		struct src s;

		src_none(&s);
		ev(c, sc, tf->docexpr, &s);
		ev(c, sc, tf->rowexpr, &s);
		for (size_t i = 0; i < tf->n_namespaces; i++)
			ev(c, sc, tf->namespaces[i], &s);
		for (size_t i = 0; i < tf->n_columns; i++)
			ev(c, sc, tf->columns[i], &s);
		derive(&s);
		r = add_rte(c, sc, RTE_FUNC);
		if (!r)
			return -1;
		r->cols.unk = s;
		for (size_t i = 0; i < tf->n_columns; i++) {
			const PgQuery__Node *col = tf->columns[i];

			cs_push(c, &r->cols,
				col->node_case == PG_QUERY__NODE__NODE_RANGE_TABLE_FUNC_COL
				    ? col->range_table_func_col->colname
				    : "",
				&s);
		}
		if (tf->alias && tf->alias->aliasname) {
			snprintf(r->name, CAT_NAME, "%s", tf->alias->aliasname);
			cs_rename(c, &r->cols, tf->alias->colnames, tf->alias->n_colnames);
		}
		break;
	}
	default: {
		struct src s;

		src_none(&s);
		ev(c, sc, n, &s);
		r = add_rte(c, sc, RTE_UNKNOWN);
		if (!r)
			return -1;
		snprintf(r->relname, CAT_NAME, "?");
		break;
	}
	}
	return sc->n ? sc->n - 1 : -1;
}

/* ---- WITH ---- */

static int same_ranks(const struct ctx *c, const struct colset *a, const struct colset *b)
{
	if (a->n != b->n || a->unknown != b->unknown)
		return 0;
	for (int i = 0; i < a->n; i++)
		if (rank(c, a->v[i].s.rule) != rank(c, b->v[i].s.rule))
			return 0;
	return !a->unknown || rank(c, a->unk.rule) == rank(c, b->unk.rule);
}

static const struct cte *with(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			      const PgQuery__WithClause *w)
{
	if (!w)
		return ctes;
	for (size_t i = 0; i < w->n_ctes; i++) {
		const PgQuery__CommonTableExpr *ce;
		struct cte *t;
		struct qres q;

		if (w->ctes[i]->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
			continue;
		ce = w->ctes[i]->common_table_expr;
		t = amalloc(c, sizeof(*t));
		if (!t)
			return ctes;
		snprintf(t->name, CAT_NAME, "%s", ce->ctename ? ce->ctename : "");
		src_none(&t->cols.unk);
		if (w->recursive && ce->ctequery &&
		    ce->ctequery->node_case == PG_QUERY__NODE__NODE_SELECT_STMT &&
		    ce->ctequery->select_stmt->op > PG_QUERY__SET_OPERATION__SETOP_NONE &&
		    ce->ctequery->select_stmt->larg) {
			/* WITH RECURSIVE: the first branch, then rounds over the whole query with
			 * itself in scope until its columns stop getting stronger */
			int round;

			plan_select(c, outer, ctes, ce->ctequery->select_stmt->larg, &q);
			t->cols = q.cols;
			cs_rename(c, &t->cols, ce->aliascolnames, ce->n_aliascolnames);
			t->next = ctes;
			for (round = 0; round < MP_CTE_ROUNDS; round++) {
				struct colset prev = t->cols;

				plan_node(c, outer, t, ce->ctequery, &q);
				cs_rename(c, &q.cols, ce->aliascolnames, ce->n_aliascolnames);
				for (int k = 0; k < q.cols.n && k < prev.n; k++)
					merge(c, &q.cols.v[k].s, &prev.v[k].s);
				t->cols = q.cols;
				if (same_ranks(c, &prev, &q.cols))
					break;
			}
			if (round == MP_CTE_ROUNDS) {
				struct src u;

				src_unknown(&u, t->name);
				for (int k = 0; k < t->cols.n; k++)
					t->cols.v[k].s = u;
			}
		} else {
			plan_node(c, outer, ctes, ce->ctequery, &q);
			t->cols = q.cols;
			cs_rename(c, &t->cols, ce->aliascolnames, ce->n_aliascolnames);
			t->next = ctes;
		}
		ctes = t;
	}
	return ctes;
}

/* ---- queries ---- */

static void select_tail(struct ctx *c, const struct scope *sc, const PgQuery__SelectStmt *s,
			struct qres *q, int names_first)
{
	for (size_t i = 0; i < s->n_sort_clause; i++)
		sort_item(c, sc, s->sort_clause[i], &q->cols, names_first, q);
	clause(c, sc, s->limit_count, q);
	clause(c, sc, s->limit_offset, q);
}

/* UNION / INTERSECT / EXCEPT: column i is the strongest of every branch's column i. The
 * left-deep chains that long UNION ALLs make are walked with a stack, not recursion. */
static void plan_setop(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		       const PgQuery__SelectStmt *s, struct qres *q)
{
	const PgQuery__SelectStmt **stack;
	int sp = 0, cap = 64, first = 1;

	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	src_none(&q->cols.unk);
	stack = amalloc(c, (size_t)cap * sizeof(*stack));
	if (!stack) {
		qres_unknown(c, q, "memory");
		return;
	}
	if (s->larg)
		stack[sp++] = s->rarg;
	if (s->larg)
		stack[sp++] = s->larg;
	while (sp > 0) {
		const PgQuery__SelectStmt *b = stack[--sp];
		struct qres bq;

		if (!b)
			continue;
		if (budget(c))
			break;
		if (b->op > PG_QUERY__SET_OPERATION__SETOP_NONE && !b->with_clause &&
		    !b->n_sort_clause && !b->limit_count && !b->limit_offset) {
			if (sp + 2 > cap) {
				const PgQuery__SelectStmt **ns =
				    amalloc(c, (size_t)cap * 2 * sizeof(*ns));

				if (!ns)
					break;
				memcpy(ns, stack, (size_t)sp * sizeof(*ns));
				stack = ns;
				cap *= 2;
			}
			stack[sp++] = b->rarg;
			stack[sp++] = b->larg;
			continue;
		}
		c->depth++;
		plan_select(c, outer, ctes, b, &bq);
		c->depth--;
		merge(c, &q->aux, &bq.aux);
		if (first) {
			q->cols = bq.cols;
			first = 0;
			continue;
		}
		{
			struct colset m = {0};

			src_none(&m.unk);
			cs_append(c, &m, &q->cols); /* a copy: branches may share column arrays */
			for (int i = 0; i < bq.cols.n; i++) {
				if (i < m.n) {
					struct src *a = &m.v[i].s, *b2 = &bq.cols.v[i].s;
					/* A masked column beside anything but itself (a constant,
					 * another column) is derived: `SELECT email ... UNION ALL
					 * SELECT 'guess'` must not hash the guess like an email. */
					int any =
					    a->rule != MASK_RULE_NONE || b2->rule != MASK_RULE_NONE;
					/* free text beside anything unmasked is still its text */
					int plain = (a->rule == MASK_RULE_NONE ||
						     a->rule == MASK_RULE_FREE) &&
						    (b2->rule == MASK_RULE_NONE ||
						     b2->rule == MASK_RULE_FREE);
					int d = any && ((!plain && strcmp(a->source, b2->source)) ||
							a->derived || b2->derived);

					merge(c, a, b2);
					if (any)
						a->derived = d;
				} else {
					cs_unknown(c, &m, &bq.cols.v[i].s);
				}
			}
			if (bq.cols.unknown)
				cs_unknown(c, &m, &bq.cols.unk);
			q->cols = m;
		}
	}
	if (c->failed)
		qres_unknown(c, q, "work");
}

static void plan_select(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__SelectStmt *s, struct qres *q)
{
	struct scope sc;

	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	src_none(&q->cols.unk);
	if (!s) {
		qres_unknown(c, q, "query");
		return;
	}
	if (c->depth > MP_MAX_DEPTH || budget(c)) {
		qres_unknown(c, q, "nesting");
		return;
	}
	c->depth++;
	ctes = with(c, outer, ctes, s->with_clause);
	memset(&sc, 0, sizeof(sc));
	sc.outer = outer;
	sc.ctes = ctes;
	if (s->op > PG_QUERY__SET_OPERATION__SETOP_NONE) {
		struct rte *r;

		plan_setop(c, outer, ctes, s, q);
		/* ORDER BY and LIMIT of a set operation see its output columns only */
		r = add_rte(c, &sc, RTE_COLS);
		if (r) {
			r->cols = q->cols;
			r->named = 0;
		}
		select_tail(c, &sc, s, q, 1);
		c->depth--;
		return;
	}
	if (s->n_values_lists) {
		/* VALUES: clean unless a row refers to columns (LATERAL, correlated) */
		for (size_t i = 0; i < s->n_values_lists; i++) {
			const PgQuery__Node *row = s->values_lists[i];

			if (row->node_case != PG_QUERY__NODE__NODE_LIST)
				continue;
			for (size_t k = 0; k < row->list->n_items; k++) {
				struct src v;
				char nm[16];

				expr_src(c, &sc, row->list->items[k], &v);
				if (i == 0) {
					snprintf(nm, sizeof(nm), "column%zu", k + 1);
					cs_push(c, &q->cols, nm, &v);
				} else if (k < (size_t)q->cols.n) {
					if (v.rule != MASK_RULE_NONE &&
					    q->cols.v[k].s.rule != MASK_RULE_NONE)
						v.derived = 1;
					merge(c, &q->cols.v[k].s, &v);
				}
			}
		}
		select_tail(c, &sc, s, q, 1);
		c->depth--;
		return;
	}
	for (size_t i = 0; i < s->n_from_clause; i++)
		from_item(c, &sc, s->from_clause[i], 0);
	sc.windows = s->window_clause;
	sc.nwindows = s->n_window_clause;
	targets(c, &sc, s->target_list, s->n_target_list, &q->cols);
	clause(c, &sc, s->where_clause, q);
	for (size_t i = 0; i < s->n_group_clause; i++) {
		const PgQuery__Node *g = s->group_clause[i];

		if (g->node_case == PG_QUERY__NODE__NODE_GROUPING_SET) {
			for (size_t k = 0; k < g->grouping_set->n_content; k++)
				sort_item(c, &sc, g->grouping_set->content[k], &q->cols, 0, q);
		} else {
			sort_item(c, &sc, g, &q->cols, 0, q);
		}
	}
	clause(c, &sc, s->having_clause, q);
	for (size_t i = 0; i < s->n_window_clause; i++) {
		const PgQuery__Node *w = s->window_clause[i];

		if (w->node_case == PG_QUERY__NODE__NODE_WINDOW_DEF) {
			struct src t;

			src_none(&t);
			window(c, &sc, w->window_def, &t, 0);
			merge(c, &q->aux, &t);
		}
	}
	for (size_t i = 0; i < s->n_distinct_clause; i++)
		sort_item(c, &sc, s->distinct_clause[i], &q->cols, 1, q);
	select_tail(c, &sc, s, q, 1);
	c->depth--;
}

/* The DML target with what the statement writes into it: RETURNING shows the written values. */
static struct rte *target_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rv)
{
	struct rte *r;

	if (!rv)
		return NULL;
	rel_rte(c, sc, rv);
	if (!sc->n)
		return NULL;
	r = &sc->r[sc->n - 1];
	if (r->kind == RTE_COLS) {
		struct colset copy = {0};

		src_none(&copy.unk);
		cs_append(c, &copy, &r->cols); /* written columns change: a copy of the CTE's */
		r->cols = copy;
	}
	return r;
}

/* col := value in the target: the value's provenance is now the column's too. */
static void assign(struct ctx *c, struct scope *sc, int ti, const char *col, const struct src *v)
{
	struct rte *r;

	record_write(c, v);
	if (ti < 0 || ti >= sc->n || !col)
		return;
	r = &sc->r[ti];
	if (r->kind != RTE_COLS)
		return;
	for (int i = 0; i < r->cols.n; i++)
		if (!strcmp(r->cols.v[i].name, col) && v->rule != MASK_RULE_NONE) {
			struct src s = *v;

			derive(&s);
			merge(c, &r->cols.v[i].s, &s);
		}
}

static void set_list(struct ctx *c, struct scope *sc, int ti, PgQuery__Node **tl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt;
		struct src v;

		if (tl[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET)
			continue;
		rt = tl[i]->res_target;
		if (rt->val && rt->val->node_case == PG_QUERY__NODE__NODE_MULTI_ASSIGN_REF) {
			src_none(&v);
			ev(c, sc, rt->val->multi_assign_ref->source, &v);
			derive(&v);
		} else {
			expr_src(c, sc, rt->val, &v);
		}
		assign(c, sc, ti, rt->name, &v);
	}
}

static void returning(struct ctx *c, struct scope *sc, PgQuery__Node **tl, size_t n, struct qres *q)
{
	targets(c, sc, tl, n, &q->cols);
}

/* The scope of INSERT/UPDATE/DELETE/MERGE: WITH, then the target relation. Returns the target's
 * index in sc, or -1 with q unknown when the target cannot be planned. */
static int dml_scope(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		     const PgQuery__WithClause *w, const PgQuery__RangeVar *rel, struct scope *sc,
		     struct qres *q)
{
	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	memset(sc, 0, sizeof(*sc));
	sc->outer = outer;
	sc->ctes = with(c, outer, ctes, w);
	if (!target_rte(c, sc, rel)) {
		qres_unknown(c, q, "target");
		return -1;
	}
	return sc->n - 1;
}

static void plan_insert(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__InsertStmt *s, struct qres *q)
{
	struct scope sc;
	struct qres vq;
	int ti = dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q);

	if (ti < 0)
		return;
	if (s->select_stmt) {
		plan_node(c, outer, sc.ctes, s->select_stmt, &vq);
		for (int i = 0; i < vq.cols.n; i++) {
			const char *col = NULL;

			if (s->n_cols) {
				if ((size_t)i < s->n_cols &&
				    s->cols[i]->node_case == PG_QUERY__NODE__NODE_RES_TARGET)
					col = s->cols[i]->res_target->name;
			} else if (sc.r[ti].kind == RTE_COLS && i < sc.r[ti].cols.n) {
				col = sc.r[ti].cols.v[i].name;
			}
			assign(c, &sc, ti, col, &vq.cols.v[i].s);
		}
		if (vq.cols.unknown)
			assign(c, &sc, ti, NULL, &vq.cols.unk);
	}
	if (s->on_conflict_clause) {
		const PgQuery__OnConflictClause *oc = s->on_conflict_clause;
		struct rte *ex = add_rte(c, &sc, sc.r[ti].kind);
		struct qres dummy;

		if (ex) {
			/* EXCLUDED: the row proposed for insertion */
			struct rte *t = &sc.r[ti];

			ex->cols = t->cols;
			snprintf(ex->relname, CAT_NAME, "%s", t->relname);
			snprintf(ex->name, CAT_NAME, "excluded");
			ex->unq = 0;
		}
		memset(&dummy, 0, sizeof(dummy));
		set_list(c, &sc, ti, oc->target_list, oc->n_target_list);
		clause(c, &sc, oc->where_clause, &dummy);
	}
	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_update(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__UpdateStmt *s, struct qres *q)
{
	struct scope sc;
	int ti = dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q);

	if (ti < 0)
		return;
	for (size_t i = 0; i < s->n_from_clause; i++)
		from_item(c, &sc, s->from_clause[i], 0);
	clause(c, &sc, s->where_clause, q);
	set_list(c, &sc, ti, s->target_list, s->n_target_list);
	returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_delete(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__DeleteStmt *s, struct qres *q)
{
	struct scope sc;

	if (dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q) < 0)
		return;
	for (size_t i = 0; i < s->n_using_clause; i++)
		from_item(c, &sc, s->using_clause[i], 0);
	clause(c, &sc, s->where_clause, q);
	returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_merge(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		       const PgQuery__MergeStmt *s, struct qres *q)
{
	struct scope sc;
	int ti = dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q);

	if (ti < 0)
		return;
	from_item(c, &sc, s->source_relation, 0);
	clause(c, &sc, s->join_condition, q);
	for (size_t i = 0; i < s->n_merge_when_clauses; i++) {
		const PgQuery__MergeWhenClause *w;

		if (s->merge_when_clauses[i]->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
			continue;
		w = s->merge_when_clauses[i]->merge_when_clause;
		clause(c, &sc, w->condition, q);
		set_list(c, &sc, ti, w->target_list, w->n_target_list);
		for (size_t k = 0; k < w->n_values; k++) {
			struct src v;
			const char *col = NULL;

			expr_src(c, &sc, w->values[k], &v);
			if (k < w->n_target_list &&
			    w->target_list[k]->node_case == PG_QUERY__NODE__NODE_RES_TARGET)
				col = w->target_list[k]->res_target->name;
			assign(c, &sc, ti, col, &v);
		}
	}
	/* PostgreSQL 15's MERGE returns no rows */
	memset(&q->cols, 0, sizeof(q->cols));
	src_none(&q->cols.unk);
}

/* Any statement that can stand where a query does (subquery, CTE, COPY, DECLARE, ...). */
static void plan_node(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		      const PgQuery__Node *n, struct qres *q)
{
	if (!n) {
		qres_unknown(c, q, "query");
		return;
	}
	if (c->depth > MP_MAX_DEPTH || budget(c)) {
		qres_unknown(c, q, "nesting");
		return;
	}
	c->depth++;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		plan_select(c, outer, ctes, n->select_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		plan_insert(c, outer, ctes, n->insert_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		plan_update(c, outer, ctes, n->update_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		plan_delete(c, outer, ctes, n->delete_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		plan_merge(c, outer, ctes, n->merge_stmt, q);
		break;
	default:
		qres_unknown(c, q, "query");
		break;
	}
	c->depth--;
}

/* ---- views and tables ---- */

static int varint(const uint8_t *p, size_t end, size_t *i, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64 && *i < end; shift += 7) {
		uint8_t b = p[(*i)++];

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 1;
	}
	return 0;
}

/*
 * protobuf-c unpacks recursively and PostgreSQL's grammar nests without bound (a long UNION
 * ALL, a + b + c ...): measure how deep the messages nest, without recursion, before
 * unpacking. 1 when the tree is within the cap.
 */
static int pb_depth_ok(const uint8_t *p, size_t len)
{
	static __thread struct {
		const ProtobufCMessageDescriptor *d;
		size_t end;
	} st[MP_MAX_PB_DEPTH];
	int sp = 0;
	size_t i = 0;

	st[0].d = &pg_query__parse_result__descriptor;
	st[0].end = len;
	for (;;) {
		uint64_t tag, l;
		const ProtobufCFieldDescriptor *f;

		if (i >= st[sp].end) {
			if (!sp)
				return 1;
			i = st[sp--].end;
			continue;
		}
		if (!varint(p, st[sp].end, &i, &tag))
			return 0;
		switch (tag & 7) {
		case 0:
			if (!varint(p, st[sp].end, &i, &l))
				return 0;
			break;
		case 1:
			i += 8;
			break;
		case 5:
			i += 4;
			break;
		case 2:
			if (!varint(p, st[sp].end, &i, &l) || l > st[sp].end - i)
				return 0;
			f = st[sp].d ? protobuf_c_message_descriptor_get_field(st[sp].d,
									       (unsigned)(tag >> 3))
				     : NULL;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (sp + 1 >= MP_MAX_PB_DEPTH)
					return 0;
				sp++;
				st[sp].d = f->descriptor;
				st[sp].end = i + l;
				continue;
			}
			i += l;
			break;
		default:
			return 0;
		}
	}
}

static PgQuery__ParseResult *parse(const char *text, PgQueryProtobufParseResult *raw, char *err,
				   size_t errn)
{
	PgQuery__ParseResult *pr;

	*raw = pg_query_parse_protobuf(text);
	if (raw->error) {
		snprintf(err, errn, "%s",
			 raw->error->message ? raw->error->message : "parse error");
		pg_query_free_protobuf_parse_result(*raw);
		return NULL;
	}
	if (!pb_depth_ok((const uint8_t *)raw->parse_tree.data, raw->parse_tree.len)) {
		snprintf(err, errn, "statement nests deeper than hoop's cap");
		pg_query_free_protobuf_parse_result(*raw);
		return NULL;
	}
	pr = pg_query__parse_result__unpack(NULL, raw->parse_tree.len,
					    (const uint8_t *)raw->parse_tree.data);
	if (!pr) {
		snprintf(err, errn, "parse tree could not be read");
		pg_query_free_protobuf_parse_result(*raw);
	}
	return pr;
}

/* The rule of a relation's column by its identity: the names it has now and the names it had
 * when hoopd first read the database (cat_inherit), the stronger. A renamed masked column, or
 * a renamed table's masked columns, stay masked. */
static int ident_rule(const struct ctx *c, const struct cat_rel *r, const struct cat_col *col)
{
	int rule = mask_rule_match(c->mp, r->schema, r->name, col->name);

	if (r->was_name || col->was) {
		int w = mask_rule_match(c->mp, r->was_schema ? r->was_schema : r->schema,
					r->was_name ? r->was_name : r->name,
					col->was ? col->was : col->name);

		if (rank(c, w) > rank(c, rule))
			rule = w;
	}
	return rule;
}

/* Types whose values the detectors read as text (maskplan does not link the masking engine):
 * name, text, bpchar, varchar, json, jsonb, xml and their arrays. */
static int text_type(uint32_t oid)
{
	static const uint32_t text[] = {19,  25,  114,	142,  1042, 1043, 3802,
					1003, 1009, 199, 143, 1014, 1015, 3807};

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		if (oid == text[i])
			return 1;
	return 0;
}

/* A table column's rule: the policy's, or with detectors on, MASK_RULE_FREE for a text column
 * (or one of a type made after initdb, citext, a domain, that hoop cannot read) no rule names. */
static int col_rule(const struct ctx *c, const struct cat_rel *r, const struct cat_col *col)
{
	int rule = ident_rule(c, r, col);

	if (rule == MASK_RULE_NONE && c->mp && c->mp->detectors &&
	    (text_type(col->type_oid) || col->type_oid >= 16384))
		rule = MASK_RULE_FREE;
	return rule;
}

/* A view's output columns from its definition, with rules on the view's own columns on top. */
static void view_cols(struct ctx *c, const struct cat_rel *r, struct colset *out)
{
	PgQueryProtobufParseResult raw;
	PgQuery__ParseResult *pr;
	struct qres q;
	char err[256];
	struct src u;

	memset(out, 0, sizeof(*out));
	src_none(&out->unk);
	src_unknown(&u, r->name);
	if (c->view_depth >= MP_MAX_VIEW_DEPTH || strlen(r->viewdef) > MP_MAX_TEXT) {
		cs_unknown(c, out, &u);
		return;
	}
	{
		/* pg_get_viewdef's text, from hoopd's catalog connection (standard strings):
		 * read as it was written, whatever the session's statement was lexed under */
		struct pglex_saved sv;

		pglex_set(0, &sv);
		pr = parse(r->viewdef, &raw, err, sizeof(err));
		pglex_restore(&sv);
	}
	if (!pr) {
		cs_unknown(c, out, &u);
		return;
	}
	c->view_depth++;
	c->quiet++;
	if (pr->n_stmts == 1 && pr->stmts[0]->stmt)
		plan_node(c, NULL, NULL, pr->stmts[0]->stmt, &q);
	else
		qres_unknown(c, &q, r->name);
	c->quiet--;
	c->view_depth--;
	pg_query__parse_result__free_unpacked(pr, NULL);
	pg_query_free_protobuf_parse_result(raw);
	if (q.cols.unknown) {
		cs_unknown(c, out, &u);
		return;
	}
	if (!r->ncols) {
		*out = q.cols;
		for (int i = 0; i < out->n; i++) {
			int rule = mask_rule_match(c->mp, r->schema, r->name, out->v[i].name);
			struct src d;

			src_rule(&d, rule, r->name, out->v[i].name);
			merge(c, &out->v[i].s, &d);
		}
		return;
	}
	for (int i = 0; i < r->ncols; i++) {
		const struct cat_col *col = &r->cols[i];
		int pos = col->attnum - 1;
		struct src s, d;

		if (pos >= 0 && pos < q.cols.n)
			s = q.cols.v[pos].s;
		else
			src_unknown(&s, r->name);
		src_rule(&d, ident_rule(c, r, col), r->name, col->name);
		merge(c, &s, &d);
		cs_push(c, out, col->name, &s);
	}
}

static void rel_cols(struct ctx *c, const struct cat_rel *r, struct colset *out)
{
	struct vcache *v = NULL;
	int vi = -1;

	memset(out, 0, sizeof(*out));
	src_none(&out->unk);
	for (int i = 0; i < c->nvc; i++)
		if (c->vc[i].r == r) {
			if (c->vc[i].state == 1) { /* a view defined through itself */
				struct src u;

				src_unknown(&u, r->name);
				cs_unknown(c, out, &u);
				return;
			}
			*out = c->vc[i].cols;
			return;
		}
	if (c->nvc == c->capvc) {
		int ncap = c->capvc ? c->capvc * 2 : 16;
		struct vcache *nv = realloc(c->vc, (size_t)ncap * sizeof(*nv));

		if (!nv) {
			struct src u;

			c->failed = 1;
			src_unknown(&u, r->name);
			cs_unknown(c, out, &u);
			return;
		}
		c->vc = nv;
		c->capvc = ncap;
	}
	vi = c->nvc++;
	v = &c->vc[vi];
	memset(v, 0, sizeof(*v));
	v->r = r;
	v->state = 1;
	if ((r->kind == 'v' || r->kind == 'm') && r->viewdef) {
		view_cols(c, r, out);
	} else if (r->kind == 'v') {
		struct src u;

		src_unknown(&u, r->name); /* a view without its definition */
		cs_unknown(c, out, &u);
	} else {
		for (int i = 0; i < r->ncols; i++) {
			struct src s;

			src_rule(&s, col_rule(c, r, &r->cols[i]), r->name, r->cols[i].name);
			/* a partition answers to its parents' rules as well */
			int hops = 0;

			for (const struct cat_rel *p = r; p->parent_oid && c->cat;) {
				const struct cat_rel *up = cat_rel_by_oid(c->cat, p->parent_oid);
				struct src d;

				if (!up || up == r || ++hops > 8) /* a loop in pg_inherits? */
					break;
				src_rule(
				    &d,
				    mask_rule_match(c->mp, up->schema, up->name, r->cols[i].name),
				    up->name, r->cols[i].name);
				merge(c, &s, &d);
				p = up;
			}
			cs_push(c, out, r->cols[i].name, &s);
		}
	}
	/* c->vc may have moved while the view was planned */
	c->vc[vi].cols = *out;
	c->vc[vi].state = 2;
}

int maskplan_relcol(const struct catalog *cat, const struct mask_policy *mp,
		    const struct cat_rel *r, int attnum, int *derived)
{
	struct ctx c;
	struct colset cs;
	int rule = MASK_RULE_UNKNOWN, d = 1;

	if (derived)
		*derived = 1;
	if (!r)
		return MASK_RULE_UNKNOWN;
	memset(&c, 0, sizeof(c));
	c.cat = cat;
	c.mp = mp;
	rel_cols(&c, r, &cs);
	if (!c.failed) {
		const struct cat_col *col = cat_col_by_attnum(r, attnum);

		for (int i = 0; col && i < cs.n; i++)
			if (!strcmp(cs.v[i].name, col->name)) {
				rule = cs.v[i].s.rule;
				d = cs.v[i].s.derived;
				break;
			}
	}
	ctx_free(&c);
	if (derived)
		*derived = rule == MASK_RULE_NONE ? 0 : d;
	return rule;
}

/* ---- statements ---- */

static int defbool(const PgQuery__Node *arg)
{
	const char *s;

	if (!arg)
		return 1; /* (ANALYZE), HEADER: given without a value */
	if (arg->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
		return arg->boolean->boolval;
	if (arg->node_case == PG_QUERY__NODE__NODE_INTEGER)
		return arg->integer->ival != 0;
	s = nstr(arg);
	if (!s)
		return 1;
	return strcasecmp(s, "false") && strcasecmp(s, "off") && strcmp(s, "0") &&
	       strcasecmp(s, "f") && strcasecmp(s, "no");
}

static void copy_options(const PgQuery__CopyStmt *cs, struct mask_copy *o)
{
	int quote = 0, escape = 0, delim = 0, null = 0;
	const char *nul = NULL;

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < cs->n_options; i++) {
		const PgQuery__DefElem *d;
		const char *v;

		if (cs->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		d = cs->options[i]->def_elem;
		if (!d->defname)
			continue;
		v = nstr(d->arg);
		if (!strcmp(d->defname, "format") && v) {
			o->format = !strcasecmp(v, "csv") ? 1 : !strcasecmp(v, "binary") ? 2 : 0;
		} else if (!strcmp(d->defname, "delimiter") && v) {
			o->delim = v[0];
			delim = 1;
		} else if (!strcmp(d->defname, "quote") && v) {
			o->quote = v[0];
			quote = 1;
		} else if (!strcmp(d->defname, "escape") && v) {
			o->escape = v[0];
			escape = 1;
		} else if (!strcmp(d->defname, "null") && v) {
			nul = v;
			null = 1;
		} else if (!strcmp(d->defname, "header")) {
			o->header = defbool(d->arg);
		}
	}
	if (!delim)
		o->delim = o->format == 1 ? ',' : '\t';
	if (o->format == 1) {
		if (!quote)
			o->quote = '"';
		if (!escape)
			o->escape = o->quote;
	}
	snprintf(o->null_str, sizeof(o->null_str), "%s", null ? nul : o->format == 1 ? "" : "\\N");
}

static void plan_copy(struct ctx *c, const PgQuery__CopyStmt *cs, struct qres *q)
{
	struct maskplan *out = c->out;
	int to_client = !cs->is_from && !cs->is_program && !(cs->filename && *cs->filename);

	if (cs->is_from) { /* rows come from the client or a file: nothing goes out */
		out->returns_rows = 0;
		memset(q, 0, sizeof(*q));
		return;
	}
	if (cs->query) {
		plan_node(c, NULL, NULL, cs->query, q);
	} else {
		struct scope sc;
		struct qres dummy;

		memset(&sc, 0, sizeof(sc));
		memset(q, 0, sizeof(*q));
		src_none(&q->aux);
		src_none(&q->cols.unk);
		if (!cs->relation) {
			qres_unknown(c, q, "copy");
			return;
		}
		rel_rte(c, &sc, cs->relation);
		if (!sc.n) {
			qres_unknown(c, q, "copy");
			return;
		}
		if (!cs->n_attlist) {
			rte_star(c, &sc, &sc.r[0], &q->cols, 0);
		} else {
			for (size_t i = 0; i < cs->n_attlist; i++) {
				const char *nm = nstr(cs->attlist[i]);
				struct src s;

				if (!nm || !rte_col(c, &sc, &sc.r[0], nm, &s))
					src_unknown(&s, nm ? nm : "?");
				cs_push(c, &q->cols, nm ? nm : "?", &s);
			}
		}
		memset(&dummy, 0, sizeof(dummy));
		clause(c, &sc, cs->where_clause, &dummy);
	}
	if (!to_client) {
		/* TO a server file or program: the rows leave unmasked, not through hoop */
		for (int i = 0; i < q->cols.n; i++)
			record_write(c, &q->cols.v[i].s);
		if (q->cols.unknown)
			record_write(c, &q->cols.unk);
		out->returns_rows = 0;
		memset(q, 0, sizeof(*q));
		return;
	}
	out->returns_rows = 1;
	out->copy = 1;
	copy_options(cs, &out->copy_opts);
}

static int explain_analyze(const PgQuery__ExplainStmt *e)
{
	for (size_t i = 0; i < e->n_options; i++) {
		const PgQuery__DefElem *d;

		if (e->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		d = e->options[i]->def_elem;
		if (d->defname && !strcmp(d->defname, "analyze"))
			return defbool(d->arg);
	}
	return 0;
}

static void set_clean_cols(struct ctx *c, struct qres *q, int n, const char *name)
{
	struct src s;

	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	src_none(&s);
	for (int i = 0; i < n; i++)
		cs_push(c, &q->cols, name, &s);
}

/* The scope of the one relation a DDL statement works on (it returns no rows). 0 when there is
 * none, or the catalog does not know it: nothing to plan. */
static int ddl_scope(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rel)
{
	memset(sc, 0, sizeof(*sc));
	c->out->returns_rows = 0;
	if (!rel)
		return 0;
	rel_rte(c, sc, rel);
	return sc->n > 0;
}

/* DDL that derives stored values from a relation's columns: ALTER TABLE's expressions
 * (ADD COLUMN ... GENERATED ALWAYS AS (last_name) or DEFAULT, ALTER COLUMN ... TYPE ... USING,
 * SET EXPRESSION, CHECK) read the relation's columns and keep what they compute in another
 * column; a rule or trigger on it (whole_row) copies its rows' values wherever its actions
 * say. A masked column read there is a write of a masked value. */
static void plan_ddl(struct ctx *c, const PgQuery__RangeVar *rel, PgQuery__Node **cmds,
		     size_t ncmds, int whole_row)
{
	struct scope sc;
	struct src s;

	if (!ddl_scope(c, &sc, rel))
		return;
	for (size_t i = 0; i < ncmds; i++) {
		src_none(&s);
		ev(c, &sc, cmds[i], &s);
		record_write(c, &s);
	}
	if (whole_row) {
		src_none(&s);
		rte_whole(c, &sc, &sc.r[0], &s, 0);
		record_write(c, &s);
	}
}

/* CREATE INDEX runs its expressions and predicate over every row now: what they call is
 * judged as in a SELECT (a masked value handed to a user function or operator is a write);
 * the indexed values themselves stay in the relation. */
static void plan_index(struct ctx *c, const PgQuery__IndexStmt *ix)
{
	struct scope sc;
	struct src s;

	if (!ddl_scope(c, &sc, ix->relation))
		return;
	src_none(&s);
	for (size_t i = 0; i < ix->n_index_params; i++) {
		const PgQuery__Node *p = ix->index_params[i];

		if (p && p->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM)
			ev(c, &sc, p->index_elem->expr, &s);
	}
	ev(c, &sc, ix->where_clause, &s);
}

/* Renaming a masked column, or a relation with masked columns: the rules follow the column's
 * identity (docs/masking.md), but only from the catalog hoopd read before the rename; a
 * rename is counted as a write of the masked value so that a policy can refuse it. */
static void plan_rename(struct ctx *c, const PgQuery__RenameStmt *rn)
{
	struct scope sc;
	struct src s;

	if (!ddl_scope(c, &sc, rn->relation))
		return;
	src_none(&s);
	if (rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN) {
		if (!rn->subname || !rte_col(c, &sc, &sc.r[0], rn->subname, &s))
			return;
	} else if (rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE) {
		rte_whole(c, &sc, &sc.r[0], &s, 0);
	}
	record_write(c, &s);
}

/* One statement into the plan; q gets the result (or prospective) columns. */
static void plan_stmt(struct ctx *c, const PgQuery__Node *n, struct qres *q)
{
	struct maskplan *out = c->out;

	memset(q, 0, sizeof(*q));
	src_none(&q->aux);
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		plan_node(c, NULL, NULL, n, q);
		if (n->select_stmt->into_clause) { /* SELECT INTO: a new table, no rows */
			for (int i = 0; i < q->cols.n; i++)
				record_write(c, &q->cols.v[i].s);
			if (q->cols.unknown)
				record_write(c, &q->cols.unk);
			memset(q, 0, sizeof(*q));
		} else {
			out->returns_rows = 1;
		}
		break;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT:
	case PG_QUERY__NODE__NODE_MERGE_STMT: {
		size_t nret = n->node_case == PG_QUERY__NODE__NODE_INSERT_STMT
				  ? n->insert_stmt->n_returning_list
			      : n->node_case == PG_QUERY__NODE__NODE_UPDATE_STMT
				  ? n->update_stmt->n_returning_list
			      : n->node_case == PG_QUERY__NODE__NODE_DELETE_STMT
				  ? n->delete_stmt->n_returning_list
				  : 0;

		plan_node(c, NULL, NULL, n, q);
		out->returns_rows = nret > 0;
		if (!nret)
			memset(q, 0, sizeof(*q));
		break;
	}
	case PG_QUERY__NODE__NODE_COPY_STMT:
		plan_copy(c, n->copy_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		snprintf(out->declare_cursor, sizeof(out->declare_cursor), "%s",
			 n->declare_cursor_stmt->portalname ? n->declare_cursor_stmt->portalname
							    : "");
		plan_node(c, NULL, NULL, n->declare_cursor_stmt->query, q);
		break;
	case PG_QUERY__NODE__NODE_FETCH_STMT:
		snprintf(out->fetch_cursor, sizeof(out->fetch_cursor), "%s",
			 n->fetch_stmt->portalname ? n->fetch_stmt->portalname : "");
		out->returns_rows = 1;
		break;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		snprintf(out->execute_name, sizeof(out->execute_name), "%s",
			 n->execute_stmt->name ? n->execute_stmt->name : "");
		out->returns_rows = 1;
		break;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		snprintf(out->prepare_name, sizeof(out->prepare_name), "%s",
			 n->prepare_stmt->name ? n->prepare_stmt->name : "");
		plan_node(c, NULL, NULL, n->prepare_stmt->query, q);
		break;
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT: {
		/* The plan text holds no table data. EXPLAIN ANALYZE runs the statement: its
		 * filters are probes (actual row counts answer them) and its writes happen. */
		struct qres inner;
		int analyze = explain_analyze(n->explain_stmt);
		const PgQuery__Node *qn = n->explain_stmt->query;

		if (!analyze)
			c->quiet++;
		if (qn && qn->node_case == PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT)
			plan_stmt(c, qn, &inner);
		else if (qn && qn->node_case != PG_QUERY__NODE__NODE_EXECUTE_STMT &&
			 qn->node_case != PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT)
			plan_node(c, NULL, NULL, qn, &inner);
		if (!analyze)
			c->quiet--;
		/* the inner statement's own flags are not the EXPLAIN's */
		out->copy = 0;
		out->declare_cursor[0] = out->fetch_cursor[0] = out->execute_name[0] = '\0';
		out->returns_rows = 1;
		set_clean_cols(c, q, 1, "QUERY PLAN");
		break;
	}
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		out->returns_rows = 1;
		set_clean_cols(
		    c, q,
		    n->variable_show_stmt->name && !strcmp(n->variable_show_stmt->name, "all") ? 3
											       : 1,
		    n->variable_show_stmt->name);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		plan_node(c, NULL, NULL, n->create_table_as_stmt->query, q);
		if (n->create_table_as_stmt->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW) {
			for (int i = 0; i < q->cols.n; i++)
				record_write(c, &q->cols.v[i].s);
			if (q->cols.unknown)
				record_write(c, &q->cols.unk);
		}
		memset(q, 0, sizeof(*q));
		break;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		plan_ddl(c, n->alter_table_stmt->relation, n->alter_table_stmt->cmds,
			 n->alter_table_stmt->n_cmds, 0);
		break;
	case PG_QUERY__NODE__NODE_RULE_STMT:
		plan_ddl(c, n->rule_stmt->relation, NULL, 0, n->rule_stmt->n_actions > 0);
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		plan_rename(c, n->rename_stmt);
		break;
	case PG_QUERY__NODE__NODE_INDEX_STMT:
		plan_index(c, n->index_stmt);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
		plan_ddl(c, n->create_trig_stmt->relation, NULL, 0, 1);
		break;
	case PG_QUERY__NODE__NODE_CALL_STMT:
		/* OUT parameters can carry anything the procedure read */
		out->returns_rows = 1;
		out->all_unknown = 1;
		break;
	default:
		out->returns_rows = 0;
		break;
	}
}

/* Does an operator of this name (as written) run SQL from a string? */
static void scan_op(struct ctx *c, PgQuery__Node **names, size_t n)
{
	const char *schema, *name;
	int sql;

	qualname(names, n, &schema, &name);
	op_class(c, schema, name, &sql);
	if (sql)
		c->out->opaque_sql = 1;
}

/*
 * Every operator named anywhere in the parse tree, whether or not the plan evaluates the
 * expression it is in (a column DEFAULT or CHECK, CALL's arguments, an index predicate, every
 * statement of a multi-statement text): one that may run SQL from a string makes the statement
 * opaque_sql. The tree's depth was checked by parse() (pb_depth_ok).
 */
static void scan_ops(struct ctx *c, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (c->out->opaque_sql)
		return;
	if (d == &pg_query__a__expr__descriptor) {
		const PgQuery__AExpr *e = (const PgQuery__AExpr *)m;

		if (e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN ||
		    e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN ||
		    e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM ||
		    e->kind == PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM) {
			static const char *const cmp[] = {">=", "<=", "<", ">"};
			int sql;

			for (int i = 0; i < 4; i++) {
				op_class(c, NULL, cmp[i], &sql);
				if (sql)
					c->out->opaque_sql = 1;
			}
		} else {
			scan_op(c, e->name, e->n_name);
		}
	} else if (d == &pg_query__sub_link__descriptor) {
		const PgQuery__SubLink *sl = (const PgQuery__SubLink *)m;

		if (sl->n_oper_name)
			scan_op(c, sl->oper_name, sl->n_oper_name);
	} else if (d == &pg_query__sort_by__descriptor) {
		const PgQuery__SortBy *sb = (const PgQuery__SortBy *)m;

		if (sb->n_use_op)
			scan_op(c, sb->use_op, sb->n_use_op);
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr =
			    *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n && arr; k++)
				if (arr[k])
					scan_ops(c, arr[k]);
		} else {
			const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);

			if (sub)
				scan_ops(c, sub);
		}
	}
}

static void fail_plan(struct maskplan *out, const char *fmt, const char *what)
{
	free(out->cols);
	out->cols = NULL;
	out->ncols = 0;
	out->returns_rows = 1;
	out->all_unknown = 1;
	snprintf(out->error, sizeof(out->error), fmt, what);
}

static void set_created(struct maskplan *out, const PgQuery__RangeVar *rv, const char *name)
{
	if (rv && rv->relname)
		name = rv->relname;
	if (name)
		snprintf(out->created_rel, sizeof(out->created_rel), "%s", name);
}

static void note_created(struct maskplan *out, const PgQuery__Node *n)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CREATE_STMT:
		set_created(out, n->create_stmt->relation, NULL);
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		set_created(out, n->view_stmt->view, NULL);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		if (n->create_table_as_stmt->into)
			set_created(out, n->create_table_as_stmt->into->rel, NULL);
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		if (n->select_stmt->into_clause)
			set_created(out, n->select_stmt->into_clause->rel, NULL);
		break;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
		/* a relation's new name (not a column's or a constraint's) */
		switch (n->rename_stmt->rename_type) {
		case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
		case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
		case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
		case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
			set_created(out, NULL, n->rename_stmt->newname);
			break;
		default:
			break;
		}
		break;
	default:
		break;
	}
}

int maskplan_build(const char *sql, size_t len, const struct catalog *cat,
		   const struct mask_policy *mp, struct maskplan *out)
{
	return maskplan_build_ex(sql, len, cat, mp, NULL, 0, out);
}

int maskplan_build_ex(const char *sql, size_t len, const struct catalog *cat,
		      const struct mask_policy *mp, const char (*shadow)[64], int nshadow,
		      struct maskplan *out)
{
	PgQueryProtobufParseResult raw;
	PgQuery__ParseResult *pr;
	struct ctx c;
	struct qres q;
	char *text, err[256];
	int rc = 0;

	if (!out)
		return -1;
	memset(out, 0, sizeof(*out));
	if (!sql || len > MP_MAX_TEXT) {
		fail_plan(out, "statement is longer than hoop's %s-byte cap", "1048576");
		return -1;
	}
	text = strndup(sql, len);
	if (!text) {
		fail_plan(out, "%s", strerror(errno));
		return -1;
	}
	pr = parse(text, &raw, err, sizeof(err));
	free(text);
	if (!pr) {
		fail_plan(out, "%s", err);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.cat = cat;
	c.mp = mp;
	c.out = out;
	c.shadow = shadow;
	c.nshadow = nshadow;
	if (pr->n_stmts == 1 && pr->stmts[0]->stmt)
		note_created(out, pr->stmts[0]->stmt);
	scan_ops(&c, &pr->base);
	if (pr->n_stmts == 0) {
		out->returns_rows = 0;
	} else if (pr->n_stmts > 1) {
		fail_plan(out, "%s", "several statements: plan them one by one");
		rc = 0;
	} else if (!pr->stmts[0]->stmt) {
		out->returns_rows = 0;
	} else {
		plan_stmt(&c, pr->stmts[0]->stmt, &q);
		if (c.failed) {
			fail_plan(out, "%s", "statement is too large or deep for hoop's caps");
		} else if (q.cols.unknown) {
			out->all_unknown = 1;
			out->all_clean = q.cols.unk.rule == MASK_RULE_NONE;
			for (int i = 0; i < q.cols.n && out->all_clean; i++)
				out->all_clean = q.cols.v[i].s.rule == MASK_RULE_NONE;
		} else if (q.cols.n && !out->all_unknown) {
			out->cols = calloc((size_t)q.cols.n, sizeof(*out->cols));
			if (!out->cols) {
				fail_plan(out, "%s", strerror(ENOMEM));
			} else {
				out->ncols = q.cols.n;
				for (int i = 0; i < q.cols.n; i++) {
					const struct src *s = &q.cols.v[i].s;

					out->cols[i].rule = s->rule;
					out->cols[i].derived =
					    s->rule == MASK_RULE_NONE ? 0 : s->derived;
					snprintf(out->cols[i].source, sizeof(out->cols[i].source),
						 "%s", s->source);
				}
			}
		}
	}
	ctx_free(&c);
	pg_query__parse_result__free_unpacked(pr, NULL);
	pg_query_free_protobuf_parse_result(raw);
	return rc;
}

void maskplan_free(struct maskplan *p)
{
	if (!p)
		return;
	free(p->cols);
	p->cols = NULL;
	p->ncols = 0;
}
