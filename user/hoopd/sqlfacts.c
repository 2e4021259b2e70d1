/*
 * SQL facts from PostgreSQL's parse tree: libpg_query's protobuf form, unpacked into protobuf-c
 * structs (in one arena) and walked through their descriptors, so that every node type is
 * visited without a case per type and only the nodes that carry facts have code of their own.
 *
 * The facts are those the JSON form gave (hoop read libpg_query's JSON with json-c before): a
 * field counts as present where the JSON form would have written it, names come in the same
 * order, and a tree deeper than the JSON reader took is refused the same way (depth is counted
 * as in that JSON text: every object, array and value one level).
 */
#include "sqlfacts.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <pthread.h>
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

/* ---- node types ----------------------------------------------------------------------------- */

/* What a node type contributes beyond its kinds, decided once from its name. */
enum special {
	SP_NONE,
	SP_DROP,     /* DropStmt: the kind from removeType, the dropped names */
	SP_COPY,     /* direction and source */
	SP_GRANT,    /* GrantStmt, GrantRoleStmt: grant or revoke */
	SP_VARSET,   /* SET: role, session authorization, or a setting */
	SP_SELECT,   /* SELECT ... INTO creates a table */
	SP_UPDDEL,   /* UPDATE or DELETE without WHERE */
	SP_EXECUTE,  /* the prepared statement's name */
	SP_FUNCCALL, /* the function's name */
	SP_EXPLAIN,  /* only EXPLAIN ANALYZE's statement runs */
};

struct ntype {
	const ProtobufCMessageDescriptor *d; /* the message in the Node's oneof */
	const char *name;		     /* its type name, as the JSON form keyed it */
	uint64_t kinds;
	int is_stmt; /* named *Stmt: the statement context of what is inside */
	enum special sp;
};

#define NT_MAX 512
static struct ntype g_types[NT_MAX];
static pthread_once_t g_types_once = PTHREAD_ONCE_INIT;

static int ends_with_stmt(const char *s)
{
	size_t n = strlen(s);

	return n >= 4 && !strcmp(s + n - 4, "Stmt");
}

static void types_init(void)
{
	const ProtobufCMessageDescriptor *nd = &pg_query__node__descriptor;

	for (unsigned i = 0; i < nd->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &nd->fields[i];
		struct ntype *t;
		const char *n;
		int known = 0;

		if (fd->id >= NT_MAX || fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		t = &g_types[fd->id];
		t->d = fd->descriptor;
		t->name = n = t->d->short_name;
		t->is_stmt = ends_with_stmt(n);
		for (size_t k = 0; k < sizeof(stmt_kinds) / sizeof(stmt_kinds[0]); k++)
			if (!strcmp(n, stmt_kinds[k].node)) {
				t->kinds |= 1ULL << stmt_kinds[k].kind;
				known = 1;
			}
		if (!strcmp(n, "DropStmt"))
			t->sp = SP_DROP;
		else if (!strcmp(n, "CopyStmt"))
			t->sp = SP_COPY;
		else if (!strcmp(n, "GrantStmt") || !strcmp(n, "GrantRoleStmt"))
			t->sp = SP_GRANT;
		else if (!strcmp(n, "VariableSetStmt"))
			t->sp = SP_VARSET;
		else if (!strcmp(n, "SelectStmt"))
			t->sp = SP_SELECT;
		else if (!strcmp(n, "UpdateStmt") || !strcmp(n, "DeleteStmt"))
			t->sp = SP_UPDDEL;
		else if (!strcmp(n, "ExecuteStmt"))
			t->sp = SP_EXECUTE;
		else if (!strcmp(n, "FuncCall"))
			t->sp = SP_FUNCCALL;
		else if (!strncmp(n, "Drop", 4) && strlen(n) > 8 && ends_with_stmt(n)) {
			if (!known) /* DROP OWNED, TABLESPACE, SUBSCRIPTION, USER MAPPING, ... */
				t->kinds |= 1ULL << SK_DROP_OTHER;
		} else if (t->is_stmt && !known) {
			t->kinds |= 1ULL << SK_OTHER;
		}
		if (!strcmp(n, "ExplainStmt"))
			t->sp = SP_EXPLAIN;
	}
}

static const struct ntype *ntype_of(const PgQuery__Node *n)
{
	unsigned c = (unsigned)n->node_case;

	return c && c < NT_MAX && g_types[c].d ? &g_types[c] : NULL;
}

/* The message inside a Node (every member of its oneof is a message pointer). */
static const ProtobufCMessage *inner(const PgQuery__Node *n)
{
	return (const ProtobufCMessage *)n->alias;
}

/* ---- the walk --------------------------------------------------------------------------------- */

/*
 * Depth as in libpg_query's JSON text, where the statement's node is at level 3 (the result
 * object, its "stmts" array, the RawStmt object); json-c, given SQLFACTS_MAX_DEPTH * 3 levels,
 * took values down to level JSON_DEEPEST.
 */
#define JSON_STMT_LEVEL 3
#define JSON_DEEPEST	(SQLFACTS_MAX_DEPTH * 3 - 1)

struct walk {
	struct sqlfacts *f;
	const char *sql; /* the whole text, NUL-terminated */
	const PgQuery__RawStmt *raw;
	int too_deep;
};

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
	memcpy(list[(*n)++], full, strlen(full) + 1);
}

