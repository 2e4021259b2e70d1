/* The key of a fingerprint grant, and the statements no grant may cover (see grantkey.h). */
#include "grantkey.h"

#include <json-c/json.h>
#include <openssl/sha.h>
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "sqlfacts.h"

struct walk {
	int funcs;	  /* a FuncCall anywhere */
	int strings;	  /* a string or bit-string constant, or a parameter, anywhere */
	int depth_cut;	  /* deeper than SQLFACTS_MAX_DEPTH: refuse rather than guess */
};

/*
 * Strip what a grant must not depend on (positions, the values of constants) in place, and note
 * what makes a grant unsafe. A constant keeps its type (ival, sval, ...): "id = 5" and
 * "id = '5'" are different shapes.
 */
static void canon(json_object *o, struct walk *w, int depth)
{
	if (depth > SQLFACTS_MAX_DEPTH) {
		w->depth_cut = 1;
		return;
	}
	if (json_object_is_type(o, json_type_array)) {
		size_t n = json_object_array_length(o);

		for (size_t i = 0; i < n; i++)
			canon(json_object_array_get_idx(o, i), w, depth + 1);
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	json_object_object_del(o, "location");
	json_object_object_foreach(o, k, v)
	{
		if (!strcmp(k, "A_Const") && json_object_is_type(v, json_type_object)) {
			/* keep only which kind of constant it is (its value becomes true) */
			static const char *const kinds[] = {"ival", "fval",  "boolval",
							    "sval", "bsval", "isnull"};

			for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
				json_object *x;

				if (!json_object_object_get_ex(v, kinds[i], &x))
					continue;
				if (i >= 3 && i <= 4)
					w->strings = 1;
				json_object_object_add(v, kinds[i], json_object_new_boolean(1));
			}
			json_object_object_del(v, "location");
			continue;
		}
		if (!strcmp(k, "ParamRef"))
			w->strings = 1;
		else if (!strcmp(k, "FuncCall"))
			w->funcs = 1;
		canon(v, w, depth + 1);
	}
}

static int refuse(char *why, size_t whyn, const char *msg)
{
	snprintf(why, whyn, "%s", msg);
	return -1;
}

int grantkey_for(const char *text, size_t len, char *key, char *why, size_t whyn)
{
	static const struct {
		int kind;
		const char *why;
	} code[] = {
		{SK_DO, "a DO block's code is a string constant"},
		{SK_CREATE_FUNCTION, "a function's body is a string constant"},
		{SK_CALL, "CALL runs a procedure defined elsewhere"},
		{SK_EXECUTE, "EXECUTE runs a prepared statement defined elsewhere"},
		{SK_FUNCTION_CALL, "a function called by OID has no text"},
		{SK_OPAQUE_SQL, "it runs SQL given as a string"},
		{SK_OTHER, "hoop does not know what statements of this kind run (FETCH reads a "
			   "cursor defined elsewhere, triggers and rules name code)"},
	};
	struct sqlfacts *f = NULL;
	PgQueryParseResult r = {0};
	json_object *tree = NULL;
	struct walk w = {0};
	char *t = NULL;
	int ret = -1;

	key[0] = '\0';
	if (len > SQLFACTS_MAX_TEXT)
		return refuse(why, whyn, "it is longer than hoop parses");
	if (!(f = calloc(1, sizeof(*f))) || !(t = strndup(text, len))) {
		refuse(why, whyn, "out of memory");
		goto out;
	}
	if (memchr(text, '\0', len) || sqlfacts_analyze(text, len, f) || f->parse_error) {
		refuse(why, whyn, "hoop cannot parse it");
		goto out;
	}
	for (size_t i = 0; i < sizeof(code) / sizeof(code[0]); i++)
		if (f->kinds & (1ULL << code[i].kind)) {
			refuse(why, whyn, code[i].why);
			goto out;
		}
	if (f->copy & (SQL_COPY_FILE | SQL_COPY_PROGRAM)) {
		refuse(why, whyn, "COPY names a server file or program in a string");
		goto out;
	}
	r = pg_query_parse(t);
	if (r.error || !r.parse_tree || !(tree = json_tokener_parse(r.parse_tree))) {
		refuse(why, whyn, "hoop cannot parse it");
		goto out;
	}
	canon(tree, &w, 0);
	if (w.depth_cut) {
		refuse(why, whyn, "it nests deeper than hoop reads");
		goto out;
	}
	if (w.funcs && w.strings) {
		refuse(why, whyn,
		       "it calls a function and carries a string constant or a parameter, which "
		       "may be SQL the function runs");
		goto out;
	}
	{
		const char *s = json_object_to_json_string_ext(tree, JSON_C_TO_STRING_PLAIN);
		unsigned char md[SHA256_DIGEST_LENGTH];

		if (!s) {
			refuse(why, whyn, "out of memory");
			goto out;
		}
		SHA256((const unsigned char *)s, strlen(s), md);
		hex_encode(md, sizeof(md), key);
	}
	ret = 0;
out:
	if (tree)
		json_object_put(tree);
	pg_query_free_parse_result(r);
	free(t);
	free(f);
	return ret;
}
