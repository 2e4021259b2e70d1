/*
 * SQL facts from PostgreSQL's parse tree: libpg_query's JSON form of it, read in place.
 *
 * The JSON form, not the protobuf one: libpg_query 15-4 builds its protobuf through protobuf-c,
 * whose packing visits every one of the ~240 members of each Node's oneof, so a small SELECT costs
 * about three times as much to parse to protobuf as to JSON, before any unpacking. The JSON text
 * is read by the small reader below (one pass, no allocation per value) instead of json-c, which
 * built a hash table per object and was most of the cost. Its rules are json-c's where they
 * matter: the same depth cap (every value one level below its container) and the same values.
 */
#include "sqlfacts.h"
#include "hex.h"

#include <ctype.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[SK_COUNT] = {
	"select", "insert", "update", "delete", "merge", "copy_to", "copy_from", "truncate",
	"drop_table", "drop_schema", "drop_database", "drop_view", "drop_function", "drop_index",
	"drop_role", "drop_other", "alter_system", "create_table", "alter_table", "create_index",
	"create_view", "create_schema", "create_database", "create_function", "create_extension",
	"create_role", "alter_role", "grant", "revoke", "set_role", "set_session_authorization",
	"set", "show", "do", "call", "explain", "prepare", "execute", "deallocate", "transaction",
	"vacuum", "listen", "notify", "lock", "function_call", "alter_table_drop_column",
	"alter_owner", "rename", "other", "opaque_sql", "alter_database",
	"search_path_shadows_catalog"};

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

int sqlfacts_encoding_safe(const char *name)
{
	static const char *const safe[] = {"utf8", "unicode", "sqlascii", "latin", "iso8859",
					   "win125", "windows125", "cp125", "win866", "windows866",
					   "cp866", "win874", "windows874", "koi8", "euc", "alt",
					   "mule", "tcvn", "abc", "vscii", NULL};
	char n[64];
	size_t k = 0;

	for (const char *c = name; c && *c; c++) {
		if (!isalnum((unsigned char)*c))
			continue;
		if (k + 1 >= sizeof(n))
			return 0;
		n[k++] = (char)tolower((unsigned char)*c);
	}
	n[k] = '\0';
	if (!k)
		return 0;
	for (int i = 0; safe[i]; i++)
		if (!strncmp(n, safe[i], strlen(safe[i])))
			return 1;
	return 0;
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
	/* Statements that bind code to syntax or to objects, so that it runs where no call names
	 * it: an operator, an aggregate, a type's I/O or a domain's CHECK, a cast, an operator
	 * class (which operators ORDER BY, DISTINCT and joins use), a conversion, a transform, a
	 * language, an event trigger, an access method, a trigger, a rule, a row security policy,
	 * a foreign-data wrapper's handler, a function's SET search_path or SECURITY DEFINER.
	 * Each is create_function: what it binds runs as opaquely as a new function's body, and
	 * an operator over a built-in (pg_notify, setval, ts_rewrite) is that built-in called
	 * under a name no rule and no allowlist knows. */
	{"DefineStmt", SK_CREATE_FUNCTION},
	{"CreateCastStmt", SK_CREATE_FUNCTION},
	{"CreateOpClassStmt", SK_CREATE_FUNCTION},
	{"CreateOpFamilyStmt", SK_CREATE_FUNCTION},
	{"AlterOpFamilyStmt", SK_CREATE_FUNCTION},
	{"AlterOperatorStmt", SK_CREATE_FUNCTION},
	{"CreateConversionStmt", SK_CREATE_FUNCTION},
	{"CreateTransformStmt", SK_CREATE_FUNCTION},
	{"CreatePLangStmt", SK_CREATE_FUNCTION},
	{"CreateEventTrigStmt", SK_CREATE_FUNCTION},
	{"AlterEventTrigStmt", SK_CREATE_FUNCTION},
	{"CreateAmStmt", SK_CREATE_FUNCTION},
	{"CreateDomainStmt", SK_CREATE_FUNCTION},
	{"AlterDomainStmt", SK_CREATE_FUNCTION},
	{"CreateRangeStmt", SK_CREATE_FUNCTION},
	{"AlterTypeStmt", SK_CREATE_FUNCTION},
	{"CreateTrigStmt", SK_CREATE_FUNCTION},
	{"RuleStmt", SK_CREATE_FUNCTION},
	{"CreatePolicyStmt", SK_CREATE_FUNCTION},
	{"AlterPolicyStmt", SK_CREATE_FUNCTION},
	{"CreateFdwStmt", SK_CREATE_FUNCTION},
	{"AlterFdwStmt", SK_CREATE_FUNCTION},
	{"AlterFunctionStmt", SK_CREATE_FUNCTION},
	{"CreateExtensionStmt", SK_CREATE_EXTENSION},
	{"CreateRoleStmt", SK_CREATE_ROLE},
	{"AlterRoleStmt", SK_ALTER_ROLE},
	{"AlterRoleSetStmt", SK_ALTER_ROLE},
	{"AlterDatabaseStmt", SK_ALTER_DATABASE},
	{"AlterDatabaseSetStmt", SK_ALTER_DATABASE},
	{"AlterDatabaseRefreshCollStmt", SK_ALTER_DATABASE},
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
	{"RenameStmt", SK_RENAME},
	{"AlterOwnerStmt", SK_ALTER_OWNER},
};