/* A list of String nodes (qualified names): "a", "b" -> schema a, name b. */
static void qualified(PgQuery__Node *const *items, size_t n, const char **schema,
		      const char **name)
{
	*schema = *name = NULL;
	for (size_t i = 0; i < n; i++)
		if (items[i]->node_case == PG_QUERY__NODE__NODE_STRING) {
			*schema = *name;
			*name = items[i]->string->sval;
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

/* Would the JSON form have written this scalar field? (Defaults were left out, enums not.) */
static int scalar_present(const ProtobufCFieldDescriptor *fd, const void *p)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		return s && *s;
	}
	case PROTOBUF_C_TYPE_BOOL:
		return *(const protobuf_c_boolean *)p != 0;
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return *(const uint64_t *)p != 0;
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len != 0;
	default:
		return *(const uint32_t *)p != 0;
	}
}

static int deeper_than_json(struct walk *w, int level)
{
	if (level > JSON_DEEPEST)
		w->too_deep = 1;
	return w->too_deep;
}

static void walk_node(struct walk *w, const PgQuery__Node *n, const char *stmt, int level,
		      int facts);
static void walk_msg(struct walk *w, const ProtobufCMessage *m, const char *stmt, const char *key,
		     int level, int facts);

/* A field's value (a message, a Node, or an element of a repeated one) at this level. */
static void walk_value(struct walk *w, const ProtobufCFieldDescriptor *fd, const void *v,
		       const char *stmt, int level, int facts)
{
	if (fd->descriptor == &pg_query__node__descriptor)
		walk_node(w, v, stmt, level, facts);
	else
		walk_msg(w, v, stmt, fd->name, level, facts);
}

/* Every field of m, its own object at `level`. */
static void walk_fields(struct walk *w, const ProtobufCMessage *m, const char *stmt, int level,
			int facts)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields && !w->too_deep; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *p = (const char *)m + fd->offset;

		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);

			if (!n || deeper_than_json(w, level + 1))
				continue;
			if (fd->type != PROTOBUF_C_TYPE_MESSAGE) {
				deeper_than_json(w, level + 2);
				continue;
			}
			for (size_t k = 0; k < n && !w->too_deep; k++)
				walk_value(w, fd, (*(void *const *const *)p)[k], stmt, level + 2, facts);
		} else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (*(void *const *)p)
				walk_value(w, fd, *(void *const *)p, stmt, level + 1, facts);
		} else if (level + 1 > JSON_DEEPEST && scalar_present(fd, p)) {
			w->too_deep = 1; /* a scalar the JSON form would have written, too deep */
		}
	}
}

