/*
 * Masking provenance, scopes (maskplan_int.h): the range entries a query's column references
 * resolve against, resolved the way PostgreSQL's parse_relation.c does (qualified names, the
 * innermost level that has an unqualified one, outer queries), and the FROM items, joins and
 * WITH lists that fill them.
 */
#include "maskplan_int.h"

/* ---- scopes ---- */

struct rte *mp_add_rte(struct ctx *c, struct scope *sc, enum rte_kind kind)
{
	struct rte *r;

	if (sc->n == sc->cap) {
		int ncap = sc->cap ? sc->cap * 2 : 8;
		struct rte *v = mp_amalloc(c, (size_t)ncap * sizeof(*v));

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
	mp_src_none(&r->cols.unk);
	return r;
}

/* Column col of FROM item r: 2 it has it, 1 it may have it (columns not known), 0 it has not. */
int mp_rte_col(struct ctx *c, const struct scope *sc, const struct rte *r, const char *col,
	       struct src *out)
{
	int found = 0;

	mp_src_none(out);
	switch (r->kind) {
	case RTE_COLS: {
		int k = 0;

		for (int i = 0; i < r->cols.n; i++)
			if (!strcmp(r->cols.v[i].name, col))
				mp_fold(c, out, &r->cols.v[i].s, k++ == 0);
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
		mp_src_unknown(out, why);
		return 1;
	}
	case RTE_BYNAME:
		mp_src_rule(
		    out, mask_rule_match(c->mp, r->schema[0] ? r->schema : NULL, r->relname, col),
		    r->relname, col);
		return 1;
	case RTE_SYSTEM:
		if (mp_sys_col_risky(r->relname, col)) {
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", r->relname, col);
			mp_src_unknown(out, why);
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
			fa = mp_rte_col(c, sc, &sc->r[r->left], col, &a);
		if (r->right >= 0 && r->right < sc->n)
			fb = mp_rte_col(c, sc, &sc->r[r->right], col, &b);
		if (fa)
			mp_merge(c, out, &a);
		if (fb)
			mp_merge(c, out, &b);
		if (fa && fb && a.rule != MASK_RULE_NONE && b.rule != MASK_RULE_NONE &&
		    !(a.rule == MASK_RULE_FREE && b.rule == MASK_RULE_FREE))
			mp_derive(out);
		found = fa > fb ? fa : fb;
		return found;
	}
	}
	return 0;
}

/* The whole row of r (r, r.*, row_to_json(r)): every column. */
void mp_rte_whole(struct ctx *c, const struct scope *sc, const struct rte *r, struct src *acc,
		  int depth)
{
	char why[SRC_LEN];

	if (depth > MP_MAX_DEPTH) {
		mp_merge_unknown(c, acc, "nesting");
		return;
	}
	switch (r->kind) {
	case RTE_COLS:
	case RTE_FUNC:
		mp_cs_whole(c, &r->cols, acc);
		if (r->starcols)
			mp_cs_whole(c, r->starcols, acc);
		break;
	case RTE_UNKNOWN:
	case RTE_BYNAME:
		/* no catalog to list the columns: any of them may be masked (or a view's) */
		snprintf(why, sizeof(why), "%s.*", r->relname);
		mp_merge_unknown(c, acc, why);
		break;
	case RTE_SYSTEM:
		if (mp_sys_col_risky(r->relname, NULL)) {
			snprintf(why, sizeof(why), "%s.*", r->relname);
			mp_merge_unknown(c, acc, why);
		}
		break;
	case RTE_JOIN:
		if (r->left >= 0 && r->left < sc->n)
			mp_rte_whole(c, sc, &sc->r[r->left], acc, depth + 1);
		if (r->right >= 0 && r->right < sc->n)
			mp_rte_whole(c, sc, &sc->r[r->right], acc, depth + 1);
		break;
	}
	mp_derive(acc);
}

/* r.* in a target list: its columns in order, or an unknown count. */
void mp_rte_star(struct ctx *c, const struct scope *sc, const struct rte *r, struct colset *out,
		 int depth)
{
	struct src s;

	if (depth > MP_MAX_DEPTH) {
		mp_src_unknown(&s, "nesting");
		mp_cs_unknown(c, out, &s);
		return;
	}
	switch (r->kind) {
	case RTE_COLS:
	case RTE_FUNC:
		mp_cs_append(c, out, r->starcols ? r->starcols : &r->cols);
		break;
	case RTE_JOIN:
		if (r->left >= 0 && r->left < sc->n)
			mp_rte_star(c, sc, &sc->r[r->left], out, depth + 1);
		if (r->right >= 0 && r->right < sc->n)
			mp_rte_star(c, sc, &sc->r[r->right], out, depth + 1);
		break;
	default:
		mp_src_none(&s);
		mp_rte_whole(c, sc, r, &s, depth + 1);
		if (s.rule != MASK_RULE_NONE)
			s.derived = 0;
		mp_cs_unknown(c, out, &s);
		break;
	}
}

const struct rte *mp_find_rte(const struct scope *sc, const char *schema, const char *name,
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

	return mp_in_list(sys, col, 0);
}

/*
 * A column reference's provenance. Returns 1 when it is exactly one column (out->derived is that
 * column's), 0 when it is several, a whole row, or not known.
 */
static int colref_resolve(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
			  struct src *out);

/* A column reference's provenance (colref_resolve), noting in the plan that the statement
 * reads a masked or untraceable value wherever the reference is (maskplan.reads_masked). */
int mp_colref(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr, struct src *out)
{
	int r = colref_resolve(c, sc, cr, out);

	if (c->out && out->rule != MASK_RULE_NONE)
		c->out->reads_masked = 1;
	return r;
}

/* Unqualified: the innermost level that has the column decides; levels whose FROM items only
 * may have it (columns not known) add what they would give and defer outward. */
static int colref_unqualified(struct ctx *c, const struct scope *sc, const char *col,
			      struct src *out)
{
	int definite = 0, maybes = 0, byname = 0;
	struct src def, may, s;

