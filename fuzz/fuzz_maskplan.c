/* libFuzzer target for masking provenance (user/hoopd/mask/maskplan.c): any bytes as one SQL
 * statement, planned against the unit test's catalog and policy (tests/unit/maskplan_fixture.h)
 * and without a catalog, give a plan that keeps maskplan.h's promises; nothing crashes, leaks,
 * recurses past the stack or trips a sanitizer. Seeds: fuzz/corpus/maskplan/ (the unit cases'
 * SQL); dictionary: fuzz/maskplan.dict. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"
#include "../tests/unit/maskplan_fixture.h"
#include "maskplan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static void check(const struct maskplan *p, int rc)
{
	REQUIRE(rc == 0 || rc == -1);
	if (rc == -1)
		REQUIRE(p->all_unknown && p->returns_rows && p->ncols == 0 && p->error[0]);
	REQUIRE(p->ncols >= 0 && p->ncols <= 1664);
	REQUIRE((p->ncols == 0) == (p->cols == NULL));
	if (p->all_unknown)
		REQUIRE(p->ncols == 0);
	if (p->all_clean)
		REQUIRE(p->all_unknown);
	for (int i = 0; i < p->ncols; i++) {
		const struct maskplan_col *c = &p->cols[i];

		REQUIRE(c->rule == MASK_RULE_NONE || c->rule == MASK_RULE_UNKNOWN ||
			(c->rule == MASK_RULE_FREE && pol.detectors) ||
			(c->rule >= 0 && c->rule < pol.nrules));
		REQUIRE(c->derived == 0 || c->derived == 1);
		REQUIRE(c->rule != MASK_RULE_NONE || !c->derived);
		REQUIRE(TERMINATED(c->source));
		REQUIRE(c->rule < 0 || c->source[0]);
	}
	REQUIRE(TERMINATED(p->probe) && TERMINATED(p->written_source) &&
		TERMINATED(p->unknown_rel) && TERMINATED(p->error) &&
		TERMINATED(p->declare_cursor) && TERMINATED(p->fetch_cursor) &&
		TERMINATED(p->execute_name) && TERMINATED(p->prepare_name));
	REQUIRE(!p->probes_masked || p->probe[0]);
	REQUIRE(!p->writes_masked || p->written_source[0]);
	if (p->copy) {
		REQUIRE(p->returns_rows);
		REQUIRE(p->copy_opts.format >= 0 && p->copy_opts.format <= 2);
		REQUIRE(TERMINATED(p->copy_opts.null_str));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct maskplan a, b;
	int rc;

	if (!ready) {
		build_policy();
		build_catalog();
		ready = 1;
	}
	rc = maskplan_build((const char *)data, size, cat, &pol, &a);
	check(&a, rc);
	/* the same input plans the same way every time (no state leaks between builds) */
	REQUIRE(maskplan_build((const char *)data, size, cat, &pol, &b) == rc);
	REQUIRE(a.ncols == b.ncols && a.all_unknown == b.all_unknown &&
		a.probes_masked == b.probes_masked);
	for (int i = 0; i < a.ncols; i++)
		REQUIRE(a.cols[i].rule == b.cols[i].rule && a.cols[i].derived == b.cols[i].derived);
	maskplan_free(&a);
	maskplan_free(&b);
	/* with detectors on, text columns no rule names are free text: nothing gets weaker
	 * (issue 14 point 9): a clean column may become free, a masked one stays as masked
	 * (derived at least as often), and probes and writes are the same */
	pol.detectors = (1u << DET_COUNT) - 1;
	rc = maskplan_build((const char *)data, size, cat, &pol, &b);
	check(&b, rc);
	pol.detectors = 0;
	rc = maskplan_build((const char *)data, size, cat, &pol, &a);
	REQUIRE(a.ncols == b.ncols && a.all_unknown == b.all_unknown &&
		a.probes_masked == b.probes_masked && a.writes_masked == b.writes_masked &&
		a.probes_unknown == b.probes_unknown);
	for (int i = 0; i < a.ncols; i++) {
		if (a.cols[i].rule == MASK_RULE_NONE) {
			REQUIRE(b.cols[i].rule == MASK_RULE_NONE ||
				b.cols[i].rule == MASK_RULE_FREE);
		} else {
			REQUIRE(b.cols[i].rule == a.cols[i].rule);
			REQUIRE(b.cols[i].derived >= a.cols[i].derived);
		}
	}
	maskplan_free(&a);
	maskplan_free(&b);
	rc = maskplan_build((const char *)data, size, NULL, &pol, &a);
	check(&a, rc);
	maskplan_free(&a);
	return 0;
}