static void drop_stmt(struct walk *w, const PgQuery__DropStmt *v)
{
	struct sqlfacts *f = w->f;
	int kind = SK_DROP_OTHER;

	switch (v->remove_type) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
		kind = SK_DROP_TABLE;
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_SCHEMA:
		kind = SK_DROP_SCHEMA;
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
		kind = SK_DROP_VIEW;
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_FUNCTION:
	case PG_QUERY__OBJECT_TYPE__OBJECT_PROCEDURE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_ROUTINE:
		kind = SK_DROP_FUNCTION;
		break;
	case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
		kind = SK_DROP_INDEX;
		break;
	default:
		break;
	}
	f->kinds |= 1ULL << kind;
	if (kind != SK_DROP_TABLE && kind != SK_DROP_VIEW && kind != SK_DROP_SCHEMA)
		return;
	for (size_t i = 0; i < v->n_objects; i++) {
		const PgQuery__Node *it = v->objects[i];
		const char *schema, *name;

		if (it->node_case == PG_QUERY__NODE__NODE_LIST && it->list->n_items) {
			qualified(it->list->items, it->list->n_items, &schema, &name);
			add_name(f, f->written, &f->nwritten, schema, name);
		} else if (it->node_case == PG_QUERY__NODE__NODE_STRING) {
			/* DROP SCHEMA x: the schema, written as x.* */
			add_name(f, f->written, &f->nwritten, it->string->sval, "*");
		}
	}
}

/*
 * COPY's source or destination is a file when it is a string constant; STDIN and STDOUT are the
 * client. The tree says "no file name" for both STDIN and '' (an empty name, still a server-side
 * file), so an empty name is told apart by the token after COPY's FROM or TO.
 */
static int copy_names_string(const struct walk *w)
{
	size_t off = (size_t)w->raw->stmt_location, len = (size_t)w->raw->stmt_len;
	PgQueryScanResult sr;
	PgQuery__ScanResult *r;
	char *text;
	int file = 0;

	if (!len)
		len = strlen(w->sql + off);
	text = strndup(w->sql + off, len);
	if (!text)
		return 1; /* unknown: the stricter reading */
	sr = pg_query_scan(text);
	r = sr.error ? NULL
		     : pg_query__scan_result__unpack(NULL, sr.pbuf.len,
						      (const uint8_t *)sr.pbuf.data);
	if (r) {
		int depth = 0;

		for (size_t i = 0; i < r->n_tokens; i++) {
			PgQuery__Token t = r->tokens[i]->token;

			if (t == PG_QUERY__TOKEN__ASCII_40)
				depth++;
			else if (t == PG_QUERY__TOKEN__ASCII_41)
				depth--;
			else if (!depth && (t == PG_QUERY__TOKEN__FROM || t == PG_QUERY__TOKEN__TO)) {
				if (i + 1 < r->n_tokens &&
				    r->tokens[i + 1]->token == PG_QUERY__TOKEN__PROGRAM)
					i++;
				file = i + 1 < r->n_tokens &&
				       (r->tokens[i + 1]->token == PG_QUERY__TOKEN__SCONST ||
					r->tokens[i + 1]->token == PG_QUERY__TOKEN__USCONST);
				break;
			}
		}
		pg_query__scan_result__free_unpacked(r, NULL);
	} else {
		file = 1;
	}
	pg_query_free_scan_result(sr);
	free(text);
	return file;
}

/* A string anywhere below m (or its own value when m is a String) is "false" or "off". */
static int says_false(const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > JSON_DEEPEST)
		return 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *p = (const char *)m + fd->offset;

		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);

			if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
				for (size_t k = 0; k < n; k++)
					if (says_false((*(ProtobufCMessage *const *const *)p)[k],
						       depth + 1))
						return 1;
		} else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (*(void *const *)p && says_false(*(ProtobufCMessage *const *)p, depth + 1))
				return 1;
		} else if (fd->type == PROTOBUF_C_TYPE_STRING) {
			const char *s = *(char *const *)p;

			if (s && (!strcmp(s, "false") || !strcmp(s, "off")))
				return 1;
		}
	}
	return 0;
}

