/* libFuzzer target for what hoopd reads back from its catalog loader process (catalog_wire.c),
 * which runs libpq against servers the agent may have picked and so is not trusted:
 *  - any bytes: catwire_build either refuses them or builds a catalog, never more (no crash,
 *    no read past the end, no leak under ASan);
 *  - operations the loader writes (catwire_rel/col/...) from fuzzed names: with every name
 *    under 64 bytes they build, and every relation and column is found again by OID, attnum
 *    and name exactly as written (a catalog that says other than the server did would mask the
 *    wrong columns). The first byte picks the mode. Seeds: fuzz/corpus/catwire/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_wire.h"
#include "fuzz_require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A name from the input: length from one byte, letters from the next ones. */
static size_t take_name(const uint8_t **p, const uint8_t *end, char out[80])
{
	size_t n = 0, want;

	out[0] = '\0';
	if (*p >= end)
		return 0;
	want = **p % 72; /* up to 71: some over CAT_NAME's 63 */
	(*p)++;
	while (n < want && *p < end) {
		out[n++] = (char)('a' + **p % 26);
		(*p)++;
	}
	out[n] = '\0';
	return n;
}

#define MAXR 32

static void round_trip(const uint8_t *p, const uint8_t *end)
{
	struct catwire_buf b = {0};
	char schema[MAXR][80], name[MAXR][80], col[MAXR][80];
	int nrel = 0, ok = 1;
	struct catalog *c;
	char err[256];

	while (p < end && nrel < MAXR) {
		uint8_t op = *p++ % 4;

		if (op <= 1 || nrel == 0) {
			size_t a = take_name(&p, end, schema[nrel]), n = take_name(&p, end, name[nrel]);
			size_t cl = take_name(&p, end, col[nrel]);

			ok &= a < CAT_NAME && n < CAT_NAME && cl < CAT_NAME;
			catwire_rel(&b, (uint32_t)(nrel + 1), schema[nrel], name[nrel], 'r', 0,
				    op ? "select 1" : NULL);
			catwire_col(&b, 1, col[nrel], 25);
			nrel++;
		} else if (op == 2) {
			char f[80];

			ok &= take_name(&p, end, f) < CAT_NAME;
			catwire_function(&b, "s", f);
		} else {
			char f[80];

			ok &= take_name(&p, end, f) < CAT_NAME;
			catwire_operator(&b, "+", f, 1);
		}
	}
	REQUIRE(!b.oom);
	c = catwire_build(b.p, b.len, err, sizeof(err));
	if (ok) {
		if (!c)
			fprintf(stderr, "fuzz_catwire: refused: %s\n", err);
		REQUIRE(c);
		REQUIRE(cat_nrels(c) == nrel);
		for (int i = 0; i < nrel; i++) {
			const struct cat_rel *r = cat_rel_by_oid(c, (uint32_t)(i + 1));
			const struct cat_col *k;

			REQUIRE(r && !strcmp(r->schema, schema[i]) && !strcmp(r->name, name[i]));
			k = cat_col_by_attnum(r, 1);
			REQUIRE(k && !strcmp(k->name, col[i]) && k->type_oid == 25);
		}
	}
	cat_free(c);
	free(b.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	if (!size)
		return 0;
	if (data[0] & 1) {
		round_trip(data + 1, data + size);
	} else {
		struct catalog *c = catwire_build(data + 1, size - 1, err, sizeof(err));

		REQUIRE(c || err[0]);
		cat_free(c);
	}
	return 0;
}
