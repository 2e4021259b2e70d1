/*
 * Masking provenance, statements (maskplan_int.h): SELECT and set operations, INSERT, UPDATE,
 * DELETE, MERGE, COPY, EXPLAIN, DDL, views planned from their definitions and tables from the
 * catalog, and the dispatch over statement kinds.
 */
#include "maskplan_int.h"
#include "pglex.h"

/* ---- queries ---- */

static void select_tail(struct ctx *c, const struct scope *sc, const PgQuery__SelectStmt *s,
			struct qres *q, int names_first)
{
	for (size_t i = 0; i < s->n_sort_clause; i++)
		mp_sort_item(c, sc, s->sort_clause[i], &q->cols, names_first, q);
	mp_clause(c, sc, s->limit_count, q);
	mp_clause(c, sc, s->limit_offset, q);
}

/* UNION / INTERSECT / EXCEPT: column i is the strongest of every branch's column i. The
 * left-deep chains that long UNION ALLs make are walked with a stack, not recursion. */
static void plan_setop(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		       const PgQuery__SelectStmt *s, struct qres *q)
{
	const PgQuery__SelectStmt **stack;
	int sp = 0, cap = 64, first = 1;

	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	mp_src_none(&q->cols.unk);
	stack = mp_amalloc(c, (size_t)cap * sizeof(*stack));
	if (!stack) {
		mp_qres_unknown(c, q, "memory");
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
		if (mp_budget(c))
			break;
		if (b->op > PG_QUERY__SET_OPERATION__SETOP_NONE && !b->with_clause &&
		    !b->n_sort_clause && !b->limit_count && !b->limit_offset) {
			if (sp + 2 > cap) {
				const PgQuery__SelectStmt **ns =
				    mp_amalloc(c, (size_t)cap * 2 * sizeof(*ns));

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
		mp_plan_select(c, outer, ctes, b, &bq);
		c->depth--;
		mp_merge(c, &q->aux, &bq.aux);
		if (first) {
			q->cols = bq.cols;
			first = 0;
			continue;
		}
		{
			struct colset m = {0};

			mp_src_none(&m.unk);
			/* a copy: branches may share column arrays */
			mp_cs_append(c, &m, &q->cols);
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

					mp_merge(c, a, b2);
					if (any)
						a->derived = d;
				} else {
					mp_cs_unknown(c, &m, &bq.cols.v[i].s);
				}
			}
			if (bq.cols.unknown)
				mp_cs_unknown(c, &m, &bq.cols.unk);
			q->cols = m;
		}
	}
	if (c->failed)
		mp_qres_unknown(c, q, "work");
}

void mp_plan_select(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		    const PgQuery__SelectStmt *s, struct qres *q)
{
	struct scope sc;

	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	mp_src_none(&q->cols.unk);
	if (!s) {
		mp_qres_unknown(c, q, "query");
		return;
	}
	if (c->depth > MP_MAX_DEPTH || mp_budget(c)) {
		mp_qres_unknown(c, q, "nesting");
		return;
	}
	c->depth++;
	ctes = mp_with(c, outer, ctes, s->with_clause);
	memset(&sc, 0, sizeof(sc));
	sc.outer = outer;
	sc.ctes = ctes;
	if (s->op > PG_QUERY__SET_OPERATION__SETOP_NONE) {
		struct rte *r;

		plan_setop(c, outer, ctes, s, q);
		/* ORDER BY and LIMIT of a set operation see its output columns only */
		r = mp_add_rte(c, &sc, RTE_COLS);
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

				mp_expr_src(c, &sc, row->list->items[k], &v);
				if (i == 0) {
					snprintf(nm, sizeof(nm), "column%zu", k + 1);
					mp_cs_push(c, &q->cols, nm, &v);
				} else if (k < (size_t)q->cols.n) {
					if (v.rule != MASK_RULE_NONE &&
					    q->cols.v[k].s.rule != MASK_RULE_NONE)
						v.derived = 1;
					mp_merge(c, &q->cols.v[k].s, &v);
				}
			}
		}
		select_tail(c, &sc, s, q, 1);
		c->depth--;
		return;
	}
	for (size_t i = 0; i < s->n_from_clause; i++)
		mp_from_item(c, &sc, s->from_clause[i], 0);
	sc.windows = s->window_clause;
	sc.nwindows = s->n_window_clause;
	mp_targets(c, &sc, s->target_list, s->n_target_list, &q->cols);
	mp_clause(c, &sc, s->where_clause, q);
	for (size_t i = 0; i < s->n_group_clause; i++) {
		const PgQuery__Node *g = s->group_clause[i];

		if (g->node_case == PG_QUERY__NODE__NODE_GROUPING_SET) {
			for (size_t k = 0; k < g->grouping_set->n_content; k++)
				mp_sort_item(c, &sc, g->grouping_set->content[k], &q->cols, 0, q);
		} else {
			mp_sort_item(c, &sc, g, &q->cols, 0, q);
		}
	}
	mp_clause(c, &sc, s->having_clause, q);
	for (size_t i = 0; i < s->n_window_clause; i++) {
		const PgQuery__Node *w = s->window_clause[i];

		if (w->node_case == PG_QUERY__NODE__NODE_WINDOW_DEF) {
			struct src t;

			mp_src_none(&t);
			mp_window(c, &sc, w->window_def, &t, 0);
			mp_merge(c, &q->aux, &t);
		}
	}
	for (size_t i = 0; i < s->n_distinct_clause; i++)
		mp_sort_item(c, &sc, s->distinct_clause[i], &q->cols, 1, q);
	select_tail(c, &sc, s, q, 1);
	c->depth--;
}

