/* SQL facts from PostgreSQL's parse tree: libpg_query's JSON, walked with json-c. */
#include "sqlfacts.h"

#include <ctype.h>
#include <json-c/json.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[SK_COUNT] = {
	"select", "insert", "update", "delete", "merge", "copy_to", "copy_from", "truncate",
	"drop_table", "drop_schema", "drop_database", "drop_view", "drop_function", "drop_index",
	"drop_role", "drop_other", "alter_system", "create_table", "alter_table", "create_index",
	"create_view", "create_schema", "create_database", "create_function", "create_extension",
	"create_role", "alter_role", "grant", "revoke", "set_role", "set_session_authorization",
	"set", "show", "do", "call", "explain", "prepare", "execute", "deallocate", "transaction",
	"vacuum", "listen", "notify", "lock", "function_call", "other"};

const char *sqlfacts_kind_name(int k)
{
	return k >= 0 && k < SK_COUNT ? kind_names[k] : "?";
}

int sqlfacts_kind_from_name(const char *name)
{
	for (int i = 0; i < SK_COUNT; i++)
		if (!strcmp(name, kind_names[i]))
			return i;
	return -1;
}

static const struct {
	const char *node;
	int kind;
} stmt_kinds[] = {
	{"SelectStmt", SK_SELECT},
	{"InsertStmt", SK_INSERT},
	{"UpdateStmt", SK_UPDATE},
	{"DeleteStmt", SK_DELETE},
	{"MergeStmt", SK_MERGE},
	{"TruncateStmt", SK_TRUNCATE},
	{"DropdbStmt", SK_DROP_DATABASE},
	{"DropRoleStmt", SK_DROP_ROLE},
	{"AlterSystemStmt", SK_ALTER_SYSTEM},
	{"CreateStmt", SK_CREATE_TABLE},
	{"CreateTableAsStmt", SK_CREATE_TABLE},
	{"AlterTableStmt", SK_ALTER_TABLE},
	{"IndexStmt", SK_CREATE_INDEX},
	{"ViewStmt", SK_CREATE_VIEW},
	{"CreateSchemaStmt", SK_CREATE_SCHEMA},
	{"CreatedbStmt", SK_CREATE_DATABASE},
	{"CreateFunctionStmt", SK_CREATE_FUNCTION},
	{"CreateExtensionStmt", SK_CREATE_EXTENSION},
	{"CreateRoleStmt", SK_CREATE_ROLE},
	{"AlterRoleStmt", SK_ALTER_ROLE},
	{"AlterRoleSetStmt", SK_ALTER_ROLE},
	{"VariableShowStmt", SK_SHOW},
	{"DoStmt", SK_DO},
	{"CallStmt", SK_CALL},
	{"ExplainStmt", SK_EXPLAIN},
	{"PrepareStmt", SK_PREPARE},
	{"ExecuteStmt", SK_EXECUTE},
	{"DeallocateStmt", SK_DEALLOCATE},
	{"TransactionStmt", SK_TRANSACTION},
	{"VacuumStmt", SK_VACUUM},
	{"ListenStmt", SK_LISTEN},
	{"UnlistenStmt", SK_LISTEN},
	{"NotifyStmt", SK_NOTIFY},
	{"LockStmt", SK_LOCK},
	{"AlterDefaultPrivilegesStmt", SK_GRANT},
	{"DeclareCursorStmt", SK_SELECT},
};

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static int jbool(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static int has(struct json_object *o, const char *k)
{
	return json_object_object_get_ex(o, k, NULL);
}

static void add_name(struct sqlfacts *f, char (*list)[SQLFACTS_NAME], int *n, const char *schema,
		     const char *name)
{
	char full[SQLFACTS_NAME];

	if (!name)
		return;
	if (schema && *schema)
		snprintf(full, sizeof(full), "%s.%s", schema, name);
	else
		snprintf(full, sizeof(full), "%s", name);
	for (int i = 0; i < *n; i++)
		if (!strcmp(list[i], full))
			return;
	if (*n == SQLFACTS_MAX_NAMES) {
		f->too_many = 1;
		return;
	}
	snprintf(list[(*n)++], SQLFACTS_NAME, "%s", full);
}

/* A list of String nodes (qualified names): "a", "b" -> schema a, name b. */
static void qualified(struct json_object *list, const char **schema, const char **name)
{
	size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

	*schema = *name = NULL;
	for (size_t i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(list, i), *s;

		if (json_object_object_get_ex(it, "String", &s)) {
			*schema = *name;
			*name = jstr(s, "sval");
		}
	}
}

static int is_writer(const char *stmt)
{
	return stmt && (!strcmp(stmt, "InsertStmt") || !strcmp(stmt, "UpdateStmt") ||
			!strcmp(stmt, "DeleteStmt") || !strcmp(stmt, "MergeStmt") ||
			!strcmp(stmt, "TruncateStmt") || !strcmp(stmt, "CreateStmt") ||
			!strcmp(stmt, "CreateTableAsStmt") || !strcmp(stmt, "AlterTableStmt") ||
			!strcmp(stmt, "IndexStmt") || !strcmp(stmt, "ViewStmt"));
}

static void walk(struct json_object *o, const char *stmt, const char *key, int depth,
		 struct sqlfacts *f);

static void drop_stmt(struct json_object *v, struct sqlfacts *f)
{
	const char *rt = jstr(v, "removeType");
	struct json_object *objs;
	int kind = SK_DROP_OTHER;

	if (rt && !strcmp(rt, "OBJECT_TABLE"))
		kind = SK_DROP_TABLE;
	else if (rt && !strcmp(rt, "OBJECT_SCHEMA"))
		kind = SK_DROP_SCHEMA;
	else if (rt && (!strcmp(rt, "OBJECT_VIEW") || !strcmp(rt, "OBJECT_MATVIEW")))
		kind = SK_DROP_VIEW;
	else if (rt && (!strcmp(rt, "OBJECT_FUNCTION") || !strcmp(rt, "OBJECT_PROCEDURE") ||
			!strcmp(rt, "OBJECT_ROUTINE")))
		kind = SK_DROP_FUNCTION;
	else if (rt && !strcmp(rt, "OBJECT_INDEX"))
		kind = SK_DROP_INDEX;
	f->kinds |= 1ULL << kind;
	if (kind != SK_DROP_TABLE && kind != SK_DROP_VIEW && kind != SK_DROP_SCHEMA)
		return;
	if (!json_object_object_get_ex(v, "objects", &objs))
		return;
	for (size_t i = 0; i < json_object_array_length(objs); i++) {
		struct json_object *it = json_object_array_get_idx(objs, i), *l, *items, *s;
		const char *schema, *name;

		if (json_object_object_get_ex(it, "List", &l) &&
		    json_object_object_get_ex(l, "items", &items)) {
			qualified(items, &schema, &name);
			add_name(f, f->written, &f->nwritten, schema, name);
		} else if (json_object_object_get_ex(it, "String", &s)) {
			/* DROP SCHEMA x: the schema, written as x.* */
			add_name(f, f->written, &f->nwritten, jstr(s, "sval"), "*");
		}
	}
}

static void node(const char *type, struct json_object *v, const char *stmt, int depth,
		 struct sqlfacts *f)
{
	/* INSERT ... VALUES (...) holds its rows as a SELECT node with only valuesLists: a
	 * literal list, not a read. */
	if (!strcmp(type, "SelectStmt") && has(v, "valuesLists") && !has(v, "fromClause") &&
	    !has(v, "targetList"))
		return;
	for (size_t i = 0; i < sizeof(stmt_kinds) / sizeof(stmt_kinds[0]); i++)
		if (!strcmp(type, stmt_kinds[i].node))
			f->kinds |= 1ULL << stmt_kinds[i].kind;
	if (!strcmp(type, "DropStmt")) {
		drop_stmt(v, f);
	} else if (!strcmp(type, "CopyStmt")) {
		int from = jbool(v, "is_from");

		f->kinds |= 1ULL << (from ? SK_COPY_FROM : SK_COPY_TO);
		if (jbool(v, "is_program"))
			f->copy |= SQL_COPY_PROGRAM;
		else if (has(v, "filename"))
			f->copy |= SQL_COPY_FILE;
		else
			f->copy |= from ? SQL_COPY_STDIN : SQL_COPY_STDOUT;
	} else if (!strcmp(type, "GrantStmt") || !strcmp(type, "GrantRoleStmt")) {
		f->kinds |= 1ULL << (jbool(v, "is_grant") ? SK_GRANT : SK_REVOKE);
	} else if (!strcmp(type, "VariableSetStmt")) {
		const char *n = jstr(v, "name");

		if (n && !strcmp(n, "role"))
			f->kinds |= 1ULL << SK_SET_ROLE;
		else if (n && !strcmp(n, "session_authorization"))
			f->kinds |= 1ULL << SK_SET_SESSION_AUTHORIZATION;
		else
			f->kinds |= 1ULL << SK_SET;
	} else if (!strcmp(type, "SelectStmt") && has(v, "intoClause")) {
		f->kinds |= 1ULL << SK_CREATE_TABLE; /* SELECT ... INTO creates a table */
	} else if (!strcmp(type, "UpdateStmt") || !strcmp(type, "DeleteStmt")) {
		if (!has(v, "whereClause"))
			f->write_without_where = 1;
	} else if (!strcmp(type, "ExecuteStmt")) {
		const char *n = jstr(v, "name");

		if (n)
			snprintf(f->execute_name, sizeof(f->execute_name), "%s", n);
	} else if (!strcmp(type, "FuncCall")) {
		struct json_object *fn;
		const char *schema, *name;

		if (json_object_object_get_ex(v, "funcname", &fn)) {
			qualified(fn, &schema, &name);
			add_name(f, f->functions, &f->nfunctions, NULL, name);
			if (schema)
				add_name(f, f->functions, &f->nfunctions, schema, name);
		}
	} else if (!strncmp(type, "Drop", 4) && strlen(type) > 8 &&
		   !strcmp(type + strlen(type) - 4, "Stmt")) {
		int known = 0;

		for (size_t i = 0; i < sizeof(stmt_kinds) / sizeof(stmt_kinds[0]); i++)
			known |= !strcmp(type, stmt_kinds[i].node);
		if (!known) /* DROP OWNED, TABLESPACE, SUBSCRIPTION, USER MAPPING, ... */
			f->kinds |= 1ULL << SK_DROP_OTHER;
	} else if (strstr(type, "Stmt") && !strcmp(type + strlen(type) - 4, "Stmt")) {
		int known = 0;

		for (size_t i = 0; i < sizeof(stmt_kinds) / sizeof(stmt_kinds[0]); i++)
			known |= !strcmp(type, stmt_kinds[i].node);
		if (!known)
			f->kinds |= 1ULL << SK_OTHER;
	}
}

static void walk(struct json_object *o, const char *stmt, const char *key, int depth,
		 struct sqlfacts *f)
{
	if (depth > SQLFACTS_MAX_DEPTH * 3) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "statement nests deeper than hoop's cap");
		return;
	}
	if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			walk(json_object_array_get_idx(o, i), stmt, key, depth + 1, f);
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	if (has(o, "relname")) {
		int written = 0;

		if (stmt && !strcmp(stmt, "CopyStmt"))
			written = key && !strcmp(key, "relation") && f->kinds & (1ULL << SK_COPY_FROM);
		else if (stmt && !strcmp(stmt, "TruncateStmt"))
			written = 1;
		else
			written = is_writer(stmt) && key && !strcmp(key, "relation");
		if (written)
			add_name(f, f->written, &f->nwritten, jstr(o, "schemaname"), jstr(o, "relname"));
		else
			add_name(f, f->read, &f->nread, jstr(o, "schemaname"), jstr(o, "relname"));
	}
	if (key && !strcmp(key, "funccall") && has(o, "funcname"))
		node("FuncCall", o, stmt, depth, f); /* CALL's function is a typed field */
	json_object_object_foreach(o, k, v)
	{
		if (isupper((unsigned char)k[0]) && json_object_is_type(v, json_type_object)) {
			const char *inner = strcmp(k + (strlen(k) > 4 ? strlen(k) - 4 : 0), "Stmt")
						    ? stmt
						    : k;

			node(k, v, stmt, depth, f);
			if (!strcmp(k, "ExplainStmt")) {
				/* Only EXPLAIN ANALYZE runs the statement it explains. */
				struct json_object *opts, *q;
				int analyze = 0;

				if (json_object_object_get_ex(v, "options", &opts))
					for (size_t i = 0; i < json_object_array_length(opts); i++) {
						struct json_object *d;
						const char *n;

						if (json_object_object_get_ex(
							json_object_array_get_idx(opts, i),
							"DefElem", &d) &&
						    (n = jstr(d, "defname")) && !strcmp(n, "analyze")) {
							struct json_object *arg;

							/* ANALYZE false is spelled (analyze false) */
							analyze = 1;
							if (json_object_object_get_ex(d, "arg", &arg)) {
								const char *s = json_object_to_json_string(arg);

								if (strstr(s, "\"false\"") ||
								    strstr(s, "\"off\"") ||
								    strstr(s, "\"boolval\":{}"))
									analyze = 0;
							}
						}
					}
				if (analyze && json_object_object_get_ex(v, "query", &q))
					walk(q, "ExplainStmt", "query", depth + 1, f);
				continue;
			}
			walk(v, inner, k, depth + 1, f);
		} else {
			walk(v, stmt, k, depth + 1, f);
		}
	}
}