/* ---- libpg_query's JSON, read in place ------------------------------------------------------ */

/*
 * The text is parsed once into an array of values in document order; an object's or array's
 * members are chained. Keys and strings are copied, unescaped and NUL-terminated, into one side
 * buffer; the text itself stays as it was, for the two checks that search it (one_row, EXPLAIN's
 * options). A value deeper than JSON_DEEPEST (the root is at 0, each member one below its
 * container) refuses the whole text, as json-c did when hoop gave it SQLFACTS_MAX_DEPTH * 3
 * levels.
 */
#define JSON_DEEPEST (SQLFACTS_MAX_DEPTH * 3 - 1)

enum jtype { J_OBJ = 1, J_ARR, J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL };

struct jv {
	uint32_t type;
	uint32_t key;	     /* object members: the key, an offset in strs */
	uint32_t str;	     /* strings, numbers, literals: the value, an offset in strs */
	uint32_t start, end; /* the value's bytes in the text */
	uint32_t first;	     /* objects, arrays: the first member (0: none; the root is 0) */
	uint32_t next;	     /* the next member of the same container (0: none) */
	uint32_t n;	     /* objects, arrays: their members */
};

struct jdoc {
	const char *t;
	size_t len, pos;
	struct jv *v;
	uint32_t nv, cap;
	char *strs;
	size_t ns;
	int err; /* 1: deeper than allowed, or not JSON; 2: out of memory */
};

static void jskip(struct jdoc *d)
{
	while (d->pos < d->len && (d->t[d->pos] == ' ' || d->t[d->pos] == '\n' ||
				   d->t[d->pos] == '\r' || d->t[d->pos] == '\t'))
		d->pos++;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

static int u4(const char *p, unsigned *cp)
{
	int a = hex_digit(p[0]), b = hex_digit(p[1]), c = hex_digit(p[2]), e = hex_digit(p[3]);

	if (a < 0 || b < 0 || c < 0 || e < 0)
		return -1;
	*cp = (unsigned)(a << 12 | b << 8 | c << 4 | e);
	return 0;
}

/* The string at d->pos (its opening quote), unescaped into strs; its offset there. */
static uint32_t jstring_at(struct jdoc *d)
{
	uint32_t at = (uint32_t)d->ns;
	char *o = d->strs + d->ns;
	const char *t = d->t;

	d->pos++;
	while (d->pos < d->len && t[d->pos] != '"') {
		unsigned cp;

		if (t[d->pos] != '\\') {
			*o++ = t[d->pos++];
			continue;
		}
		if (d->pos + 1 >= d->len)
			break;
		switch (t[d->pos + 1]) {
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u':
			if (d->pos + 6 > d->len || u4(t + d->pos + 2, &cp)) {
				d->err = 1;
				return 0;
			}
			d->pos += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && d->pos + 8 <= d->len &&
			    t[d->pos + 2] == '\\' && t[d->pos + 3] == 'u') {
				unsigned lo;

				if (!u4(t + d->pos + 4, &lo) && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					d->pos += 6;
				}
			}
			o += put_utf8(o, cp);
			break;
		default: /* \" \\ \/ */
			*o++ = t[d->pos + 1];
		}
		d->pos += 2;
	}
	if (d->pos >= d->len) {
		d->err = 1;
		return 0;
	}
	d->pos++; /* the closing quote */
	*o++ = '\0';
	d->ns = (size_t)(o - d->strs);
	return at;
}

static uint32_t jnew(struct jdoc *d, uint32_t type)
{
	if (d->nv == d->cap) {
		uint32_t cap = d->cap * 2;
		struct jv *v = realloc(d->v, cap * sizeof(*v));

		if (!v) {
			d->err = 2;
			return 0;
		}
		d->v = v;
		d->cap = cap;
	}
	memset(&d->v[d->nv], 0, sizeof(d->v[0]));
	d->v[d->nv].type = type;
	d->v[d->nv].start = (uint32_t)d->pos;
	return d->nv++;
}