/* The DML target with what the statement writes into it: RETURNING shows the written values. */
static struct rte *target_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rv)
{
	struct rte *r;

	if (!rv)
		return NULL;
	mp_rel_rte(c, sc, rv);
	if (!sc->n)
		return NULL;
	r = &sc->r[sc->n - 1];
	if (r->kind == RTE_COLS) {
		struct colset copy = {0};

		mp_src_none(&copy.unk);
		mp_cs_append(c, &copy, &r->cols); /* written columns change: a copy of the CTE's */
		r->cols = copy;
	}
	return r;
}

/* col := value in the target: the value's provenance is now the column's too. */
static void assign(struct ctx *c, struct scope *sc, int ti, const char *col, const struct src *v)
{
	struct rte *r;

	mp_record_write(c, v);
	if (ti < 0 || ti >= sc->n || !col)
		return;
	r = &sc->r[ti];
	if (r->kind != RTE_COLS)
		return;
	for (int i = 0; i < r->cols.n; i++)
		if (!strcmp(r->cols.v[i].name, col) && v->rule != MASK_RULE_NONE) {
			struct src s = *v;

			mp_derive(&s);
			mp_merge(c, &r->cols.v[i].s, &s);
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
			mp_src_none(&v);
			mp_ev(c, sc, rt->val->multi_assign_ref->source, &v);
			mp_derive(&v);
		} else {
			mp_expr_src(c, sc, rt->val, &v);
		}
		assign(c, sc, ti, rt->name, &v);
	}
}

void mp_returning(struct ctx *c, struct scope *sc, PgQuery__Node **tl, size_t n, struct qres *q)
{
	mp_targets(c, sc, tl, n, &q->cols);
}

/* The scope of INSERT/UPDATE/DELETE/MERGE: WITH, then the target relation. Returns the target's
 * index in sc, or -1 with q unknown when the target cannot be planned. */
static int dml_scope(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		     const PgQuery__WithClause *w, const PgQuery__RangeVar *rel, struct scope *sc,
		     struct qres *q)
{
	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	memset(sc, 0, sizeof(*sc));
	sc->outer = outer;
	sc->ctes = mp_with(c, outer, ctes, w);
	if (!target_rte(c, sc, rel)) {
		mp_qres_unknown(c, q, "target");
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
		mp_plan_node(c, outer, sc.ctes, s->select_stmt, &vq);
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
		struct rte *ex = mp_add_rte(c, &sc, sc.r[ti].kind);
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
		mp_clause(c, &sc, oc->where_clause, &dummy);
	}
	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	mp_returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_update(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__UpdateStmt *s, struct qres *q)
{
	struct scope sc;
	int ti = dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q);

