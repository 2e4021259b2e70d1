/*
 * Masking provenance, expressions (maskplan_int.h): what each value expression is computed
 * from (operators, functions, casts, CASE, sublinks, whatever node type protobuf-c can walk),
 * the names the server gives output columns (FigureColname), and target lists.
 */
#include "maskplan_int.h"

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
		mp_ev(c, sc, (const PgQuery__Node *)m, acc);
		return;
	}
	if (++c->depth > MP_MAX_DEPTH * 2 || mp_budget(c))
		mp_merge_unknown(c, acc, "nesting");
	else
		ev_children(c, sc, m, acc);
	c->depth--;
}

/* Partition and order of a window: part of the value, and a probe. */
void mp_window(struct ctx *c, const struct scope *sc, const PgQuery__WindowDef *w, struct src *acc,
	       int depth)
{
	struct src s;

	if (!w || depth > 4)
		return;
	mp_src_none(&s);
	for (size_t i = 0; i < w->n_partition_clause; i++)
		mp_ev(c, sc, w->partition_clause[i], &s);
	for (size_t i = 0; i < w->n_order_clause; i++)
		mp_ev(c, sc, w->order_clause[i], &s);
	mp_ev(c, sc, w->start_offset, &s);
	mp_ev(c, sc, w->end_offset, &s);
	mp_record_probe(c, &s);
	mp_merge(c, acc, &s);
	/* OVER w, OVER (w ORDER BY ...): the named window's clauses too */
	for (const char *ref = w->refname && *w->refname ? w->refname : w->name; ref && *ref;
	     ref = NULL)
		for (size_t i = 0; i < sc->nwindows; i++) {
			const PgQuery__Node *wn = sc->windows[i];

			if (wn->node_case == PG_QUERY__NODE__NODE_WINDOW_DEF &&
			    wn->window_def->name && !strcmp(wn->window_def->name, ref) &&
			    wn->window_def != w)
				mp_window(c, sc, wn->window_def, acc, depth + 1);
		}
}

static void funccall(struct ctx *c, const struct scope *sc, const PgQuery__FuncCall *fc,
		     struct src *acc)
{
	const char *schema, *name;

	struct src args, pred;
	int opaque;

	mp_qualname(fc->funcname, fc->n_funcname, &schema, &name);
	opaque = mp_func_opaque(c, schema, name);
	if (opaque) {
		char why[SRC_LEN];

		snprintf(why, sizeof(why), "%s()", name ? name : "?");
		mp_merge_unknown(c, acc, why);
	}
	mp_src_none(&args);
	for (size_t i = 0; i < fc->n_args; i++)
		mp_ev(c, sc, fc->args[i], &args);
	/* A masked value handed to code that can keep it (a user function, a setting that
	 * current_setting() reads back, a notification to a listener, an advisory lock that
	 * pg_locks shows, a sequence that currval() reads): a write. */
	if (args.rule >= 0 && (opaque || mp_func_keeps(c, schema, name)))
		mp_record_write(c, &args);
	/* count(notes) says how many, nothing of the text */
	if (args.rule == MASK_RULE_FREE && name && !strcmp(name, "count"))
		mp_src_none(&args);
	mp_merge(c, acc, &args);
	mp_src_none(&pred);
	for (size_t i = 0; i < fc->n_agg_order; i++)
		mp_ev(c, sc, fc->agg_order[i], &pred);
	mp_ev(c, sc, fc->agg_filter, &pred);
	mp_window(c, sc, fc->over, &pred, 0);
	mp_merge_pred(c, acc, &pred);
	mp_derive(acc);
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
	mp_qualname(tc->type_name->names, tc->type_name->n_names, &schema, &name);
	if (!name || !cat_code_type(c->cat, name))
		return;
	mp_record_write(c, arg);
	snprintf(why, sizeof(why), "cast(%s)", name);
	mp_merge_unknown(c, acc, why);
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