/* The value at d->pos, at this level. Its index (0 on error for members: d->err says). */
static uint32_t jvalue(struct jdoc *d, int level)
{
	uint32_t i, last = 0;
	char c;

	jskip(d);
	if (level > JSON_DEEPEST || d->pos >= d->len) {
		d->err = 1;
		return 0;
	}
	c = d->t[d->pos];
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';

		i = jnew(d, c == '{' ? J_OBJ : J_ARR);
		if (d->err)
			return 0;
		d->pos++;
		jskip(d);
		if (d->pos < d->len && d->t[d->pos] == close) {
			d->pos++;
			d->v[i].end = (uint32_t)d->pos;
			return i;
		}
		for (;;) {
			uint32_t key = 0, m;

			jskip(d);
			if (c == '{') {
				if (d->pos >= d->len || d->t[d->pos] != '"') {
					d->err = 1;
					return 0;
				}
				key = jstring_at(d);
				jskip(d);
				if (d->err || d->pos >= d->len || d->t[d->pos] != ':') {
					d->err = 1;
					return 0;
				}
				d->pos++;
			}
			m = jvalue(d, level + 1);
			if (d->err)
				return 0;
			d->v[m].key = key;
			if (last)
				d->v[last].next = m;
			else
				d->v[i].first = m;
			last = m;
			d->v[i].n++;
			jskip(d);
			if (d->pos < d->len && d->t[d->pos] == ',') {
				d->pos++;
				continue;
			}
			if (d->pos < d->len && d->t[d->pos] == close) {
				d->pos++;
				d->v[i].end = (uint32_t)d->pos;
				return i;
			}
			d->err = 1;
			return 0;
		}
	}
	if (c == '"') {
		i = jnew(d, J_STR);
		if (!d->err)
			d->v[i].str = jstring_at(d);
	} else {
		size_t s = d->pos;

		while (d->pos < d->len && !strchr(",]} \n\r\t", d->t[d->pos]))
			d->pos++;
		if (d->pos == s) {
			d->err = 1;
			return 0;
		}
		i = jnew(d, 0);
		if (d->err)
			return 0;
		d->v[i].start = (uint32_t)s;
		if (d->pos - s == 4 && !memcmp(d->t + s, "true", 4))
			d->v[i].type = J_TRUE;
		else if (d->pos - s == 5 && !memcmp(d->t + s, "false", 5))
			d->v[i].type = J_FALSE;
		else if (d->pos - s == 4 && !memcmp(d->t + s, "null", 4))
			d->v[i].type = J_NULL;
		else
			d->v[i].type = J_NUM;
		d->v[i].str = (uint32_t)d->ns;
		memcpy(d->strs + d->ns, d->t + s, d->pos - s);
		d->ns += d->pos - s;
		d->strs[d->ns++] = '\0';
	}
	if (d->err)
		return 0;
	d->v[i].end = (uint32_t)d->pos;
	return i;
}

static int jparse(struct jdoc *d, const char *text, size_t len)
{
	memset(d, 0, sizeof(*d));
	d->t = text;
	d->len = len;
	d->cap = 64 + (uint32_t)(len / 16);
	d->v = malloc(d->cap * sizeof(*d->v));
	/* Every key, string and literal fits in its own bytes of the text, plus a NUL. */
	d->strs = malloc(2 * len + 16);
	if (!d->v || !d->strs)
		return d->err = 2;
	jvalue(d, 0);
	jskip(d);
	if (!d->err && d->pos != d->len)
		d->err = 1;
	return d->err;
}

static void jfree(struct jdoc *d)
{
	free(d->v);
	free(d->strs);
}

/* A value, or NULL for none (JSON null is a value: json-c made it NULL, so do its users here). */
typedef const struct jv jv;

static jv *jfirst(const struct jdoc *d, jv *o)
{
	return o && (o->type == J_OBJ || o->type == J_ARR) && o->first ? &d->v[o->first] : NULL;
}

static jv *jnext(const struct jdoc *d, jv *m)
{
	return m->next ? &d->v[m->next] : NULL;
}

static const char *jkey(const struct jdoc *d, jv *m)
{
	return d->strs + m->key;
}

static int jis(jv *o, enum jtype t)
{
	return o && o->type == t;
}

/* json_object_object_get_ex: the member named k of an object. */
static jv *jget(const struct jdoc *d, jv *o, const char *k)
{
	if (!jis(o, J_OBJ))
		return NULL;
	for (jv *m = jfirst(d, o); m; m = jnext(d, m)) {
		const char *mk = jkey(d, m);

		if (mk[0] == k[0] && !strcmp(mk, k))
			return m;
	}
	return NULL;
}

static int has(const struct jdoc *d, jv *o, const char *k)
{
	return jget(d, o, k) != NULL;
}

/* json_object_get_string of a member: a string's text, a literal's spelling. */
static const char *jstr(const struct jdoc *d, jv *o, const char *k)
{
	jv *v = jget(d, o, k);

	return v && v->type != J_OBJ && v->type != J_ARR && v->type != J_NULL ? d->strs + v->str
									      : NULL;
}