/* LIMIT n bounds a SELECT; LIMIT ALL and LIMIT NULL do not. */
static int bounded(struct json_object *sel)
{
	struct json_object *lc, *c;

	if (!json_object_object_get_ex(sel, "limitCount", &lc))
		return 0;
	if (json_object_object_get_ex(lc, "A_Const", &c) && jbool(c, "isnull"))
		return 0;
	return 1;
}

/* A SELECT whose every output is an aggregate, with no GROUP BY, returns one row: not bulk. */
static int one_row(struct json_object *sel)
{
	static const char *const aggs[] = {"count", "sum", "avg", "min", "max", NULL};
	struct json_object *tl;
	size_t n;

	if (has(sel, "groupClause") || has(sel, "op") == 0 || has(sel, "withClause") ||
	    !json_object_object_get_ex(sel, "targetList", &tl))
		return 0;
	{
		/* An aggregate over a subquery can carry every row (max(string_agg(...))). */
		const char *t = json_object_to_json_string_ext(sel, JSON_C_TO_STRING_PLAIN);

		if (strstr(t, "SubLink") || strstr(t, "RangeSubselect") || strstr(t, "RangeFunction"))
			return 0;
	}
	if (strcmp(jstr(sel, "op"), "SETOP_NONE"))
		return 0;
	n = json_object_array_length(tl);
	for (size_t i = 0; i < n; i++) {
		struct json_object *rt, *val, *fc, *fn;
		const char *schema, *name;
		int agg = 0;

		if (!json_object_object_get_ex(json_object_array_get_idx(tl, i), "ResTarget", &rt) ||
		    !json_object_object_get_ex(rt, "val", &val) ||
		    !json_object_object_get_ex(val, "FuncCall", &fc) || has(fc, "over") ||
		    !json_object_object_get_ex(fc, "funcname", &fn))
			return 0;
		qualified(fn, &schema, &name);
		for (int k = 0; aggs[k] && name; k++)
			agg |= !strcmp(name, aggs[k]);
		if (!agg || (schema && strcmp(schema, "pg_catalog")))
			return 0;
	}
	return n > 0;
}

