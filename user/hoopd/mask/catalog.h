/*
 * What hoopd knows of one database's schema, for masking: relations (tables, views,
 * materialized views, partitioned and foreign tables) with their columns, view definitions,
 * and the names of user-defined functions (whose bodies can read anything) and operators. This file is the
 * in-memory model (built, then immutable and shared); catalog_fetch.c fills it from the
 * database over a connection of hoopd's own and refreshes it.
 */
#ifndef HOOP_CATALOG_H
#define HOOP_CATALOG_H

#include <stdint.h>

#define CAT_NAME 64

struct cat_col {
	int16_t attnum; /* 1-based, as pg_attribute */
	char name[CAT_NAME];
	uint32_t type_oid;
	/* the name this column (same table OID and attnum) had when hoopd first read the
	 * database, when it has been renamed since; NULL: the same (cat_inherit) */
	char *was;
};

struct cat_rel {
	uint32_t oid;
	char schema[CAT_NAME];
	char name[CAT_NAME];
	char kind;	 /* pg_class.relkind: r v m p f */
	char *viewdef;	 /* v, m: pg_get_viewdef() text (a SELECT); else NULL */
	struct cat_col *cols;
	int ncols;
	/* a partition or inheritance child (pg_inherits): its parent's rules apply to its
	 * columns too, so that a rule on patients covers patients_2020. 0 = none; set it directly
	 * after cat_add_rel. */
	uint32_t parent_oid;
	/* the schema and name this relation (same OID) had when hoopd first read the database,
	 * when it has been renamed or moved since; NULL: the same (cat_inherit) */
	char *was_schema, *was_name;
};

struct catalog;

struct catalog *cat_new(void);
/* A number no other catalog of this process has (0 for NULL): what was worked out from one
 * catalog can be kept under it. */
uint64_t cat_gen(const struct catalog *c);
void cat_free(struct catalog *c);
/* Build: add relations, their columns (any order), functions; then cat_index() once. */
struct cat_rel *cat_add_rel(struct catalog *c, uint32_t oid, const char *schema,
			    const char *name, char kind, const char *viewdef);
int cat_add_col(struct cat_rel *r, int16_t attnum, const char *name, uint32_t type_oid);
/* A function that is not built in (not in pg_catalog): its result can derive from anything. */
int cat_add_function(struct catalog *c, const char *schema, const char *name);
/* An operator defined outside pg_catalog, by name (pg_operator.oprname), with the name of the
 * function it runs (oprcode); shadows: the server can pick it for operands of built-in types
 * (each operand's type is in pg_catalog, a domain, or has an implicit cast from a built-in
 * type), so that where a built-in operator's name is written, this one may be what runs. */
int cat_add_operator(struct catalog *c, const char *name, const char *fn, int shadows);
/* A type (pg_type.typname) that a conversion into runs user code: a cast to it WITH FUNCTION
 * of a function outside pg_catalog (from any type, built-in ones too), a domain with a CHECK,
 * a type whose input function is not pg_catalog's. fn: that function, or "". */
int cat_add_code_type(struct catalog *c, const char *name, const char *fn);
int cat_index(struct catalog *c);
/* Masking rules name columns; a column keeps its identity (table OID, attnum) when it is
 * renamed. Carries into c, a newly read catalog of a database, the names each relation and
 * column had in old, the catalog it replaces (their names at first sight, if old had them
 * from an earlier one): a rule that matched a column then still matches it under its new
 * name. 0 or -ENOMEM (c is then as it was). */
int cat_inherit(struct catalog *c, const struct catalog *old);

const struct cat_rel *cat_rel_by_oid(const struct catalog *c, uint32_t oid);
/* Relations named `name` (case-sensitive: callers fold as the server does). With schema NULL,
 * every schema's relation of that name (callers take the union: search_path is the session's
 * and may change); with a schema, at most one. Returns how many, up to max, in out. */
int cat_rels_by_name(const struct catalog *c, const char *schema, const char *name,
		     const struct cat_rel **out, int max);
const struct cat_col *cat_col_by_attnum(const struct cat_rel *r, int attnum);
const struct cat_col *cat_col_by_name(const struct cat_rel *r, const char *name);
/* Is there a user-defined function of this name (schema NULL: in any schema)? */
int cat_is_user_function(const struct catalog *c, const char *schema, const char *name);
/* How many user-defined operators have this name; the names of the functions they run (up to
 * max of them) in fns, valid as long as the catalog; in *shadows how many of them shadow. */
int cat_user_operator(const struct catalog *c, const char *name, const char **fns, int max,
		      int *shadows);
/* How many of cat_add_code_type's entries have this type name. */
int cat_code_type(const struct catalog *c, const char *name);
int cat_nrels(const struct catalog *c);

#endif