	if (ti < 0)
		return;
	for (size_t i = 0; i < s->n_from_clause; i++)
		mp_from_item(c, &sc, s->from_clause[i], 0);
	mp_clause(c, &sc, s->where_clause, q);
	set_list(c, &sc, ti, s->target_list, s->n_target_list);
	mp_returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_delete(struct ctx *c, const struct scope *outer, const struct cte *ctes,
			const PgQuery__DeleteStmt *s, struct qres *q)
{
	struct scope sc;

	if (dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q) < 0)
		return;
	for (size_t i = 0; i < s->n_using_clause; i++)
		mp_from_item(c, &sc, s->using_clause[i], 0);
	mp_clause(c, &sc, s->where_clause, q);
	mp_returning(c, &sc, s->returning_list, s->n_returning_list, q);
}

static void plan_merge(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		       const PgQuery__MergeStmt *s, struct qres *q)
{
	struct scope sc;
	int ti = dml_scope(c, outer, ctes, s->with_clause, s->relation, &sc, q);

	if (ti < 0)
		return;
	mp_from_item(c, &sc, s->source_relation, 0);
	mp_clause(c, &sc, s->join_condition, q);
	for (size_t i = 0; i < s->n_merge_when_clauses; i++) {
		const PgQuery__MergeWhenClause *w;

		if (s->merge_when_clauses[i]->node_case != PG_QUERY__NODE__NODE_MERGE_WHEN_CLAUSE)
			continue;
		w = s->merge_when_clauses[i]->merge_when_clause;
		mp_clause(c, &sc, w->condition, q);
		set_list(c, &sc, ti, w->target_list, w->n_target_list);
		for (size_t k = 0; k < w->n_values; k++) {
			struct src v;
			const char *col = NULL;

			mp_expr_src(c, &sc, w->values[k], &v);
			if (k < w->n_target_list &&
			    w->target_list[k]->node_case == PG_QUERY__NODE__NODE_RES_TARGET)
				col = w->target_list[k]->res_target->name;
			assign(c, &sc, ti, col, &v);
		}
	}
	/* PostgreSQL 15's MERGE returns no rows */
	memset(&q->cols, 0, sizeof(q->cols));
	mp_src_none(&q->cols.unk);
}