/* json_object_get_boolean of a member. */
static int jbool(const struct jdoc *d, jv *o, const char *k)
{
	jv *v = jget(d, o, k);

	if (!v)
		return 0;
	switch (v->type) {
	case J_TRUE:
		return 1;
	case J_STR:
		return d->strs[v->str] != '\0';
	case J_NUM:
		return strtod(d->strs + v->str, NULL) != 0;
	default:
		return 0;
	}
}

static size_t jlen(jv *a)
{
	return jis(a, J_ARR) ? a->n : 0;
}

/* Does the value's text hold s? (json-c's serialization of it differs only where s cannot be.) */
static int jtext_has(const struct jdoc *d, jv *v, const char *s)
{
	return memmem(d->t + v->start, v->end - v->start, s, strlen(s)) != NULL;
}

/* ---- the facts -------------------------------------------------------------------------------- */

/* The node types node() has code for. */
enum special {
	SP_NONE,
	SP_SELECT,
	SP_DROP,
	SP_COPY,
	SP_GRANT, /* GrantStmt, GrantRoleStmt */
	SP_VARSET,
	SP_UPDDEL, /* UpdateStmt, DeleteStmt */
	SP_EXECUTE,
	SP_FUNCCALL,
	SP_ALTERCMD, /* one command of ALTER TABLE */
	SP_SETSTMT,  /* ALTER DATABASE/ROLE/SYSTEM ... SET: a SET kept for later sessions */
	SP_RENAME,   /* RenameStmt, AlterOwnerStmt: of a database or role, identity changes */
};

/* What a node type (a key naming one, such as "SelectStmt") says, decided once per name. */
struct ntype {
	const char *name;
	uint64_t kinds;	 /* from stmt_kinds */
	int is_stmt;	 /* named *Stmt: the statement context of what is inside it */
	int drop_other;	 /* a Drop*Stmt that stmt_kinds does not name */
	int other;	 /* any other *Stmt that stmt_kinds does not name */
	enum special sp;
};

static struct ntype ntype_of_name(const char *name)
{
	static const struct {
		const char *name;
		enum special sp;
	} specials[] = {
		{"SelectStmt", SP_SELECT},    {"DropStmt", SP_DROP},	   {"CopyStmt", SP_COPY},
		{"GrantStmt", SP_GRANT},      {"GrantRoleStmt", SP_GRANT}, {"VariableSetStmt", SP_VARSET},
		{"UpdateStmt", SP_UPDDEL},    {"DeleteStmt", SP_UPDDEL},   {"ExecuteStmt", SP_EXECUTE},
		{"FuncCall", SP_FUNCCALL},    {"AlterTableCmd", SP_ALTERCMD},
		{"AlterDatabaseSetStmt", SP_SETSTMT}, {"AlterRoleSetStmt", SP_SETSTMT},
		{"AlterSystemStmt", SP_SETSTMT},      {"RenameStmt", SP_RENAME},
		{"AlterOwnerStmt", SP_RENAME},
	};
	struct ntype t = {.name = name};
	size_t len = strlen(name);
	int known = 0;

	t.is_stmt = len >= 4 && !strcmp(name + len - 4, "Stmt");
	for (size_t k = 0; k < sizeof(stmt_kinds) / sizeof(stmt_kinds[0]); k++)
		if (!strcmp(name, stmt_kinds[k].node)) {
			t.kinds |= 1ULL << stmt_kinds[k].kind;
			known = 1;
		}
	t.drop_other = !known && !strncmp(name, "Drop", 4) && len > 8 && t.is_stmt;
	t.other = !known && t.is_stmt && !t.drop_other;
	for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++)
		if (!strcmp(name, specials[k].name))
			t.sp = specials[k].sp;
	return t;
}

/* Every node type libpg_query knows (the members of its protobuf Node), worked out once. */
#define NT_SLOTS 1024
static struct ntype g_nt[NT_SLOTS];
static pthread_once_t g_nt_once = PTHREAD_ONCE_INIT;

static uint32_t nt_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static void nt_init(void)
{
	const ProtobufCMessageDescriptor *nd = &pg_query__node__descriptor;

	for (unsigned i = 0; i < nd->n_fields; i++) {
		const ProtobufCMessageDescriptor *md = nd->fields[i].descriptor;
		uint32_t h;

		if (nd->fields[i].type != PROTOBUF_C_TYPE_MESSAGE || !md)
			continue;
		h = nt_hash(md->short_name);
		for (uint32_t k = 0; k < NT_SLOTS; k++)
			if (!g_nt[(h + k) % NT_SLOTS].name) {
				g_nt[(h + k) % NT_SLOTS] = ntype_of_name(md->short_name);
				break;
			}
	}
}