/* Only EXPLAIN ANALYZE runs the statement it explains ("ANALYZE false" is spelled so). */
static int explain_analyzes(const PgQuery__ExplainStmt *e)
{
	int analyze = 0;

	for (size_t i = 0; i < e->n_options; i++) {
		const PgQuery__Node *o = e->options[i];

		if (o->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && o->def_elem->defname &&
		    !strcmp(o->def_elem->defname, "analyze")) {
			analyze = 1;
			if (o->def_elem->arg && says_false(&o->def_elem->arg->base, 0))
				analyze = 0;
		}
	}
	return analyze;
}

/* What a node of type t says by itself (its kinds, names, flags), before what is below it. */
static void node_facts(struct walk *w, const struct ntype *t, const ProtobufCMessage *m)
{
	struct sqlfacts *f = w->f;

	switch (t->sp) {
	case SP_SELECT: {
		const PgQuery__SelectStmt *s = (const void *)m;

		/* INSERT ... VALUES (...) holds its rows as a SELECT node with only valuesLists:
		 * a literal list, not a read. */
		if (s->n_values_lists && !s->n_from_clause && !s->n_target_list)
			return;
		f->kinds |= t->kinds;
		if (s->into_clause)
			f->kinds |= 1ULL << SK_CREATE_TABLE; /* SELECT ... INTO creates a table */
		return;
	}
	case SP_DROP:
		f->kinds |= t->kinds;
		drop_stmt(w, (const void *)m);
		return;
	case SP_COPY: {
		const PgQuery__CopyStmt *c = (const void *)m;

		f->kinds |= t->kinds | 1ULL << (c->is_from ? SK_COPY_FROM : SK_COPY_TO);
		if (c->is_program)
			f->copy |= SQL_COPY_PROGRAM;
		else if ((c->filename && *c->filename) || copy_names_string(w))
			f->copy |= SQL_COPY_FILE;
		else
			f->copy |= c->is_from ? SQL_COPY_STDIN : SQL_COPY_STDOUT;
		return;
	}
	case SP_GRANT: {
		int grant = t->d == &pg_query__grant_stmt__descriptor
				    ? ((const PgQuery__GrantStmt *)m)->is_grant
				    : ((const PgQuery__GrantRoleStmt *)m)->is_grant;

		f->kinds |= t->kinds | 1ULL << (grant ? SK_GRANT : SK_REVOKE);
		return;
	}
	case SP_VARSET: {
		const char *n = ((const PgQuery__VariableSetStmt *)m)->name;

		f->kinds |= t->kinds;
		if (n && !strcmp(n, "role"))
			f->kinds |= 1ULL << SK_SET_ROLE;
		else if (n && !strcmp(n, "session_authorization"))
			f->kinds |= 1ULL << SK_SET_SESSION_AUTHORIZATION;
		else
			f->kinds |= 1ULL << SK_SET;
		return;
	}
	case SP_UPDDEL: {
		const PgQuery__Node *where = t->d == &pg_query__update_stmt__descriptor
						     ? ((const PgQuery__UpdateStmt *)m)->where_clause
						     : ((const PgQuery__DeleteStmt *)m)->where_clause;

		f->kinds |= t->kinds;
		if (!where)
			f->write_without_where = 1;
		return;
	}
	case SP_EXECUTE: {
		const char *n = ((const PgQuery__ExecuteStmt *)m)->name;

		f->kinds |= t->kinds;
		if (n)
			snprintf(f->execute_name, sizeof(f->execute_name), "%s", n);
		return;
	}
	case SP_FUNCCALL: {
		const PgQuery__FuncCall *fc = (const void *)m;
		const char *schema, *name;

		f->kinds |= t->kinds;
		if (fc->n_funcname) {
			qualified(fc->funcname, fc->n_funcname, &schema, &name);
			add_name(f, f->functions, &f->nfunctions, NULL, name);
			if (schema)
				add_name(f, f->functions, &f->nfunctions, schema, name);
		}
		return;
	}
	default:
		f->kinds |= t->kinds;
	}
}