	mp_src_none(&args);
	mp_ev(c, sc, e->lexpr, &args);
	mp_ev(c, sc, e->rexpr, &args);
	mp_merge(c, acc, &args);
	mp_qualname(e->name, e->n_name, &schema, &name);
	switch (e->kind) {
	case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN:
	case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN:
	case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
	case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM: {
		static const char *const cmp[] = {">=", "<=", "<", ">"};

		for (int i = 0; i < 4; i++)
			mp_operator_use(c, NULL, cmp[i], &args, acc);
		break;
	}
	default:
		mp_operator_use(c, schema, name, &args, acc);
	}
}

/* A subquery as a value: every column it selects and every column it reads anywhere. Returns 1
 * when it is exactly one column passed through ((SELECT ssn FROM ...)). */
static int sublink(struct ctx *c, const struct scope *sc, const PgQuery__SubLink *sl,
		   struct src *out)
{
	struct qres q;
	struct src t;

	mp_src_none(out);
	mp_plan_node(c, sc, sc->ctes, sl->subselect, &q);
	if (sl->sub_link_type == PG_QUERY__SUB_LINK_TYPE__EXPR_SUBLINK && !sl->testexpr &&
	    q.cols.n == 1 && !q.cols.unknown &&
	    (q.aux.rule == MASK_RULE_NONE || q.aux.rule == MASK_RULE_FREE)) {
		*out = q.cols.v[0].s;
		return 1;
	}
	mp_cs_whole(c, &q.cols, out);
	mp_merge_pred(c, out, &q.aux);
	mp_src_none(&t);
	mp_ev(c, sc, sl->testexpr, &t);
	mp_merge(c, out, &t);
	if (sl->testexpr) { /* x op ANY (SELECT ...), x IN (SELECT ...): op runs on both */
		const char *schema, *name;

		mp_qualname(sl->oper_name, sl->n_oper_name, &schema, &name);
		mp_operator_use(c, schema, name ? name : "=", out, out);
	}
	mp_derive(out);
	return 0;
}