static struct ntype ntype(const char *name)
{
	uint32_t h = nt_hash(name);

	pthread_once(&g_nt_once, nt_init);
	for (uint32_t k = 0; k < NT_SLOTS; k++) {
		const struct ntype *t = &g_nt[(h + k) % NT_SLOTS];

		if (!t->name)
			break;
		if (!strcmp(t->name, name))
			return *t;
	}
	return ntype_of_name(name);
}

static void add_name(struct sqlfacts *f, char (*list)[SQLFACTS_NAME], int *n, const char *schema,
		     const char *name)
{
	char full[SQLFACTS_NAME];
	int l;

	if (!name)
		return;
	if (schema && *schema)
		l = snprintf(full, sizeof(full), "%s.%s", schema, name);
	else
		l = snprintf(full, sizeof(full), "%s", name);
	if (l >= (int)sizeof(full))
		l = sizeof(full) - 1;
	for (int i = 0; i < *n; i++)
		if (!strcmp(list[i], full))
			return;
	if (*n == SQLFACTS_MAX_NAMES) {
		f->too_many = 1;
		return;
	}
	memcpy(list[(*n)++], full, (size_t)l + 1);
}

/* A list of String nodes (qualified names): "a", "b" -> schema a, name b. */
static void qualified(const struct jdoc *d, jv *list, const char **schema, const char **name)
{
	*schema = *name = NULL;
	for (jv *it = jis(list, J_ARR) ? jfirst(d, list) : NULL; it; it = jnext(d, it)) {
		jv *s = jget(d, it, "String");

		if (s) {
			*schema = *name;
			*name = jstr(d, s, "sval");
		}
	}
}

static int is_writer(const char *stmt)
{
	return stmt && (!strcmp(stmt, "InsertStmt") || !strcmp(stmt, "UpdateStmt") ||
			!strcmp(stmt, "DeleteStmt") || !strcmp(stmt, "MergeStmt") ||
			!strcmp(stmt, "TruncateStmt") || !strcmp(stmt, "CreateStmt") ||
			!strcmp(stmt, "CreateTableAsStmt") || !strcmp(stmt, "AlterTableStmt") ||
			!strcmp(stmt, "IndexStmt") || !strcmp(stmt, "ViewStmt") ||
			!strcmp(stmt, "RenameStmt"));
}

static void drop_stmt(const struct jdoc *d, jv *v, struct sqlfacts *f)
{
	const char *rt = jstr(d, v, "removeType");
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
	for (jv *it = jfirst(d, jget(d, v, "objects")); it; it = jnext(d, it)) {
		jv *l = jget(d, it, "List"), *items, *s;
		const char *schema, *name;

		if (l && (items = jget(d, l, "items"))) {
			qualified(d, items, &schema, &name);
			add_name(f, f->written, &f->nwritten, schema, name);
		} else if ((s = jget(d, it, "String"))) {
			/* DROP SCHEMA x: the schema, written as x.* */
			add_name(f, f->written, &f->nwritten, jstr(d, s, "sval"), "*");
		}
	}
}

/* SET name: its kind. ROLE and SESSION AUTHORIZATION change who the session is. */
static int varset_kind(const char *name)
{
	if (name && !strcmp(name, "role"))
		return SK_SET_ROLE;
	if (name && !strcmp(name, "session_authorization"))
		return SK_SET_SESSION_AUTHORIZATION;
	return SK_SET;
}

/*
 * SET search_path naming any schema before pg_catalog: PostgreSQL then finds that schema's
 * functions, operators and types first, so `||`, `=` or upper() can be a user's object that
 * runs anything (an operator over pg_notify gets the masked value), while hoop reads them as
 * the built-ins. Without pg_catalog in the list the server searches it first, which is safe.
 * SET LOCAL, SET SESSION and ALTER DATABASE/ROLE ... SET are the same node; RESET goes back to
 * the default, which does not name pg_catalog.
 */
static void search_path_set(const struct jdoc *d, jv *v, const char *name, struct sqlfacts *f)
{
	const char *kind = jstr(d, v, "kind");
	int before = 0;

	if (!name || strcmp(name, "search_path") || !kind || strcmp(kind, "VAR_SET_VALUE"))
		return;
	for (jv *a = jfirst(d, jget(d, v, "args")); a; a = jnext(d, a)) {
		jv *c = jget(d, a, "A_Const"), *sv;
		const char *val = c && (sv = jget(d, c, "sval")) ? jstr(d, sv, "sval") : NULL;

		if (val && !strcmp(val, "pg_catalog")) {
			if (before)
				f->kinds |= 1ULL << SK_SEARCH_PATH_SHADOWS_CATALOG;
			return;
		}
		before = 1;
	}
}