/* A Node: an object at `level` keyed by its type, the message one level below. */
static void walk_node(struct walk *w, const PgQuery__Node *n, const char *stmt, int level,
		      int facts)
{
	const struct ntype *t;
	const ProtobufCMessage *m;

	if (deeper_than_json(w, level) || !n || !(t = ntype_of(n)) || !(m = inner(n)))
		return;
	if (deeper_than_json(w, level + 1))
		return;
	if (!facts) {
		walk_fields(w, m, stmt, level + 1, 0);
		return;
	}
	node_facts(w, t, m);
	if (t->sp == SP_EXPLAIN) {
		const PgQuery__ExplainStmt *e = (const void *)m;

		if (explain_analyzes(e)) {
			/* Its statement is judged; the options only need their depth counted. */
			if (e->query)
				walk_node(w, e->query, "ExplainStmt", level + 2, 1);
			for (size_t i = 0; i < e->n_options && !w->too_deep; i++)
				if (!deeper_than_json(w, level + 2))
					walk_node(w, e->options[i], stmt, level + 3, 0);
		} else {
			walk_fields(w, m, stmt, level + 1, 0);
		}
		return;
	}
	walk_msg(w, m, t->is_stmt ? t->name : stmt, t->name, level + 1, 1);
}

/* A message: its table names, CALL's function, then everything below it. */
static void walk_msg(struct walk *w, const ProtobufCMessage *m, const char *stmt, const char *key,
		     int level, int facts)
{
	struct sqlfacts *f = w->f;

	if (!m || deeper_than_json(w, level))
		return;
	if (!facts) {
		walk_fields(w, m, stmt, level, 0);
		return;
	}
	if (m->descriptor == &pg_query__range_var__descriptor ||
	    m->descriptor == &pg_query__with_check_option__descriptor) {
		const char *schema = NULL, *rel;
		int written;

		if (m->descriptor == &pg_query__range_var__descriptor) {
			schema = ((const PgQuery__RangeVar *)m)->schemaname;
			rel = ((const PgQuery__RangeVar *)m)->relname;
		} else {
			rel = ((const PgQuery__WithCheckOption *)m)->relname;
		}
		if (rel && *rel) {
			if (stmt && !strcmp(stmt, "CopyStmt"))
				written = key && !strcmp(key, "relation") &&
					  f->kinds & (1ULL << SK_COPY_FROM);
			else if (stmt && !strcmp(stmt, "TruncateStmt"))
				written = 1;
			else
				written = is_writer(stmt) && key && !strcmp(key, "relation");
			if (written)
				add_name(f, f->written, &f->nwritten, schema, rel);
			else
				add_name(f, f->read, &f->nread, schema, rel);
		}
	}
	if (m->descriptor == &pg_query__func_call__descriptor && key && !strcmp(key, "funccall") &&
	    ((const PgQuery__FuncCall *)m)->n_funcname)
		node_facts(w, &g_types[PG_QUERY__NODE__NODE_FUNC_CALL], m); /* CALL's function */
	walk_fields(w, m, stmt, level, 1);
}

/* ---- unbounded reads ------------------------------------------------------------------------- */

/* LIMIT n bounds a SELECT; LIMIT ALL and LIMIT NULL do not. */
static int bounded(const PgQuery__SelectStmt *sel)
{
	const PgQuery__Node *lc = sel->limit_count;

	if (!lc)
		return 0;
	return !(lc->node_case == PG_QUERY__NODE__NODE_A_CONST && lc->a_const->isnull);
}

/*
 * Is there a subquery or a function in FROM anywhere below m: a node of those types, or (as the
 * JSON text was searched) a string holding one of their names.
 */
