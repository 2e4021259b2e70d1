/*
 * The catalog's in-memory model (catalog.h): relations with their columns and the names of
 * user-defined functions, built once, indexed by cat_index(), then read-only and shared by every
 * session. No database access here: catalog_fetch.c fills it.
 */
#include "catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cat_fn {
	char schema[CAT_NAME];
	char name[CAT_NAME];
};

struct catalog {
	struct cat_rel **rels; /* pointers: cat_add_rel's result stays valid as the array grows */
	int nrels, caprels;
	struct cat_fn *fns;
	int nfns, capfns;
	struct cat_fn *ops; /* user-defined operators: name, and (in schema) the function it runs */
	int nops, capops;
	unsigned char *op_shadows; /* per operator: it can be picked for built-in operand types */
	struct cat_fn *ctypes; /* types a conversion into runs user code: name, (schema) function */
	int nctypes, capctypes;
	/* after cat_index(): sorted views for the lookups (before it, lookups scan) */
	struct cat_rel **by_oid, **by_name;
	int indexed;
	uint64_t gen; /* unique to this catalog in this process */
};

/* Copies a name; -1 (ENAMETOOLONG) when it does not fit: PostgreSQL's names are 63 bytes. */
static int copy_name(char dst[CAT_NAME], const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= CAT_NAME) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
	return 0;
}

struct catalog *cat_new(void)
{
	static uint64_t gens; /* catalogs are built on the fetch worker: atomically */
	struct catalog *c = calloc(1, sizeof(struct catalog));

	if (c)
		c->gen = __atomic_add_fetch(&gens, 1, __ATOMIC_RELAXED);
	return c;
}

uint64_t cat_gen(const struct catalog *c)
{
	return c ? c->gen : 0;
}

void cat_free(struct catalog *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nrels; i++) {
		for (int k = 0; k < c->rels[i]->ncols; k++)
			free(c->rels[i]->cols[k].was);
		free(c->rels[i]->viewdef);
		free(c->rels[i]->cols);
		free(c->rels[i]->was_schema);
		free(c->rels[i]->was_name);
		free(c->rels[i]);
	}
	free(c->rels);
	free(c->fns);
	free(c->ops);
	free(c->op_shadows);
	free(c->ctypes);
	free(c->by_oid);
	free(c->by_name);
	free(c);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
	void *p;
	int ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, (size_t)ncap * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

struct cat_rel *cat_add_rel(struct catalog *c, uint32_t oid, const char *schema, const char *name,
			    char kind, const char *viewdef)
{
	struct cat_rel *r;

	if (!c || !schema || !name) {
		errno = EINVAL;
		return NULL;
	}
	if (grow((void **)&c->rels, &c->caprels, c->nrels + 1, sizeof(*c->rels)))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (copy_name(r->schema, schema) || copy_name(r->name, name)) {
		free(r);
		return NULL;
	}
	r->oid = oid;
	r->kind = kind;
	if (viewdef && !(r->viewdef = strdup(viewdef))) {
		free(r);
		return NULL;
	}
	c->rels[c->nrels++] = r;
	c->indexed = 0;
	return r;
}

int cat_add_col(struct cat_rel *r, int16_t attnum, const char *name, uint32_t type_oid)
{
	struct cat_col *cols;

	if (!r || !name || attnum <= 0)
		return -EINVAL;
	if (strlen(name) >= CAT_NAME)
		return -ENAMETOOLONG;
	if (r->ncols >= 1600) /* PostgreSQL's MaxHeapAttributeNumber */
		return -E2BIG;
	cols = realloc(r->cols, (size_t)(r->ncols + 1) * sizeof(*cols));
	if (!cols)
		return -ENOMEM;
	r->cols = cols;
	memset(&cols[r->ncols], 0, sizeof(cols[0]));
	cols[r->ncols].attnum = attnum;
	cols[r->ncols].type_oid = type_oid;
	strcpy(cols[r->ncols].name, name);
	r->ncols++;
	return 0;
}

/* Sets *dst to the first-seen name when it differs from now; 0 or -ENOMEM. */
static int set_was(char **dst, const char *first, const char *now)
{
	if (!first || !strcmp(first, now))
		return 0;
	*dst = strdup(first);
	return *dst ? 0 : -ENOMEM;
}

