/*
 * Provenance of result columns (maskplan.h): PostgreSQL's parse tree, read through libpg_query's
 * protobuf form, against the catalog and the policy's masking rules. Every column reference is
 * resolved the way the server resolves it (FROM items, joins, aliases, CTEs, outer queries),
 * views are planned from their definitions, and whatever the planner does not model is walked
 * generically through protobuf-c's descriptors, so that a column reference in a node type it
 * has never heard of still counts: unknown shapes over-mask, they never leak. This file has the
 * API, the arena, rules and strength, recording into the plan and names; scopes, expressions
 * and statements are in maskplan_scope.c, maskplan_expr.c and maskplan_stmt.c (maskplan_int.h).
 */
#include "maskplan_int.h"

/* ---- scratch memory: one arena per build, freed at once ---- */

void *mp_amalloc(struct ctx *c, size_t n)
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

void mp_ctx_free(struct ctx *c)
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
int mp_rank(const struct ctx *c, int rule)
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

void mp_src_none(struct src *s)
{
	s->rule = MASK_RULE_NONE;
	s->derived = 0;
	s->source[0] = '\0';
}

void mp_src_unknown(struct src *s, const char *why)
{
	s->rule = MASK_RULE_UNKNOWN;
	s->derived = 1;
	snprintf(s->source, sizeof(s->source), "%s", why ? why : "");
}

void mp_src_rule(struct src *s, int rule, const char *table, const char *column)
{
	s->rule = rule;
	s->derived = 0;
	/* also for a clean column: a column passed through as it is tells the engine its type
	 * (binary COPY) and its name (detector context) */
	snprintf(s->source, sizeof(s->source), "%s.%s", table, column);
}

/* Folds s into acc: the stronger wins. The caller decides whether acc is derived. */
void mp_merge(const struct ctx *c, struct src *acc, const struct src *s)
{
	if (mp_rank(c, s->rule) > mp_rank(c, acc->rule)) {
		acc->rule = s->rule;
		acc->derived = s->derived;
		memcpy(acc->source, s->source, sizeof(acc->source));
	}
}

void mp_merge_unknown(const struct ctx *c, struct src *acc, const char *why)
{
	struct src u;

	mp_src_unknown(&u, why);
	mp_merge(c, acc, &u);
}

/* Folds what decided a value without being it (a subquery's WHERE, an aggregate's FILTER or
 * ORDER BY, a window): a free text column there is no copy of its text. */
void mp_merge_pred(const struct ctx *c, struct src *acc, const struct src *s)
{
	if (s->rule != MASK_RULE_FREE)
		mp_merge(c, acc, s);
}

void mp_derive(struct src *s)
{
	if (s->rule != MASK_RULE_NONE)
		s->derived = 1;
}

/* Folds one of several candidates for a value: two masked ones make it derived (two free text
 * columns do not: the value is one of them as it is, which the detectors read). */
void mp_fold(const struct ctx *c, struct src *acc, const struct src *s, int first)
{
	int both;

	if (first) {
		*acc = *s;
		return;
	}
	both = acc->rule != MASK_RULE_NONE && s->rule != MASK_RULE_NONE &&
	       !(acc->rule == MASK_RULE_FREE && s->rule == MASK_RULE_FREE);
	mp_merge(c, acc, s);
	if (both)
		acc->derived = 1;
}

/* ---- column sets ---- */