	mp_src_none(&def);
	mp_src_none(&may);
	for (const struct scope *l = sc; l && !definite; l = l->outer) {
		for (int i = 0; i < l->n; i++)
			if (l->r[i].unq && mp_rte_col(c, l, &l->r[i], col, &s) == 2)
				mp_fold(c, &def, &s, definite++ == 0);
		if (definite)
			break;
		for (int i = 0; i < l->n; i++)
			if (l->r[i].unq && mp_rte_col(c, l, &l->r[i], col, &s) == 1) {
				byname += opaque_leaves(l, &l->r[i], 0);
				mp_fold(c, &may, &s, maybes++ == 0);
			}
	}
	if (definite) {
		*out = def;
		if (maybes)
			mp_fold(c, out, &may, 0);
		return out->rule != MASK_RULE_UNKNOWN && !(definite > 1 && out->derived);
	}
	if (maybes) {
		/* Several relations of unknown columns: a rule that matches one decides;
		 * none matching, the column may still be a masked one under another name
		 * (a view), so it is unknown. */
		const struct scope *lv;
		const struct rte *r = mp_find_rte(sc, NULL, col, &lv);

		*out = may;
		if (byname > 1 && out->rule == MASK_RULE_NONE) {
			mp_src_unknown(out, col);
			return 0;
		}
		if (r) { /* the name of a FROM item too: maybe its whole row */
			struct src w;

			mp_src_none(&w);
			mp_rte_whole(c, lv, r, &w, 0);
			if (w.rule != MASK_RULE_NONE) {
				mp_fold(c, out, &w, 0);
				mp_derive(out);
				return 0;
			}
		}
		return out->rule != MASK_RULE_UNKNOWN;
	}
	/* no column of that name: the whole row of a FROM item of that name */
	{
		const struct scope *lv;
		const struct rte *r = mp_find_rte(sc, NULL, col, &lv);

		if (r) {
			mp_rte_whole(c, lv, r, out, 0);
			return 0;
		}
	}
	if (is_system_column(col))
		return 1;
	mp_src_unknown(out, col);
	return 0;
}

static int colref_resolve(struct ctx *c, const struct scope *sc, const PgQuery__ColumnRef *cr,
			  struct src *out)
{
	const char *f[4] = {NULL, NULL, NULL, NULL};
	size_t n = cr->n_fields;
	int star = n && cr->fields[n - 1]->node_case == PG_QUERY__NODE__NODE_A_STAR;
	const char *col, *rel = NULL, *schema = NULL;

