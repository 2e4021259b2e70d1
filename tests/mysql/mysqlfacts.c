/* A test tool for the differential tests (tests/mysql/test_dialect.py): reads statements from
 * stdin, one per line (a line's "\n" and "\\" escapes stand for a newline and a backslash),
 * and prints for each one JSON line of what the classifier (mysqlclass.h) makes of it:
 * {"ok":true,"kinds":[...],"read":[...],"written":[...],"functions":[...],"pieces":N} or
 * {"ok":false,"error":"..."}. Settings: MariaDB 10.11 (HOOP_MYSQL_VERSION overrides the
 * version), sql_mode defaults. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysqlclass.h"

static struct json_object *list(char (*l)[SQLFACTS_NAME], int n)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(l[i]));
	return a;
}

int main(void)
{
	static struct sqlfacts f;
	static struct mysql_split sp;
	struct myl_settings st = {.mariadb = 1, .version = 101106};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (getenv("HOOP_MYSQL_VERSION"))
		st.version = (uint32_t)strtoul(getenv("HOOP_MYSQL_VERSION"), NULL, 10);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		struct json_object *o = json_object_new_object();
		size_t len = 0;
		char why[200];

		for (ssize_t i = 0; i < n; i++) {
			if (line[i] == '\n')
				break;
			if (line[i] == '\\' && i + 1 < n &&
			    (line[i + 1] == 'n' || line[i + 1] == '\\')) {
				line[len++] = line[i + 1] == 'n' ? '\n' : '\\';
				i++;
				continue;
			}
			line[len++] = line[i];
		}
		if (mysql_facts(&st, line, len, &f)) {
			json_object_object_add(o, "ok", json_object_new_boolean(0));
			json_object_object_add(o, "error", json_object_new_string(f.error));
		} else {
			struct json_object *k = json_object_new_array();

			for (int i = 0; i < SK_COUNT; i++)
				if (f.kinds & (1ULL << i))
					json_object_array_add(
					    k, json_object_new_string(sqlfacts_kind_name(i)));
			json_object_object_add(o, "ok", json_object_new_boolean(1));
			json_object_object_add(o, "kinds", k);
			json_object_object_add(o, "read", list(f.read, f.nread));
			json_object_object_add(o, "written", list(f.written, f.nwritten));
			json_object_object_add(o, "functions", list(f.functions, f.nfunctions));
			json_object_object_add(o, "too_many", json_object_new_boolean(f.too_many));
			json_object_object_add(
			    o, "pieces",
			    json_object_new_int(
				mysql_split(&st, line, len, &sp, why, sizeof(why)) ? -1 : sp.n));
		}
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		json_object_put(o);
	}
	free(line);
	return 0;
}