/*
 * A SET that would make the server read later statements differently from hoop: a client
 * encoding whose multibyte characters can hold a quote or a backslash (the server converts
 * before it lexes, hoop lexes the bytes). Such a SET cannot be judged with what follows it, so
 * it is judged as text hoop cannot parse (on_parse_error). standard_conforming_strings is not
 * here: the engine follows the server's value of it (ParameterStatus) and the dialect lexes
 * each statement under it (dialect.h).
 */
static void lexing_set(const struct jdoc *d, jv *v, const char *name, struct sqlfacts *f)
{
	const char *kind = jstr(d, v, "kind"), *val = NULL;
	jv *arg = jfirst(d, jget(d, v, "args")), *c, *sv;

	if (!name || !kind || strcmp(kind, "VAR_SET_VALUE") || f->parse_error)
		return;
	if (strcmp(name, "client_encoding"))
		return;
	if ((c = jget(d, arg, "A_Const")) && (sv = jget(d, c, "sval")))
		val = jstr(d, sv, "sval");
	if (val && sqlfacts_encoding_safe(val))
		return;
	f->parse_error = 1;
	snprintf(f->error, sizeof(f->error),
		 "SET %s to %s would make the server read statements differently from hoop", name,
		 val ? val : "this value");
}

/*
 * Built-ins (and contrib's) that run SQL hoop never sees as a statement: SQL text given as a
 * string (query_to_xml, ts_stat, crosstab, dblink), or a query they build from names given as
 * values (table_to_xml, schema_to_xml, database_to_xml, connectby, xpath_table), or a cursor
 * read by name (cursor_to_xml). Matched by name in any schema: a function of that name in
 * another schema is no better known. The *_to_xmlschema forms other than query_to_xmlschema
 * only read column types from the catalog and are not here; query_to_xmlschema plans (and
 * parse-analyses) its query, which is enough to run code and raise errors.
 */
static const char *const opaque_sql_fns[] = {
	"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
	"table_to_xml", "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xml_and_xmlschema",
	"database_to_xml", "database_to_xml_and_xmlschema", "ts_stat", "crosstab", "crosstab2",
	"crosstab3", "crosstab4", "connectby", "xpath_table", NULL};

static int opaque_sql_call(const struct jdoc *d, jv *fc, const char *name)
{
	if (!name)
		return 0;
	if (!strncmp(name, "dblink", 6)) /* every dblink function runs or reads remote SQL */
		return 1;
	/* ts_rewrite(query tsquery, select text) runs select; the three-tsquery form does not */
	if (!strcmp(name, "ts_rewrite"))
		return jlen(jget(d, fc, "args")) == 2;
	for (int i = 0; opaque_sql_fns[i]; i++)
		if (!strcmp(name, opaque_sql_fns[i]))
			return 1;
	return 0;
}