void mp_ev(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *acc)
{
	struct src s;

	if (!n)
		return;
	if (++c->depth > MP_MAX_DEPTH * 2 || mp_budget(c)) {
		mp_merge_unknown(c, acc, "nesting");
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
		mp_colref(c, sc, n->column_ref, &s);
		mp_merge(c, acc, &s);
		break;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		funccall(c, sc, n->func_call, acc);
		break;
	case PG_QUERY__NODE__NODE_A_EXPR:
		aexpr(c, sc, n->a_expr, acc);
		break;
	case PG_QUERY__NODE__NODE_TYPE_CAST:
		mp_src_none(&s);
		ev_children(c, sc, &n->base, &s);
		mp_merge(c, acc, &s);
		typecast(c, n->type_cast, &s, acc);
		break;
	case PG_QUERY__NODE__NODE_CASE_EXPR:
		/* CASE x WHEN y: x = y, by the name = */
		mp_src_none(&s);
		ev_children(c, sc, &n->base, &s);
		mp_merge(c, acc, &s);
		if (n->case_expr->arg)
			mp_operator_use(c, NULL, "=", &s, acc);
		break;
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		if (field_of_row(c, sc, n->a_indirection, &s))
			mp_merge(c, acc, &s);
		else
			ev_children(c, sc, &n->base, acc);
		break;
	case PG_QUERY__NODE__NODE_SUB_LINK:
		sublink(c, sc, n->sub_link, &s);
		mp_merge(c, acc, &s);
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT: {
		struct qres q;

		mp_plan_node(c, sc, sc->ctes, n, &q);
		mp_cs_whole(c, &q.cols, acc);
		mp_merge_pred(c, acc, &q.aux);
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

	if (ai->n_indirection != 1 || !mp_nstr(ai->indirection[0]) || !arg ||
	    arg->node_case != PG_QUERY__NODE__NODE_COLUMN_REF || arg->column_ref->n_fields != 1 ||
	    !(nm = mp_nstr(arg->column_ref->fields[0])) || !mp_find_rte(sc, NULL, nm, &lv))
		return 0;
	for (const struct scope *l = sc; l; l = l->outer)
		for (int i = 0; i < l->n; i++)
			if (l->r[i].unq && mp_rte_col(c, l, &l->r[i], nm, &s))
				return 0; /* p is (or may be) a column: a field of a composite */
	fields[0] = arg->column_ref->fields[0];
	fields[1] = ai->indirection[0];
	cr.n_fields = 2;
	cr.fields = fields;
	if (!mp_colref(c, sc, &cr, out))
		mp_derive(out);
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
		mp_qualname(t->names, t->n_names, &schema, &name);
		return name && (!strcmp(name, "text") || !strcmp(name, "varchar")) &&
		       free_plain(c, n->type_cast->arg, depth + 1);
	}
	case PG_QUERY__NODE__NODE_FUNC_CALL: {
		const PgQuery__FuncCall *fc = n->func_call;
		static const char *const choose[] = {"min", "max", "array_agg", "coalesce", NULL};
		static const char *const trims[] = {"btrim", "ltrim", "rtrim", NULL};

		mp_qualname(fc->funcname, fc->n_funcname, &schema, &name);
		if (!name || (schema && strcmp(schema, "pg_catalog")) || fc->agg_star)
			return 0;
		if (!mp_in_list(choose, name, 0) &&
		    !(mp_in_list(trims, name, 0) && fc->n_args == 1) &&
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
		    !(name = mp_nstr(e->name[0])))
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
void mp_expr_src(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct src *out)
{
	mp_src_none(out);
	if (!n)
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_COLUMN_REF) {
		if (!mp_colref(c, sc, n->column_ref, out))
			mp_derive(out);
		return;
	}
	if (n->node_case == PG_QUERY__NODE__NODE_A_INDIRECTION &&
	    field_of_row(c, sc, n->a_indirection, out))
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_SUB_LINK) {
		if (c->depth > MP_MAX_DEPTH * 2) {
			mp_src_unknown(out, "nesting");
			return;
		}
		c->depth++;
		sublink(c, sc, n->sub_link, out);
		c->depth--;
		return;
	}
	mp_ev(c, sc, n, out);
	mp_derive(out);
	if (out->rule == MASK_RULE_FREE && free_plain(c, n, 0))
		out->derived = 0;
}

/* A clause read outside the result (WHERE, ON, GROUP BY, ...): a probe when masked. */
void mp_clause(struct ctx *c, const struct scope *sc, const PgQuery__Node *n, struct qres *q)
{
	struct src s;

	if (!n)
		return;
	mp_src_none(&s);
	mp_ev(c, sc, n, &s);
	mp_record_probe(c, &s);
	mp_merge(c, &q->aux, &s);
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
		const char *s = cr->n_fields ? mp_nstr(cr->fields[cr->n_fields - 1]) : NULL;

		return s ? s : "?column?";
	}
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		for (size_t i = n->a_indirection->n_indirection; i > 0; i--) {
			const char *s = mp_nstr(n->a_indirection->indirection[i - 1]);

			if (s)
				return s;
		}
		return colname(n->a_indirection->arg, depth + 1);
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		mp_qualname(n->func_call->funcname, n->func_call->n_funcname, &schema, &name);
		return name ? name : "?column?";
	case PG_QUERY__NODE__NODE_TYPE_CAST: {
		const char *s = colname(n->type_cast->arg, depth + 1);

		if (strcmp(s, "?column?") || !n->type_cast->type_name)
			return s;
		mp_qualname(n->type_cast->type_name->names, n->type_cast->type_name->n_names,
			    &schema, &name);
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

void mp_star(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
	     struct colset *out)
{
	const char *schema = NULL, *rel;
	const struct scope *lv;
	const struct rte *r;
	struct src u;

	if (cr->n_fields == 1) {
		for (int i = 0; i < sc->n; i++)
			if (sc->r[i].unq)
				mp_rte_star(c, sc, &sc->r[i], out, 0);
		return;
	}
	rel = mp_nstr(cr->fields[cr->n_fields - 2]);
	if (cr->n_fields >= 3)
		schema = mp_nstr(cr->fields[cr->n_fields - 3]);
	r = rel ? mp_find_rte(sc, schema, rel, &lv) : NULL;
	if (!r) {
		mp_src_unknown(&u, rel ? rel : "*");
		mp_cs_unknown(c, out, &u);
		return;
	}
	mp_rte_star(c, lv, r, out, 0);
}

void mp_targets(struct ctx *c, const struct scope *sc, PgQuery__Node **tl, size_t n,
		struct colset *out)
{
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt;
		const PgQuery__Node *v;
		struct src s;

		if (tl[i]->node_case != PG_QUERY__NODE__NODE_RES_TARGET) {
			mp_src_unknown(&s, "target");
			mp_cs_push(c, out, "?column?", &s);
			continue;
		}
		rt = tl[i]->res_target;
		v = rt->val;
		if (is_star_ref(v)) {
			mp_star(c, sc, v->column_ref, out);
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
			    (nm = mp_nstr(arg->column_ref->fields[0])))
				r = mp_find_rte(sc, NULL, nm, &lv);
			if (r) {
				mp_rte_star(c, lv, r, out, 0);
			} else {
				mp_expr_src(c, sc, v, &s);
				mp_cs_unknown(c, out, &s);
			}
			continue;
		}
		mp_expr_src(c, sc, v, &s);
		mp_cs_push(c, out, rt->name && *rt->name ? rt->name : colname(v, 0), &s);
	}
}