/* Any statement that can stand where a query does (subquery, CTE, COPY, DECLARE, ...). */
void mp_plan_node(struct ctx *c, const struct scope *outer, const struct cte *ctes,
		  const PgQuery__Node *n, struct qres *q)
{
	if (!n) {
		mp_qres_unknown(c, q, "query");
		return;
	}
	if (c->depth > MP_MAX_DEPTH || mp_budget(c)) {
		mp_qres_unknown(c, q, "nesting");
		return;
	}
	c->depth++;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		mp_plan_select(c, outer, ctes, n->select_stmt, q);
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
		mp_qres_unknown(c, q, "query");
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
int mp_pb_depth_ok(const uint8_t *p, size_t len)
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

PgQuery__ParseResult *mp_parse(const char *text, PgQueryProtobufParseResult *raw, char *err,
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
	if (!mp_pb_depth_ok((const uint8_t *)raw->parse_tree.data, raw->parse_tree.len)) {
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

		if (mp_rank(c, w) > mp_rank(c, rule))
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
	mp_src_none(&out->unk);
	mp_src_unknown(&u, r->name);
	if (c->view_depth >= MP_MAX_VIEW_DEPTH || strlen(r->viewdef) > MP_MAX_TEXT) {
		mp_cs_unknown(c, out, &u);
		return;
	}
	{
		/* pg_get_viewdef's text, from hoopd's catalog connection (standard strings):
		 * read as it was written, whatever the session's statement was lexed under */
		struct pglex_saved sv;

		pglex_set(0, &sv);
		pr = mp_parse(r->viewdef, &raw, err, sizeof(err));
		pglex_restore(&sv);
	}
	if (!pr) {
		mp_cs_unknown(c, out, &u);
		return;
	}
	c->view_depth++;
	c->quiet++;
	if (pr->n_stmts == 1 && pr->stmts[0]->stmt)
		mp_plan_node(c, NULL, NULL, pr->stmts[0]->stmt, &q);
	else
		mp_qres_unknown(c, &q, r->name);
	c->quiet--;
	c->view_depth--;
	pg_query__parse_result__free_unpacked(pr, NULL);
	pg_query_free_protobuf_parse_result(raw);
	if (q.cols.unknown) {
		mp_cs_unknown(c, out, &u);
		return;
	}
	if (!r->ncols) {
		*out = q.cols;
		for (int i = 0; i < out->n; i++) {
			int rule = mask_rule_match(c->mp, r->schema, r->name, out->v[i].name);
			struct src d;

			mp_src_rule(&d, rule, r->name, out->v[i].name);
			mp_merge(c, &out->v[i].s, &d);
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
			mp_src_unknown(&s, r->name);
		mp_src_rule(&d, ident_rule(c, r, col), r->name, col->name);
		mp_merge(c, &s, &d);
		mp_cs_push(c, out, col->name, &s);
	}
}

void mp_rel_cols(struct ctx *c, const struct cat_rel *r, struct colset *out)
{
	struct vcache *v = NULL;
	int vi = -1;

	memset(out, 0, sizeof(*out));
	mp_src_none(&out->unk);
	for (int i = 0; i < c->nvc; i++)
		if (c->vc[i].r == r) {
			if (c->vc[i].state == 1) { /* a view defined through itself */
				struct src u;

				mp_src_unknown(&u, r->name);
				mp_cs_unknown(c, out, &u);
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
			mp_src_unknown(&u, r->name);
			mp_cs_unknown(c, out, &u);
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

		mp_src_unknown(&u, r->name); /* a view without its definition */
		mp_cs_unknown(c, out, &u);
	} else {
		for (int i = 0; i < r->ncols; i++) {
			struct src s;

			mp_src_rule(&s, col_rule(c, r, &r->cols[i]), r->name, r->cols[i].name);
			/* a partition answers to its parents' rules as well */
			int hops = 0;

			for (const struct cat_rel *p = r; p->parent_oid && c->cat;) {
				const struct cat_rel *up = cat_rel_by_oid(c->cat, p->parent_oid);
				struct src d;

				if (!up || up == r || ++hops > 8) /* a loop in pg_inherits? */
					break;
				mp_src_rule(
				    &d,
				    mask_rule_match(c->mp, up->schema, up->name, r->cols[i].name),
				    up->name, r->cols[i].name);
				mp_merge(c, &s, &d);
				p = up;
			}
			mp_cs_push(c, out, r->cols[i].name, &s);
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
	mp_rel_cols(&c, r, &cs);
	if (!c.failed) {
		const struct cat_col *col = cat_col_by_attnum(r, attnum);

		for (int i = 0; col && i < cs.n; i++)
			if (!strcmp(cs.v[i].name, col->name)) {
				rule = cs.v[i].s.rule;
				d = cs.v[i].s.derived;
				break;
			}
	}
	mp_ctx_free(&c);
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
	s = mp_nstr(arg);
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
		v = mp_nstr(d->arg);
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
		mp_plan_node(c, NULL, NULL, cs->query, q);
	} else {
		struct scope sc;
		struct qres dummy;

		memset(&sc, 0, sizeof(sc));
		memset(q, 0, sizeof(*q));
		mp_src_none(&q->aux);
		mp_src_none(&q->cols.unk);
		if (!cs->relation) {
			mp_qres_unknown(c, q, "copy");
			return;
		}
		mp_rel_rte(c, &sc, cs->relation);
		if (!sc.n) {
			mp_qres_unknown(c, q, "copy");
			return;
		}
		if (!cs->n_attlist) {
			mp_rte_star(c, &sc, &sc.r[0], &q->cols, 0);
		} else {
			for (size_t i = 0; i < cs->n_attlist; i++) {
				const char *nm = mp_nstr(cs->attlist[i]);
				struct src s;

				if (!nm || !mp_rte_col(c, &sc, &sc.r[0], nm, &s))
					mp_src_unknown(&s, nm ? nm : "?");
				mp_cs_push(c, &q->cols, nm ? nm : "?", &s);
			}
		}
		memset(&dummy, 0, sizeof(dummy));
		mp_clause(c, &sc, cs->where_clause, &dummy);
	}
	if (!to_client) {
		/* TO a server file or program: the rows leave unmasked, not through hoop */
		for (int i = 0; i < q->cols.n; i++)
			mp_record_write(c, &q->cols.v[i].s);
		if (q->cols.unknown)
			mp_record_write(c, &q->cols.unk);
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
	mp_src_none(&q->aux);
	mp_src_none(&s);
	for (int i = 0; i < n; i++)
		mp_cs_push(c, &q->cols, name, &s);
}

/* The scope of the one relation a DDL statement works on (it returns no rows). 0 when there is
 * none, or the catalog does not know it: nothing to plan. */
static int ddl_scope(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rel)
{
	memset(sc, 0, sizeof(*sc));
	c->out->returns_rows = 0;
	if (!rel)
		return 0;
	mp_rel_rte(c, sc, rel);
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
		mp_src_none(&s);
		mp_ev(c, &sc, cmds[i], &s);
		mp_record_write(c, &s);
	}
	if (whole_row) {
		mp_src_none(&s);
		mp_rte_whole(c, &sc, &sc.r[0], &s, 0);
		mp_record_write(c, &s);
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
	mp_src_none(&s);
	for (size_t i = 0; i < ix->n_index_params; i++) {
		const PgQuery__Node *p = ix->index_params[i];

		if (p && p->node_case == PG_QUERY__NODE__NODE_INDEX_ELEM)
			mp_ev(c, &sc, p->index_elem->expr, &s);
	}
	mp_ev(c, &sc, ix->where_clause, &s);
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
	mp_src_none(&s);
	if (rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN) {
		if (!rn->subname || !mp_rte_col(c, &sc, &sc.r[0], rn->subname, &s))
			return;
	} else if (rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_TABLE ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_VIEW ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW ||
		   rn->rename_type == PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE) {
		mp_rte_whole(c, &sc, &sc.r[0], &s, 0);
	}
	mp_record_write(c, &s);
}

/* EXPLAIN: the plan text holds no table data. EXPLAIN ANALYZE runs the statement: its filters
 * are probes (actual row counts answer them) and its writes happen. */
static void plan_explain(struct ctx *c, const PgQuery__ExplainStmt *e, struct qres *q)
{
	struct maskplan *out = c->out;
	struct qres inner;
	int analyze = explain_analyze(e);
	const PgQuery__Node *qn = e->query;

	if (!analyze)
		c->quiet++;
	if (qn && qn->node_case == PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT)
		mp_plan_stmt(c, qn, &inner);
	else if (qn && qn->node_case != PG_QUERY__NODE__NODE_EXECUTE_STMT &&
		 qn->node_case != PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT)
		mp_plan_node(c, NULL, NULL, qn, &inner);
	if (!analyze)
		c->quiet--;
	/* the inner statement's own flags are not the EXPLAIN's */
	out->copy = 0;
	out->declare_cursor[0] = out->fetch_cursor[0] = out->execute_name[0] = '\0';
	out->returns_rows = 1;
	set_clean_cols(c, q, 1, "QUERY PLAN");
}

/* One statement into the plan; q gets the result (or prospective) columns. */
void mp_plan_stmt(struct ctx *c, const PgQuery__Node *n, struct qres *q)
{
	struct maskplan *out = c->out;

	memset(q, 0, sizeof(*q));
	mp_src_none(&q->aux);
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		mp_plan_node(c, NULL, NULL, n, q);
		if (n->select_stmt->into_clause) { /* SELECT INTO: a new table, no rows */
			for (int i = 0; i < q->cols.n; i++)
				mp_record_write(c, &q->cols.v[i].s);
			if (q->cols.unknown)
				mp_record_write(c, &q->cols.unk);
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

		mp_plan_node(c, NULL, NULL, n, q);
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
		mp_plan_node(c, NULL, NULL, n->declare_cursor_stmt->query, q);
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
		mp_plan_node(c, NULL, NULL, n->prepare_stmt->query, q);
		break;
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		plan_explain(c, n->explain_stmt, q);
		break;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		out->returns_rows = 1;
		set_clean_cols(
		    c, q,
		    n->variable_show_stmt->name && !strcmp(n->variable_show_stmt->name, "all") ? 3
											       : 1,
		    n->variable_show_stmt->name);
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		mp_plan_node(c, NULL, NULL, n->create_table_as_stmt->query, q);
		if (n->create_table_as_stmt->objtype != PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW) {
			for (int i = 0; i < q->cols.n; i++)
				mp_record_write(c, &q->cols.v[i].s);
			if (q->cols.unknown)
				mp_record_write(c, &q->cols.unk);
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