/*
 * Does the statement hand over (or copy elsewhere) rows without a bound? A SELECT without
 * LIMIT; and the same query behind a cursor (FETCH by FETCH), PREPARE (on EXECUTE), CREATE TABLE
 * AS / SELECT INTO, CREATE VIEW (selected later), INSERT ... SELECT, COPY (query) TO; and DML
 * with RETURNING. (EXPLAIN ANALYZE runs its query but returns only the plan.) This is what `without_limit` matches.
 */
static int moves_unbounded_rows(struct json_object *st)
{
	static const struct {
		const char *node, *field;
	} wrappers[] = {
		{"DeclareCursorStmt", "query"}, {"PrepareStmt", "query"},
		{"CreateTableAsStmt", "query"}, {"ViewStmt", "query"},
		{"InsertStmt", "selectStmt"},	{"CopyStmt", "query"},
	};
	static const char *const dml[] = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt",
					  NULL};
	struct json_object *n, *q, *sel;

	for (int i = 0; dml[i]; i++)
		if (json_object_object_get_ex(st, dml[i], &n) && has(n, "returningList"))
			return 1;
	for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++) {
		if (json_object_object_get_ex(st, wrappers[i].node, &n) &&
		    json_object_object_get_ex(n, wrappers[i].field, &q)) {
			if (!strcmp(wrappers[i].node, "InsertStmt") &&
			    json_object_object_get_ex(q, "SelectStmt", &sel) &&
			    has(sel, "valuesLists"))
				return 0; /* INSERT ... VALUES: nothing is read */
			return moves_unbounded_rows(q);
		}
	}
	if (json_object_object_get_ex(st, "SelectStmt", &sel))
		return !bounded(sel) && !one_row(sel);
	return 0;
}