/* ORDER BY / DISTINCT ON / GROUP BY item: an output column by name or position, else an
 * expression over the FROM items. */
void mp_sort_item(struct ctx *c, const struct scope *sc, const PgQuery__Node *n,
		  const struct colset *outcols, int names_first, struct qres *q)
{
	const PgQuery__Node *e = n;
	struct src s;

	if (!n)
		return;
	if (e->node_case == PG_QUERY__NODE__NODE_SORT_BY) {
		if (e->sort_by->n_use_op) { /* ORDER BY x USING op: op compares the values */
			const char *schema, *name;

			mp_src_none(&s);
			mp_ev(c, sc, e->sort_by->node, &s);
			mp_qualname(e->sort_by->use_op, e->sort_by->n_use_op, &schema, &name);
			mp_operator_use(c, schema, name, &s, &s);
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
			mp_record_probe(c, &s);
			mp_merge(c, &q->aux, &s);
		} else if (outcols->unknown) {
			s = outcols->unk;
			mp_record_probe(c, &s);
			mp_merge(c, &q->aux, &s);
		}
		return;
	}
	if (e->node_case == PG_QUERY__NODE__NODE_COLUMN_REF && e->column_ref->n_fields == 1 &&
	    mp_nstr(e->column_ref->fields[0])) {
		/* ORDER BY prefers an output column of that name, GROUP BY an input one; where
		 * both exist both count. An output name that is no input column is not
		 * unknown. */
		const char *nm = mp_nstr(e->column_ref->fields[0]);
		struct src in;
		int found = 0;

		mp_src_none(&s);
		for (int i = 0; i < outcols->n; i++)
			if (!strcmp(outcols->v[i].name, nm)) {
				mp_merge(c, &s, &outcols->v[i].s);
				found = 1;
			}
		mp_colref(c, sc, e->column_ref, &in);
		if (!found || in.rule != MASK_RULE_UNKNOWN)
			mp_merge(c, &s, &in);
		mp_record_probe(c, &s);
		mp_merge(c, &q->aux, &s);
		return;
	}
	mp_clause(c, sc, e, q);
}
