/* libFuzzer target for the MySQL/MariaDB lexer (mysqllex.c). The first byte picks the settings
 * (MariaDB or MySQL, ANSI_QUOTES, NO_BACKSLASH_ESCAPES, a version or none); the rest is the text.
 * Invariants, on any input:
 * - tokens lie inside the text, in order, without overlap, each of a known kind, MYL_END last;
 *   an operator token's bytes are its operator; a quoted name or string starts with a quote
 *   (after its introducer) and ends with it;
 * - the tokens are the text's own: written out again (their bytes, an empty comment where the
 *   text had anything between them, nothing where they touched), they lex to the same tokens
 *   (an executed comment's content then as plain text). A token
 *   that reads differently on its own, or bytes between tokens that were not blanks or comments
 *   but changed the reading, break this;
 * - a refusal says why and where.
 * Seeds: fuzz/corpus/mysqllex/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "mysql_fuzz.h"
#include "mysqllex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct myl_settings st = {0};
	struct myl_result r, r2;
	const char *text;
	size_t len, prev_end = 0, o = 0;
	char *again;

	if (!size)
		return 0;
	mysql_fuzz_settings(data[0], &st);
	text = (const char *)data + 1;
	len = size - 1;
	if (myl_lex(&st, text, len, &r)) {
		REQUIRE(r.error && r.why[0] && r.at <= len);
		myl_free(&r);
		return 0;
	}
	REQUIRE(!r.error && r.tok && r.tok[r.n].kind == MYL_END);
	again = malloc(5 * len + 8);
	REQUIRE(again);
	for (size_t i = 0; i < r.n; i++) {
		const struct myl_token *t = &r.tok[i];
		const char *p = text + t->off;

		REQUIRE(t->kind > MYL_END && t->kind <= MYL_OP);
		REQUIRE(t->len > 0 && t->off >= prev_end && (size_t)t->off + t->len <= len);
		if (t->kind == MYL_OP)
			REQUIRE(strlen(t->op) == t->len && !memcmp(p, t->op, t->len));
		if (t->kind == MYL_QIDENT)
			REQUIRE(t->len >= 2 && (p[0] == '`' || p[0] == '"') &&
				p[t->len - 1] == p[0]);
		if (t->kind == MYL_STRING)
			REQUIRE(t->len >= 2 && (p[t->len - 1] == '\'' || p[t->len - 1] == '"'));
		if (i && t->off > prev_end) {
			memcpy(again + o, "/**/", 4);
			o += 4;
		}
		memcpy(again + o, p, t->len);
		o += t->len;
		prev_end = t->off + t->len;
	}
	if (prev_end < len) { /* "--" and what followed: not a comment to the end */
		memcpy(again + o, "/**/", 4);
		o += 4;
	}
	/* the tokens of a text that lexes lex again, to themselves */
	REQUIRE(myl_lex(&st, again, o, &r2) == 0);
	REQUIRE(r2.n == r.n);
	for (size_t i = 0; i < r.n; i++) {
		REQUIRE(r2.tok[i].kind == r.tok[i].kind && r2.tok[i].len == r.tok[i].len);
		REQUIRE(!memcmp(again + r2.tok[i].off, text + r.tok[i].off, r.tok[i].len));
	}
	myl_free(&r2);
	free(again);
	myl_free(&r);
	return 0;
}