/* What a node of this type says by itself, before what is below it. */
static void node(const struct jdoc *d, const struct ntype *t, jv *v, struct sqlfacts *f)
{
	/* INSERT ... VALUES (...) holds its rows as a SELECT node with only valuesLists: a
	 * literal list, not a read. */
	if (t->sp == SP_SELECT && has(d, v, "valuesLists") && !has(d, v, "fromClause") &&
	    !has(d, v, "targetList"))
		return;
	f->kinds |= t->kinds;
	switch (t->sp) {
	case SP_DROP:
		drop_stmt(d, v, f);
		break;
	case SP_COPY: {
		int from = jbool(d, v, "is_from");

		f->kinds |= 1ULL << (from ? SK_COPY_FROM : SK_COPY_TO);
		if (jbool(d, v, "is_program"))
			f->copy |= SQL_COPY_PROGRAM;
		else if (has(d, v, "filename"))
			f->copy |= SQL_COPY_FILE;
		else
			f->copy |= from ? SQL_COPY_STDIN : SQL_COPY_STDOUT;
		break;
	}
	case SP_GRANT:
		f->kinds |= 1ULL << (jbool(d, v, "is_grant") ? SK_GRANT : SK_REVOKE);
		break;
	case SP_VARSET:
		f->kinds |= 1ULL << varset_kind(jstr(d, v, "name"));
		lexing_set(d, v, jstr(d, v, "name"), f);
		search_path_set(d, v, jstr(d, v, "name"), f);
		break;
	case SP_SETSTMT: {
		/* A typed field (no node name above it), so walk() does not see it as a SET: the
		 * setting is a SET for every later session of that database or role. RESET ALL has
		 * no name and is a plain set. */
		jv *ss = jget(d, v, "setstmt");

		if (ss) {
			f->kinds |= 1ULL << varset_kind(jstr(d, ss, "name"));
			lexing_set(d, ss, jstr(d, ss, "name"), f);
			search_path_set(d, ss, jstr(d, ss, "name"), f);
		}
		break;
	}
	case SP_RENAME: {
		const char *ot = jstr(d, v, "renameType");

		if (!ot)
			ot = jstr(d, v, "objectType");
		if (ot && !strcmp(ot, "OBJECT_DATABASE"))
			f->kinds |= 1ULL << SK_ALTER_DATABASE;
		else if (ot && !strcmp(ot, "OBJECT_ROLE"))
			f->kinds |= 1ULL << SK_ALTER_ROLE;
		break; /* the node's own kind (rename, alter_owner) is set from stmt_kinds */
	}
	case SP_SELECT:
		if (has(d, v, "intoClause"))
			f->kinds |= 1ULL << SK_CREATE_TABLE; /* SELECT ... INTO creates a table */
		break;
	case SP_UPDDEL:
		if (!has(d, v, "whereClause"))
			f->write_without_where = 1;
		break;
	case SP_EXECUTE: {
		const char *n = jstr(d, v, "name");

		if (n)
			snprintf(f->execute_name, sizeof(f->execute_name), "%s", n);
		break;
	}
	case SP_FUNCCALL: {
		jv *fn = jget(d, v, "funcname");
		const char *schema, *name;

		if (fn) {
			qualified(d, fn, &schema, &name);
			add_name(f, f->functions, &f->nfunctions, NULL, name);
			if (schema)
				add_name(f, f->functions, &f->nfunctions, schema, name);
			if (opaque_sql_call(d, v, name))
				f->kinds |= 1ULL << SK_OPAQUE_SQL;
		}
		break;
	}
	case SP_ALTERCMD: {
		const char *st = jstr(d, v, "subtype");

		if (st && !strcmp(st, "AT_DropColumn"))
			f->kinds |= 1ULL << SK_ALTER_TABLE_DROP_COLUMN;
		else if (st && !strcmp(st, "AT_ChangeOwner"))
			f->kinds |= 1ULL << SK_ALTER_OWNER;
		break;
	}
	default:
		if (t->drop_other) /* DROP OWNED, TABLESPACE, SUBSCRIPTION, USER MAPPING, ... */
			f->kinds |= 1ULL << SK_DROP_OTHER;
		else if (t->other)
			f->kinds |= 1ULL << SK_OTHER;
	}
}

/* Only EXPLAIN ANALYZE runs the statement it explains ("ANALYZE false" is spelled so). */
static int explain_analyzes(const struct jdoc *d, jv *v)
{
	jv *opts = jget(d, v, "options");
	int analyze = 0;

	for (jv *o = jis(opts, J_ARR) ? jfirst(d, opts) : NULL; o; o = jnext(d, o)) {
		jv *de = jget(d, o, "DefElem"), *arg;
		const char *n;

		if (de && (n = jstr(d, de, "defname")) && !strcmp(n, "analyze")) {
			analyze = 1;
			if ((arg = jget(d, de, "arg")) && arg->type != J_NULL &&
			    (jtext_has(d, arg, "\"false\"") || jtext_has(d, arg, "\"off\"")))
				analyze = 0;
		}
	}
	return analyze;
}

static void walk(const struct jdoc *d, jv *o, const char *stmt, const char *key,
		 struct sqlfacts *f)
{
	if (jis(o, J_ARR)) {
		for (jv *e = jfirst(d, o); e; e = jnext(d, e))
			walk(d, e, stmt, key, f);
		return;
	}
	if (!jis(o, J_OBJ))
		return;
	if (has(d, o, "relname")) {
		int written = 0;

		if (stmt && !strcmp(stmt, "CopyStmt"))
			written = key && !strcmp(key, "relation") && f->kinds & (1ULL << SK_COPY_FROM);
		else if (stmt && !strcmp(stmt, "TruncateStmt"))
			written = 1;
		else
			written = is_writer(stmt) && key && !strcmp(key, "relation");
		if (written)
			add_name(f, f->written, &f->nwritten, jstr(d, o, "schemaname"),
				 jstr(d, o, "relname"));
		else
			add_name(f, f->read, &f->nread, jstr(d, o, "schemaname"),
				 jstr(d, o, "relname"));
	}
	if (key && !strcmp(key, "funccall") && has(d, o, "funcname")) {
		struct ntype fc = ntype("FuncCall");

		node(d, &fc, o, f); /* CALL's function is a typed field */
	}
	for (jv *m = jfirst(d, o); m; m = jnext(d, m)) {
		const char *k = jkey(d, m);

		if (isupper((unsigned char)k[0]) && jis(m, J_OBJ)) {
			struct ntype t = ntype(k);

			node(d, &t, m, f);
			if (!strcmp(k, "ExplainStmt")) {
				jv *q;

				if (explain_analyzes(d, m) && (q = jget(d, m, "query")))
					walk(d, q, "ExplainStmt", "query", f);
				continue;
			}
			walk(d, m, t.is_stmt ? k : stmt, k, f);
		} else {
			walk(d, m, stmt, k, f);
		}
	}
}