static int has_subquery(const ProtobufCMessage *m, int depth)
{
	static const char *const marks[] = {"SubLink", "RangeSubselect", "RangeFunction"};
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > JSON_DEEPEST)
		return 1;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *p = (const char *)m + fd->offset;
		size_t n = 1;
		ProtobufCMessage *const *v;

		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)((const char *)m + fd->quantifier_offset) != fd->id)
			continue;
		if (fd->type == PROTOBUF_C_TYPE_STRING) {
			char *const *sv = (char *const *)p;

			if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
				n = *(const size_t *)((const char *)m + fd->quantifier_offset);
				sv = *(char *const *const *)p;
			}
			/* (names fold to lower case: most have neither S nor R) */
			for (size_t j = 0; j < n; j++)
				for (int k = 0; sv[j] && strpbrk(sv[j], "SR") && k < 3; k++)
					if (strstr(sv[j], marks[k]))
						return 1;
			continue;
		}
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)((const char *)m + fd->quantifier_offset);
			v = *(ProtobufCMessage *const *const *)p;
		} else {
			v = (ProtobufCMessage *const *)p;
		}
		for (size_t k = 0; k < n; k++) {
			if (!v || !v[k])
				continue;
			if (fd->descriptor == &pg_query__node__descriptor) {
				const PgQuery__Node *nd = (const void *)v[k];

				if (nd->node_case == PG_QUERY__NODE__NODE_SUB_LINK ||
				    nd->node_case == PG_QUERY__NODE__NODE_RANGE_SUBSELECT ||
				    nd->node_case == PG_QUERY__NODE__NODE_RANGE_FUNCTION)
					return 1;
			}
			if (has_subquery(v[k], depth + 1))
				return 1;
		}
	}
	return 0;
}

/* A SELECT whose every output is an aggregate, with no GROUP BY, returns one row: not bulk. */
static int one_row(const PgQuery__SelectStmt *sel)
{
	static const char *const aggs[] = {"count", "sum", "avg", "min", "max", NULL};

	if (sel->n_group_clause || sel->with_clause || !sel->n_target_list)
		return 0;
	/* An aggregate over a subquery can carry every row (max(string_agg(...))). */
	if (has_subquery(&sel->base, 0))
		return 0;
	if (sel->op != PG_QUERY__SET_OPERATION__SETOP_NONE)
		return 0;
	for (size_t i = 0; i < sel->n_target_list; i++) {
		const PgQuery__Node *it = sel->target_list[i], *val;
		const PgQuery__FuncCall *fc;
		const char *schema, *name;
		int agg = 0;

		if (it->node_case != PG_QUERY__NODE__NODE_RES_TARGET || !(val = it->res_target->val) ||
		    val->node_case != PG_QUERY__NODE__NODE_FUNC_CALL)
			return 0;
		fc = val->func_call;
		if (fc->over || !fc->n_funcname)
			return 0;
		qualified(fc->funcname, fc->n_funcname, &schema, &name);
		for (int k = 0; aggs[k] && name; k++)
			agg |= !strcmp(name, aggs[k]);
		if (!agg || (schema && strcmp(schema, "pg_catalog")))
			return 0;
	}
	return 1;
}

/*
 * Does the statement hand over (or copy elsewhere) rows without a bound? A SELECT without
 * LIMIT; and the same query behind a cursor (FETCH by FETCH), PREPARE (on EXECUTE), CREATE TABLE
 * AS / SELECT INTO, CREATE VIEW (selected later), INSERT ... SELECT, COPY (query) TO; and DML
 * with RETURNING. (EXPLAIN ANALYZE runs its query but returns only the plan.) This is what
 * `without_limit` matches.
 */
static int moves_unbounded_rows(const PgQuery__Node *st)
{
	const PgQuery__Node *q = NULL;

	switch (st->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		if (st->insert_stmt->n_returning_list)
			return 1;
		q = st->insert_stmt->select_stmt;
		if (q && q->node_case == PG_QUERY__NODE__NODE_SELECT_STMT &&
		    q->select_stmt->n_values_lists)
			return 0; /* INSERT ... VALUES: nothing is read */
		break;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		return st->update_stmt->n_returning_list != 0;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		return st->delete_stmt->n_returning_list != 0;
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
		q = st->declare_cursor_stmt->query;
		break;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		q = st->prepare_stmt->query;
		break;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
		q = st->create_table_as_stmt->query;
		break;
	case PG_QUERY__NODE__NODE_VIEW_STMT:
		q = st->view_stmt->query;
		break;
	case PG_QUERY__NODE__NODE_COPY_STMT:
		q = st->copy_stmt->query;
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		return !bounded(st->select_stmt) && !one_row(st->select_stmt);
	default:
		return 0;
	}
	return q ? moves_unbounded_rows(q) : 0;
}