void mp_cs_push(struct ctx *c, struct colset *cs, const char *name, const struct src *s)
{
	if (cs->n >= MP_MAX_COLS) {
		if (!cs->unknown)
			mp_src_none(&cs->unk);
		cs->unknown = 1;
		mp_merge(c, &cs->unk, s);
		return;
	}
	if (cs->n == cs->cap) {
		int ncap = cs->cap ? cs->cap * 2 : 8;
		struct pcol *v = mp_amalloc(c, (size_t)ncap * sizeof(*v));

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

void mp_cs_unknown(struct ctx *c, struct colset *cs, const struct src *s)
{
	if (!cs->unknown)
		mp_src_none(&cs->unk);
	cs->unknown = 1;
	mp_merge(c, &cs->unk, s);
}

void mp_cs_append(struct ctx *c, struct colset *dst, const struct colset *src)
{
	for (int i = 0; i < src->n; i++)
		mp_cs_push(c, dst, src->v[i].name, &src->v[i].s);
	if (src->unknown)
		mp_cs_unknown(c, dst, &src->unk);
}

/* Every column's provenance folded into acc (a whole-row reference). */
void mp_cs_whole(const struct ctx *c, const struct colset *cs, struct src *acc)
{
	for (int i = 0; i < cs->n; i++)
		mp_merge(c, acc, &cs->v[i].s);
	if (cs->unknown)
		mp_merge(c, acc, &cs->unk);
}

/* Renames the first columns by an alias's column list. */
void mp_cs_rename(struct ctx *c, struct colset *cs, PgQuery__Node **names, size_t n)
{
	struct pcol *v;

	if (!n || !cs->n)
		return;
	v = mp_amalloc(c, (size_t)cs->n * sizeof(*v));
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

void mp_record_probe(struct ctx *c, const struct src *s)
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

void mp_record_write(struct ctx *c, const struct src *s)
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
void mp_operator_use(struct ctx *c, const char *schema, const char *name, const struct src *args,
		     struct src *acc)
{
	int sql, cls = op_class(c, schema, name, &sql);

	if (sql && c->out && !c->quiet)
		c->out->opaque_sql = 1;
	if (cls != OP_PURE) /* first: args may be acc */
		mp_record_write(c, args);
	if (cls == OP_OPAQUE) {
		char why[SRC_LEN];

		snprintf(why, sizeof(why), "operator(%s%s%s)", schema ? schema : "",
			 schema ? "." : "", name ? name : "?");
		mp_merge_unknown(c, acc, why);
		/* what the operator computed over is as good as read: its messages can say */
		if (c->out && !c->quiet)
			c->out->reads_masked = 1;
	}
}

void mp_record_unknown_rel(struct ctx *c, const char *schema, const char *name)
{
	if (!c->out || c->out->unknown_rel[0])
		return;
	if (schema && *schema)
		snprintf(c->out->unknown_rel, sizeof(c->out->unknown_rel), "%s.%s", schema, name);
	else
		snprintf(c->out->unknown_rel, sizeof(c->out->unknown_rel), "%s", name);
}

/* Counts work; past the cap the whole plan becomes unknown (no input makes this slow). */
int mp_budget(struct ctx *c)
{
	if (++c->work > MP_MAX_WORK)
		c->failed = 1;
	return c->failed;
}

/* ---- names ---- */

const char *mp_nstr(const PgQuery__Node *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string->sval ? n->string->sval
										   : NULL;
}

/* A qualified name (list of String): its last part and the one before. */
void mp_qualname(PgQuery__Node **parts, size_t n, const char **schema, const char **name)
{
	*schema = *name = NULL;
	for (size_t i = 0; i < n; i++) {
		const char *s = mp_nstr(parts[i]);

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

int mp_in_list(const char *const *list, const char *name, int prefix)
{
	for (int i = 0; list[i]; i++)
		if (prefix ? !strncmp(name, list[i], strlen(list[i])) : !strcmp(name, list[i]))
			return 1;
	return 0;
}

/* Can this function's result carry data that is not among its arguments? An unqualified
 * name that is no built-in may be a function created after the catalog was read. */
int mp_func_opaque(const struct ctx *c, const char *schema, const char *name)
{
	if (!name)
		return 1;
	if (mp_in_list(opaque_prefixes, name, 1))
		return 1;
	if (c->cat && cat_is_user_function(c->cat, schema, name))
		return 1;
	if (schema && strcmp(schema, "pg_catalog"))
		return 1;
	return !pgf_class(name);
}

/* Can a value handed to this function be kept where another statement reads it back? */
int mp_func_keeps(const struct ctx *c, const char *schema, const char *name)
{
	return mp_func_opaque(c, schema, name) || pgf_class(name) != PGF_PURE;
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
		if (!fns[i][0] || mp_in_list(runs_sql_fns, fns[i], 1))
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
int mp_sys_col_risky(const char *rel, const char *col)
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

int mp_is_system(const char *schema, const char *name)
{
	if (schema)
		return !strcmp(schema, "pg_catalog") || !strcmp(schema, "information_schema") ||
		       !strncmp(schema, "pg_toast", 8);
	return !strncmp(name, "pg_", 3);
}

/* ---- forward declarations ---- */


void mp_qres_unknown(struct ctx *c, struct qres *q, const char *why)
{
	struct src u;

	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	mp_src_unknown(&u, why);
	mp_cs_unknown(c, &q->cols, &u);
}

/* Does an operator of this name (as written) run SQL from a string? */
static void scan_op(struct ctx *c, PgQuery__Node **names, size_t n)
{
	const char *schema, *name;
	int sql;

	mp_qualname(names, n, &schema, &name);
	op_class(c, schema, name, &sql);
	if (sql)
		c->out->opaque_sql = 1;
}

/*
 * Every operator named anywhere in the parse tree, whether or not the plan evaluates the
 * expression it is in (a column DEFAULT or CHECK, CALL's arguments, an index predicate, every
 * statement of a multi-statement text): one that may run SQL from a string makes the statement
 * opaque_sql. The tree's depth was checked by mp_parse() (mp_pb_depth_ok).
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
	pr = mp_parse(text, &raw, err, sizeof(err));
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
		mp_plan_stmt(&c, pr->stmts[0]->stmt, &q);
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
	mp_ctx_free(&c);
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