/* LIMIT n bounds a SELECT; LIMIT ALL and LIMIT NULL do not. */
static int bounded(const struct jdoc *d, jv *sel)
{
	jv *lc = jget(d, sel, "limitCount"), *c;

	if (!lc)
		return 0;
	if ((c = jget(d, lc, "A_Const")) && jbool(d, c, "isnull"))
		return 0;
	return 1;
}

/* A SELECT whose every output is an aggregate, with no GROUP BY, returns one row: not bulk. */
static int one_row(const struct jdoc *d, jv *sel)
{
	static const char *const aggs[] = {"count", "sum", "avg", "min", "max", NULL};
	const char *op;
	jv *tl;

	if (has(d, sel, "groupClause") || !has(d, sel, "op") || has(d, sel, "withClause") ||
	    !(tl = jget(d, sel, "targetList")))
		return 0;
	/* An aggregate over a subquery can carry every row (max(string_agg(...))). */
	if (jtext_has(d, sel, "SubLink") || jtext_has(d, sel, "RangeSubselect") ||
	    jtext_has(d, sel, "RangeFunction"))
		return 0;
	op = jstr(d, sel, "op");
	if (!op || strcmp(op, "SETOP_NONE"))
		return 0;
	for (jv *it = jis(tl, J_ARR) ? jfirst(d, tl) : NULL; it; it = jnext(d, it)) {
		jv *rt, *val, *fc, *fn;
		const char *schema, *name;
		int agg = 0;

		if (!(rt = jget(d, it, "ResTarget")) || !(val = jget(d, rt, "val")) ||
		    !(fc = jget(d, val, "FuncCall")) || has(d, fc, "over") ||
		    !(fn = jget(d, fc, "funcname")))
			return 0;
		qualified(d, fn, &schema, &name);
		for (int k = 0; aggs[k] && name; k++)
			agg |= !strcmp(name, aggs[k]);
		if (!agg || (schema && strcmp(schema, "pg_catalog")))
			return 0;
	}
	return jlen(tl) > 0;
}

/*
 * Does the statement hand over (or copy elsewhere) rows without a bound? A SELECT without
 * LIMIT; and the same query behind a cursor (FETCH by FETCH), PREPARE (on EXECUTE), CREATE TABLE
 * AS / SELECT INTO, CREATE VIEW (selected later), INSERT ... SELECT, COPY (query) TO; and DML
 * with RETURNING. (EXPLAIN ANALYZE runs its query but returns only the plan.) This is what
 * `without_limit` matches.
 */
static int moves_unbounded_rows(const struct jdoc *d, jv *st)
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
	jv *n, *q, *sel;

	for (int i = 0; dml[i]; i++)
		if ((n = jget(d, st, dml[i])) && has(d, n, "returningList"))
			return 1;
	for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++) {
		if ((n = jget(d, st, wrappers[i].node)) && (q = jget(d, n, wrappers[i].field))) {
			if (!strcmp(wrappers[i].node, "InsertStmt") &&
			    (sel = jget(d, q, "SelectStmt")) && has(d, sel, "valuesLists"))
				return 0; /* INSERT ... VALUES: nothing is read */
			return moves_unbounded_rows(d, q);
		}
	}
	if ((sel = jget(d, st, "SelectStmt")))
		return !bounded(d, sel) && !one_row(d, sel);
	return 0;
}

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
	PgQueryParseResult r;
	struct jdoc d;
	char *text;
	int e;

	clear(f);
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
	e = jparse(&d, r.parse_tree, strlen(r.parse_tree));
	if (e) {
		jfree(&d);
		pg_query_free_parse_result(r);
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error), "%s",
			 e == 2 ? "out of memory" : "statement nests deeper than hoop's cap");
		return -1;
	}
	for (jv *s = jfirst(&d, jget(&d, &d.v[0], "stmts")); s; s = jnext(&d, s)) {
		jv *st = jget(&d, s, "stmt");

		if (!st)
			continue;
		if (moves_unbounded_rows(&d, st))
			f->select_without_limit = 1;
		walk(&d, st, NULL, "stmt", f);
	}
	jfree(&d);
	pg_query_free_parse_result(r);
	if (f->too_many && !f->parse_error) {
		/* Rules would see a partial list: what cannot be judged whole is not judged. */
		f->parse_error = 1;
		snprintf(f->error, sizeof(f->error),
			 "statement names more than %d tables or functions (hoop's cap)",
			 SQLFACTS_MAX_NAMES);
	}
	return f->parse_error ? -1 : 0;
}
