/* libFuzzer target for statement shapes (user/hoopd/sql/sqlshape.c): any bytes as a Query's text.
 * Whatever the shaper accepts must be safe to keep by shape (stmtcache.h): the same text with
 * other constants has the same shape, the same policy facts (sqlfacts) and the same masking
 * plan (maskplan, with the unit test's catalog and policy) unless the plan says it depends on a
 * constant's value, and the statement lies where PostgreSQL's splitter puts it. Nothing
 * crashes, leaks or trips a sanitizer. Seeds: fuzz/corpus/sqlshape/; dictionary:
 * fuzz/maskplan.dict. */
#include <pg_query.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "../tests/unit/maskplan_fixture.h"
#include "maskplan.h"
#include "sqlfacts.h"
#include "sqlshape.h"
#include "../tests/unit/sqlshape_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sqlfacts fa, fb;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static struct sqlshape sh, sv;
	struct maskplan pa, pb;
	size_t off, slen;
	char *sql, *o;

	if (!ready) {
		build_policy();
		build_catalog();
		ready = 1;
	}
	if (size > SQLSHAPE_MAX || memchr(data, 0, size))
		return 0;
	sql = strndup((const char *)data, size);
	if (!sql)
		return 0;
	if (sqlshape(sql, size, &sh)) {
		free(sql);
		return 0;
	}
	REQUIRE(sh.klen <= size && sh.off <= size && sh.off + sh.len <= size);
	if (!split_one(sql, size, &off, &slen))
		REQUIRE(off == sh.off && slen == sh.len);
	o = variant(sql, size, "7", "2.5");
	REQUIRE(o != NULL);
	REQUIRE(!sqlshape(o, strlen(o), &sv) && sv.klen == sh.klen &&
		!memcmp(sv.key, sh.key, sh.klen));
	memset(&fa, 0, sizeof(fa));
	memset(&fb, 0, sizeof(fb));
	sqlfacts_analyze(sql, size, &fa);
	sqlfacts_analyze(o, strlen(o), &fb);
	REQUIRE(same_facts(&fa, &fb));
	memset(&pa, 0, sizeof(pa));
	memset(&pb, 0, sizeof(pb));
	maskplan_build(sql, size, cat, &pol, &pa);
	maskplan_build(o, strlen(o), cat, &pol, &pb);
	REQUIRE(pa.const_sensitive || same_plan(&pa, &pb));
	maskplan_free(&pa);
	maskplan_free(&pb);
	free(o);
	free(sql);
	return 0;
}