	mp_src_none(out);
	if (!n || n > 4) {
		mp_src_unknown(out, "column reference");
		return 0;
	}
	for (size_t i = 0; i < n - (size_t)star; i++) {
		f[i] = mp_nstr(cr->fields[i]);
		if (!f[i]) {
			mp_src_unknown(out, "column reference");
			return 0;
		}
	}
	if (star) {
		if (n == 1) { /* bare * as a value: every FROM item's row */
			for (int i = 0; i < sc->n; i++)
				if (sc->r[i].unq)
					mp_rte_whole(c, sc, &sc->r[i], out, 0);
			mp_derive(out);
			return 0;
		}
		rel = f[n - 2];
		schema = n >= 3 ? f[n - 3] : NULL;
		{
			const struct scope *lv;
			const struct rte *r = mp_find_rte(sc, schema, rel, &lv);

			if (!r) {
				mp_src_unknown(out, rel);
				return 0;
			}
			mp_rte_whole(c, lv, r, out, 0);
		}
		return 0;
	}
	col = f[n - 1];
	if (n >= 2) {
		const struct scope *lv;
		const struct rte *r;

		rel = f[n - 2];
		schema = n >= 3 ? f[n - 3] : NULL;
		r = mp_find_rte(sc, schema, rel, &lv);
		if (!r) {
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", rel, col);
			mp_src_unknown(out, why);
			return 0;
		}
		if (mp_rte_col(c, lv, r, col, out))
			return out->rule == MASK_RULE_UNKNOWN ? 0 : 1;
		if (is_system_column(col))
			return 1;
		{
			char why[SRC_LEN];

			snprintf(why, sizeof(why), "%s.%s", rel, col);
			mp_src_unknown(out, why); /* not in the catalog's columns: stale catalog */
		}
		return 0;
	}
	return colref_unqualified(c, sc, col, out);
}

/* ---- FROM ---- */

static const struct cte *find_cte(const struct cte *ctes, const char *name)
{
	for (const struct cte *t = ctes; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

void mp_rel_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeVar *rv)
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
		mp_record_unknown_rel(c, schema, name);
		r = mp_add_rte(c, sc, RTE_UNKNOWN);
		if (!r)
			return;
	} else if (t) {
		r = mp_add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = t->cols;
	} else if (c->cat &&
		   (nr = cat_rels_by_name(c->cat, schema, name, rels, MP_MAX_SAME_NAME)) > 0) {
		struct colset merged = {0}, bypos = {0};
		int differ = 0;

		mp_src_none(&merged.unk);
		mp_src_none(&bypos.unk);
		for (int k = 0; k < nr; k++) {
			struct colset one;

			mp_rel_cols(c, rels[k], &one);
			if (k == 0) {
				mp_cs_append(c, &merged, &one);
				mp_cs_append(c, &bypos, &one);
				continue;
			}
			/* the same name in another schema (search_path decides): the union */
			differ |= one.n != merged.n;
			for (int i = 0; i < one.n; i++) {
				int hit = 0;

				for (int j = 0; j < merged.n; j++)
					if (!strcmp(merged.v[j].name, one.v[i].name)) {
						mp_merge(c, &merged.v[j].s, &one.v[i].s);
						hit = 1;
						differ |= i != j;
					}
				if (!hit) {
					mp_cs_push(c, &merged, one.v[i].name, &one.v[i].s);
					differ = 1;
				}
				if (i < bypos.n)
					mp_merge(c, &bypos.v[i].s, &one.v[i].s);
				else
					mp_cs_push(c, &bypos, one.v[i].name, &one.v[i].s);
			}
			if (one.unknown) {
				mp_cs_unknown(c, &merged, &one.unk);
				mp_cs_unknown(c, &bypos, &one.unk);
			}
		}
		r = mp_add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = merged;
		if (differ && (r->starcols = mp_amalloc(c, sizeof(*r->starcols))))
			*r->starcols = bypos;
	} else if (mp_is_system(schema, name)) {
		r = mp_add_rte(c, sc, RTE_SYSTEM);
		if (!r)
			return;
	} else if (c->cat) {
		mp_record_unknown_rel(c, schema, name);
		r = mp_add_rte(c, sc, RTE_UNKNOWN);
		if (!r)
			return;
	} else {
		r = mp_add_rte(c, sc, RTE_BYNAME);
		if (!r)
			return;
	}
	snprintf(r->relname, CAT_NAME, "%s", name);
	snprintf(r->name, CAT_NAME, "%s", alias ? alias : name);
	if (!alias && schema)
		snprintf(r->schema, CAT_NAME, "%s", schema);
	if (rv->alias && r->kind == RTE_COLS)
		mp_cs_rename(c, &r->cols, rv->alias->colnames, rv->alias->n_colnames);
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
	if (mp_in_list(one, name, 0))
		return 1;
	if (mp_in_list(two, name, 0))
		return 2;
	return -1;
}