int sqlfacts_analyze(const char *sql, size_t len, struct sqlfacts *f)
{
	PgQueryParseResult r;
	struct json_tokener *tok;
	struct json_object *root, *stmts;
	char *text;

	memset(f, 0, sizeof(*f));
	if (len > SQLFACTS_MAX_TEXT) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "statement is longer than hoop's %d-byte cap",
			 SQLFACTS_MAX_TEXT);
		return -1;
	}
	text = strndup(sql, len);
	if (!text) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "out of memory");
		return -1;
	}
	r = pg_query_parse(text);
	free(text);
	if (r.error) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s", r.error->message);
		pg_query_free_parse_result(r);
		return -1;
	}
	tok = json_tokener_new_ex(SQLFACTS_MAX_DEPTH * 3);
	root = tok ? json_tokener_parse_ex(tok, r.parse_tree, (int)strlen(r.parse_tree)) : NULL;
	if (tok)
		json_tokener_free(tok);
	pg_query_free_parse_result(r);
	if (!root) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "statement nests deeper than hoop's cap");
		return -1;
	}
	if (json_object_object_get_ex(root, "stmts", &stmts)) {
		for (size_t i = 0; i < json_object_array_length(stmts); i++) {
			struct json_object *st;

			if (!json_object_object_get_ex(json_object_array_get_idx(stmts, i), "stmt",
						       &st))
				continue;
			if (moves_unbounded_rows(st))
				f->select_without_limit = 1;
			walk(st, NULL, "stmt", 0, f);
		}
	}
	json_object_put(root);
	if (f->too_many && !f->parse_error) {
		/* Rules would see a partial list: what cannot be judged whole is not judged. */
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error),
			 "statement names more than %d tables or functions (hoop's cap)",
			 SQLFACTS_MAX_NAMES);
	}
	return f->parse_error ? -1 : 0;
}