int cat_inherit(struct catalog *c, const struct catalog *old)
{
	if (!c || !old)
		return 0;
	for (int i = 0; i < c->nrels; i++) {
		struct cat_rel *r = c->rels[i];
		const struct cat_rel *o = cat_rel_by_oid(old, r->oid);

		if (!o)
			continue;
		if (set_was(&r->was_schema, o->was_schema ? o->was_schema : o->schema, r->schema) ||
		    set_was(&r->was_name, o->was_name ? o->was_name : o->name, r->name))
			goto oom;
		/* one of the two renamed: both are the identity's */
		if (r->was_schema && !r->was_name && !(r->was_name = strdup(r->name)))
			goto oom;
		if (r->was_name && !r->was_schema && !(r->was_schema = strdup(r->schema)))
			goto oom;
		for (int k = 0; k < r->ncols; k++) {
			const struct cat_col *oc = cat_col_by_attnum(o, r->cols[k].attnum);

			if (oc && set_was(&r->cols[k].was, oc->was ? oc->was : oc->name,
					  r->cols[k].name))
				goto oom;
		}
	}
	return 0;
oom:
	for (int i = 0; i < c->nrels; i++) {
		struct cat_rel *r = c->rels[i];

		for (int k = 0; k < r->ncols; k++) {
			free(r->cols[k].was);
			r->cols[k].was = NULL;
		}
		free(r->was_schema);
		free(r->was_name);
		r->was_schema = r->was_name = NULL;
	}
	return -ENOMEM;
}

int cat_add_function(struct catalog *c, const char *schema, const char *name)
{
	struct cat_fn *f;

	if (!c || !name)
		return -EINVAL;
	if (grow((void **)&c->fns, &c->capfns, c->nfns + 1, sizeof(*c->fns)))
		return -ENOMEM;
	f = &c->fns[c->nfns];
	if (copy_name(f->schema, schema) || copy_name(f->name, name))
		return -ENAMETOOLONG;
	c->nfns++;
	c->indexed = 0;
	return 0;
}

int cat_add_operator(struct catalog *c, const char *name, const char *fn, int shadows)
{
	struct cat_fn *o;
	int cap = c ? c->capops : 0;

	if (!c || !name)
		return -EINVAL;
	if (grow((void **)&c->ops, &c->capops, c->nops + 1, sizeof(*c->ops)))
		return -ENOMEM;
	if (c->capops != cap || !c->op_shadows) {
		unsigned char *sh = realloc(c->op_shadows, (size_t)c->capops);

		if (!sh)
			return -ENOMEM;
		c->op_shadows = sh;
	}
	o = &c->ops[c->nops];
	if (copy_name(o->name, name) || copy_name(o->schema, fn))
		return -ENAMETOOLONG;
	c->op_shadows[c->nops] = !!shadows;
	c->nops++;
	return 0;
}

int cat_user_operator(const struct catalog *c, const char *name, const char **fns, int max,
		      int *shadows)
{
	int n = 0;

	if (shadows)
		*shadows = 0;
	if (!c || !name)
		return 0;
	/* few: a database has its extensions' operators at most, scanned without an index */
	for (int i = 0; i < c->nops; i++)
		if (!strcmp(c->ops[i].name, name)) {
			if (n < max && fns)
				fns[n] = c->ops[i].schema;
			if (shadows && c->op_shadows[i])
				(*shadows)++;
			n++;
		}
	return n;
}

int cat_add_code_type(struct catalog *c, const char *name, const char *fn)
{
	struct cat_fn *t;

	if (!c || !name)
		return -EINVAL;
	if (grow((void **)&c->ctypes, &c->capctypes, c->nctypes + 1, sizeof(*c->ctypes)))
		return -ENOMEM;
	t = &c->ctypes[c->nctypes];
	if (copy_name(t->name, name) || copy_name(t->schema, fn))
		return -ENAMETOOLONG;
	c->nctypes++;
	return 0;
}

int cat_code_type(const struct catalog *c, const char *name)
{
	int n = 0;

	if (!c || !name)
		return 0;
	for (int i = 0; i < c->nctypes; i++)
		n += !strcmp(c->ctypes[i].name, name);
	return n;
}

static int cmp_col(const void *a, const void *b)
{
	const struct cat_col *x = a, *y = b;

	return (x->attnum > y->attnum) - (x->attnum < y->attnum);
}

static int cmp_oid(const void *a, const void *b)
{
	const struct cat_rel *x = *(struct cat_rel *const *)a, *y = *(struct cat_rel *const *)b;

	return (x->oid > y->oid) - (x->oid < y->oid);
}