static void func_rte(struct ctx *c, struct scope *sc, const PgQuery__RangeFunction *rf)
{
	struct src s;
	int width = 0, known = 1;
	const char *fname = NULL;
	struct rte *r;

	mp_src_none(&s);
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
		mp_ev(c, sc, fn, &s);
		if (fn && fn->node_case == PG_QUERY__NODE__NODE_FUNC_CALL) {
			const char *schema, *name;
			int w;

			mp_qualname(fn->func_call->funcname, fn->func_call->n_funcname, &schema,
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
	mp_derive(&s);
	r = mp_add_rte(c, sc, RTE_FUNC);
	if (!r)
		return;
	r->cols.unk = s;
	if (known && width <= MP_MAX_COLS) {
		for (int i = 0; i < width; i++)
			mp_cs_push(c, &r->cols, width == 1 && fname ? fname : "", &s);
	} else {
		r->cols.unknown = 1;
	}
	if (rf->alias && rf->alias->aliasname && *rf->alias->aliasname) {
		snprintf(r->name, CAT_NAME, "%s", rf->alias->aliasname);
		if (width == 1 && known && !rf->alias->n_colnames && r->cols.n)
			snprintf(r->cols.v[0].name, CAT_NAME, "%s", rf->alias->aliasname);
		mp_cs_rename(c, &r->cols, rf->alias->colnames, rf->alias->n_colnames);
	} else {
		snprintf(r->name, CAT_NAME, "%s", fname ? fname : "");
	}
}

void mp_join(struct ctx *c, struct scope *sc, const PgQuery__JoinExpr *j, int depth)
{
	int start = sc->n, l, rr;
	struct qres dummy;
	struct rte *r;
	const char *alias =
	    j->alias && j->alias->aliasname && *j->alias->aliasname ? j->alias->aliasname : NULL;
	char using[64][CAT_NAME];
	int nusing = 0;

	memset(&dummy, 0, sizeof(dummy));
	mp_src_none(&dummy.aux);
	l = mp_from_item(c, sc, j->larg, depth + 1);
	rr = mp_from_item(c, sc, j->rarg, depth + 1);
	if (l < 0 || rr < 0 || l >= sc->n || rr >= sc->n)
		return;
	/* the sides answer unqualified names while ON is read */
	mp_clause(c, sc, j->quals, &dummy);
	for (size_t i = 0; i < j->n_using_clause && nusing < 64; i++)
		if (mp_nstr(j->using_clause[i]))
			snprintf(using[nusing++], CAT_NAME, "%s", mp_nstr(j->using_clause[i]));
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

		mp_src_none(&both);
		if (mp_rte_col(c, sc, &sc->r[l], using[k], &a)) {
			mp_record_probe(c, &a);
			mp_merge(c, &both, &a);
		}
		if (mp_rte_col(c, sc, &sc->r[rr], using[k], &b)) {
			mp_record_probe(c, &b);
			mp_merge(c, &both, &b);
		}
		mp_operator_use(c, NULL, "=", &both, &both);
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

		mp_src_none(&out.unk);
		for (int k = 0; k < nusing; k++) {
			struct src a, b;
			int fa = mp_rte_col(c, sc, &sc->r[l], using[k], &a);
			int fb = mp_rte_col(c, sc, &sc->r[rr], using[k], &b);

			if (!fa)
				a = b;
			else if (fb && b.rule != MASK_RULE_NONE) {
				if (a.rule != MASK_RULE_NONE)
					mp_derive(&a);
				mp_merge(c, &a, &b);
			}
			mp_cs_push(c, &out, using[k], &a);
		}
		for (int side = 0; side < 2; side++) {
			const struct colset *cs = side ? rc : lc;

			for (int i = 0; i < cs->n; i++) {
				int merged = 0;

				for (int k = 0; k < nusing; k++)
					merged |= !strcmp(cs->v[i].name, using[k]);
				if (!merged)
					mp_cs_push(c, &out, cs->v[i].name, &cs->v[i].s);
			}
		}
		r = mp_add_rte(c, sc, RTE_COLS);
		if (!r)
			return;
		r->cols = out;
	} else {
		r = mp_add_rte(c, sc, RTE_JOIN);
		if (!r)
			return;
		r->left = l;
		r->right = rr;
	}
	r->named = alias != NULL;
	snprintf(r->name, CAT_NAME, "%s", alias ? alias : "");
	if (alias && r->kind == RTE_COLS)
		mp_cs_rename(c, &r->cols, j->alias->colnames, j->alias->n_colnames);
}

/* Adds one FROM item (and, for a join, its parts); returns its index or -1. */
int mp_from_item(struct ctx *c, struct scope *sc, const PgQuery__Node *n, int depth)
{
	struct rte *r;

	if (!n)
		return -1;
	if (depth > MP_MAX_DEPTH || mp_budget(c)) {
		r = mp_add_rte(c, sc, RTE_UNKNOWN);
		if (r)
			snprintf(r->relname, CAT_NAME, "nesting");
		return r ? sc->n - 1 : -1;
	}
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_RANGE_VAR:
		mp_rel_rte(c, sc, n->range_var);
		break;
	case PG_QUERY__NODE__NODE_RANGE_SUBSELECT: {
		const PgQuery__RangeSubselect *rs = n->range_subselect;
		struct qres q;

		/* LATERAL sees the FROM items before it; otherwise only outer queries */
		mp_plan_node(c, rs->lateral ? sc : sc->outer, sc->ctes, rs->subquery, &q);
		r = mp_add_rte(c, sc, RTE_COLS);
		if (!r)
			return -1;
		r->cols = q.cols;
		if (rs->alias) {
			snprintf(r->name, CAT_NAME, "%s", rs->alias->aliasname);
			mp_cs_rename(c, &r->cols, rs->alias->colnames, rs->alias->n_colnames);
		} else {
			r->named = 0;
		}
		break;
	}
	case PG_QUERY__NODE__NODE_RANGE_FUNCTION:
		func_rte(c, sc, n->range_function);
		break;
	case PG_QUERY__NODE__NODE_JOIN_EXPR:
		mp_join(c, sc, n->join_expr, depth);
		break;
	case PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE: {
		struct qres dummy;

		memset(&dummy, 0, sizeof(dummy));
		if (mp_from_item(c, sc, n->range_table_sample->relation, depth + 1) < 0)
			return -1;
		for (size_t i = 0; i < n->range_table_sample->n_args; i++)
			mp_clause(c, sc, n->range_table_sample->args[i], &dummy);
		mp_clause(c, sc, n->range_table_sample->repeatable, &dummy);
		return sc->n - 1;
	}
	case PG_QUERY__NODE__NODE_RANGE_TABLE_FUNC: {
		const PgQuery__RangeTableFunc *tf = n->range_table_func;
		struct src s;

		mp_src_none(&s);
		mp_ev(c, sc, tf->docexpr, &s);
		mp_ev(c, sc, tf->rowexpr, &s);
		for (size_t i = 0; i < tf->n_namespaces; i++)
			mp_ev(c, sc, tf->namespaces[i], &s);
		for (size_t i = 0; i < tf->n_columns; i++)
			mp_ev(c, sc, tf->columns[i], &s);
		mp_derive(&s);
		r = mp_add_rte(c, sc, RTE_FUNC);
		if (!r)
			return -1;
		r->cols.unk = s;
		for (size_t i = 0; i < tf->n_columns; i++) {
			const PgQuery__Node *col = tf->columns[i];

			mp_cs_push(c, &r->cols,
				   col->node_case == PG_QUERY__NODE__NODE_RANGE_TABLE_FUNC_COL
				       ? col->range_table_func_col->colname
				       : "",
				   &s);
		}
		if (tf->alias && tf->alias->aliasname) {
			snprintf(r->name, CAT_NAME, "%s", tf->alias->aliasname);
			mp_cs_rename(c, &r->cols, tf->alias->colnames, tf->alias->n_colnames);
		}
		break;
	}
	default: {
		struct src s;

		mp_src_none(&s);
		mp_ev(c, sc, n, &s);
		r = mp_add_rte(c, sc, RTE_UNKNOWN);
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
		if (mp_rank(c, a->v[i].s.rule) != mp_rank(c, b->v[i].s.rule))
			return 0;
	return !a->unknown || mp_rank(c, a->unk.rule) == mp_rank(c, b->unk.rule);
}

const struct cte *mp_with(struct ctx *c, const struct scope *outer, const struct cte *ctes,
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
		t = mp_amalloc(c, sizeof(*t));
		if (!t)
			return ctes;
		snprintf(t->name, CAT_NAME, "%s", ce->ctename ? ce->ctename : "");
		mp_src_none(&t->cols.unk);
		if (w->recursive && ce->ctequery &&
		    ce->ctequery->node_case == PG_QUERY__NODE__NODE_SELECT_STMT &&
		    ce->ctequery->select_stmt->op > PG_QUERY__SET_OPERATION__SETOP_NONE &&
		    ce->ctequery->select_stmt->larg) {
			/* WITH RECURSIVE: the first branch, then rounds over the whole query with
			 * itself in scope until its columns stop getting stronger */
			int round;

			mp_plan_select(c, outer, ctes, ce->ctequery->select_stmt->larg, &q);
			t->cols = q.cols;
			mp_cs_rename(c, &t->cols, ce->aliascolnames, ce->n_aliascolnames);
			t->next = ctes;
			for (round = 0; round < MP_CTE_ROUNDS; round++) {
				struct colset prev = t->cols;

				mp_plan_node(c, outer, t, ce->ctequery, &q);
				mp_cs_rename(c, &q.cols, ce->aliascolnames, ce->n_aliascolnames);
				for (int k = 0; k < q.cols.n && k < prev.n; k++)
					mp_merge(c, &q.cols.v[k].s, &prev.v[k].s);
				t->cols = q.cols;
				if (same_ranks(c, &prev, &q.cols))
					break;
			}
			if (round == MP_CTE_ROUNDS) {
				struct src u;

				mp_src_unknown(&u, t->name);
				for (int k = 0; k < t->cols.n; k++)
					t->cols.v[k].s = u;
			}
		} else {
			mp_plan_node(c, outer, ctes, ce->ctequery, &q);
			t->cols = q.cols;
			mp_cs_rename(c, &t->cols, ce->aliascolnames, ce->n_aliascolnames);
			t->next = ctes;
		}
		ctes = t;
	}
	return ctes;
}