/* ---- unpacking into an arena ------------------------------------------------------------------ */

/* The unpacked tree lives in one arena, freed at once: most of a small statement's tree fits in
 * the first block, on the stack. */
struct arena {
	char *cur, *end;
	void *blocks; /* further blocks, malloc'd, chained through their first word */
	int oom;
	char first[16384] __attribute__((aligned(16)));
};

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t need = (size + 15) & ~(size_t)15;

	if ((size_t)(a->end - a->cur) < need) {
		size_t bsz = need + 16 > 65536 ? need + 16 : 65536;
		char *b = malloc(bsz);

		if (!b) {
			a->oom = 1;
			return NULL;
		}
		*(void **)b = a->blocks;
		a->blocks = b;
		a->cur = b + 16;
		a->end = b + bsz;
	}
	a->cur += need;
	return a->cur - need;
}

static void arena_free_one(void *data, void *p)
{
	/* everything goes at once, in arena_release */
}

static void arena_release(struct arena *a)
{
	while (a->blocks) {
		void *n = *(void **)a->blocks;

		free(a->blocks);
		a->blocks = n;
	}
}

/* ---- entry ----------------------------------------------------------------------------------- */

static void clear(struct sqlfacts *f)
{
	/* The name lists are read only up to their counts: clearing 25 KB per statement is waste. */
	f->kinds = 0;
	f->nread = f->nwritten = f->nfunctions = 0;
	f->read[0][0] = f->written[0][0] = f->functions[0][0] = '\0';
	f->copy = f->write_without_where = f->select_without_limit = 0;
	f->too_many = f->parse_error = 0;
	f->error[0] = '\0';
	f->execute_name[0] = '\0';
}

int sqlfacts_analyze(const char *sql, size_t len, struct sqlfacts *f)
{
	PgQueryProtobufParseResult r;
	PgQuery__ParseResult *tree;
	struct arena a;
	ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free_one,
				    .allocator_data = &a};
	struct walk w = {.f = f};
	char *text;

	clear(f);
	pthread_once(&g_types_once, types_init);
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
	r = pg_query_parse_protobuf(text);
	if (r.error) {
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s", r.error->message);
		pg_query_free_protobuf_parse_result(r);
		free(text);
		return -1;
	}
	a.cur = a.first;
	a.end = a.first + sizeof(a.first);
	a.blocks = NULL;
	a.oom = 0;
	tree = pg_query__parse_result__unpack(&alloc, r.parse_tree.len,
					      (const uint8_t *)r.parse_tree.data);
	pg_query_free_protobuf_parse_result(r);
	if (!tree) {
		arena_release(&a);
		free(text);
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "cannot read the parse tree%s",
			 a.oom ? " (out of memory)" : "");
		return -1;
	}
	w.sql = text;
	for (size_t i = 0; i < tree->n_stmts && !w.too_deep; i++) {
		const PgQuery__RawStmt *raw = tree->stmts[i];

		if (!raw->stmt)
			continue;
		w.raw = raw;
		walk_node(&w, raw->stmt, NULL, JSON_STMT_LEVEL, 1);
		if (!w.too_deep && moves_unbounded_rows(raw->stmt))
			f->select_without_limit = 1;
	}
	arena_release(&a);
	free(text);
	if (w.too_deep) {
		/* As the JSON reader refused such a tree: no facts, only the refusal. */
		clear(f);
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "statement nests deeper than hoop's cap");
		return -1;
	}
	if (f->too_many && !f->parse_error) {
		/* Rules would see a partial list: what cannot be judged whole is not judged. */
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error),
			 "statement names more than %d tables or functions (hoop's cap)",
			 SQLFACTS_MAX_NAMES);
	}
	return f->parse_error ? -1 : 0;
}