static int cmp_relname(const void *a, const void *b)
{
	const struct cat_rel *x = *(struct cat_rel *const *)a, *y = *(struct cat_rel *const *)b;
	int d = strcmp(x->name, y->name);

	return d ? d : strcmp(x->schema, y->schema);
}

static int cmp_fn(const void *a, const void *b)
{
	const struct cat_fn *x = a, *y = b;
	int d = strcmp(x->name, y->name);

	return d ? d : strcmp(x->schema, y->schema);
}

int cat_index(struct catalog *c)
{
	struct cat_rel **o, **n;

	if (!c)
		return -EINVAL;
	o = malloc(((size_t)c->nrels + 1) * sizeof(*o));
	n = malloc(((size_t)c->nrels + 1) * sizeof(*n));
	if (!o || !n) {
		free(o);
		free(n);
		return -ENOMEM;
	}
	for (int i = 0; i < c->nrels; i++) {
		struct cat_rel *r = c->rels[i];

		if (r->ncols > 1)
			qsort(r->cols, (size_t)r->ncols, sizeof(*r->cols), cmp_col);
		o[i] = n[i] = r;
	}
	if (c->nrels > 1) {
		qsort(o, (size_t)c->nrels, sizeof(*o), cmp_oid);
		qsort(n, (size_t)c->nrels, sizeof(*n), cmp_relname);
	}
	if (c->nfns > 1)
		qsort(c->fns, (size_t)c->nfns, sizeof(*c->fns), cmp_fn);
	free(c->by_oid);
	free(c->by_name);
	c->by_oid = o;
	c->by_name = n;
	c->indexed = 1;
	return 0;
}

const struct cat_rel *cat_rel_by_oid(const struct catalog *c, uint32_t oid)
{
	int lo = 0, hi;

	if (!c)
		return NULL;
	if (!c->indexed) {
		for (int i = 0; i < c->nrels; i++)
			if (c->rels[i]->oid == oid)
				return c->rels[i];
		return NULL;
	}
	hi = c->nrels - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		uint32_t m = c->by_oid[mid]->oid;

		if (m == oid)
			return c->by_oid[mid];
		if (m < oid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

int cat_rels_by_name(const struct catalog *c, const char *schema, const char *name,
		     const struct cat_rel **out, int max)
{
	int n = 0, lo = 0, hi;

	if (!c || !name)
		return 0;
	if (!c->indexed) {
		for (int i = 0; i < c->nrels && n < max; i++)
			if (!strcmp(c->rels[i]->name, name) &&
			    (!schema || !strcmp(c->rels[i]->schema, schema)))
				out[n++] = c->rels[i];
		return n;
	}
	/* the first relation of that name, then every one after it with the same name */
	hi = c->nrels;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (strcmp(c->by_name[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int i = lo; i < c->nrels && n < max && !strcmp(c->by_name[i]->name, name); i++)
		if (!schema || !strcmp(c->by_name[i]->schema, schema))
			out[n++] = c->by_name[i];
	return n;
}

const struct cat_col *cat_col_by_attnum(const struct cat_rel *r, int attnum)
{
	if (!r)
		return NULL;
	for (int i = 0; i < r->ncols; i++)
		if (r->cols[i].attnum == attnum)
			return &r->cols[i];
	return NULL;
}

const struct cat_col *cat_col_by_name(const struct cat_rel *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (int i = 0; i < r->ncols; i++)
		if (!strcmp(r->cols[i].name, name))
			return &r->cols[i];
	return NULL;
}

int cat_is_user_function(const struct catalog *c, const char *schema, const char *name)
{
	if (!c || !name)
		return 0;
	if (!c->indexed || c->nfns < 8) {
		for (int i = 0; i < c->nfns; i++)
			if (!strcmp(c->fns[i].name, name) &&
			    (!schema || !strcmp(c->fns[i].schema, schema)))
				return 1;
		return 0;
	}
	{
		int lo = 0, hi = c->nfns;

		while (lo < hi) {
			int mid = lo + (hi - lo) / 2;

			if (strcmp(c->fns[mid].name, name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (int i = lo; i < c->nfns && !strcmp(c->fns[i].name, name); i++)
			if (!schema || !strcmp(c->fns[i].schema, schema))
				return 1;
	}
	return 0;
}

int cat_nrels(const struct catalog *c)
{
	return c ? c->nrels : 0;
}
