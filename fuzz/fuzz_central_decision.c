/*
 * libFuzzer target for what a node reads from the fleet's central database about approvals
 * (user/hoopctl/cdecision.c): a hoop_decisions NOTIFY payload and a decided row of
 * hoop.approvals, judged against the requests pending on the node before anything reaches
 * hoopd. The input is newline-separated fields: payload, id, state, sha256, decided_by, reason,
 * then optionally the id and sha256 of a fourth pending request (beside three fixed ones); a
 * field "\N" is SQL NULL. Invariants, checked on every input by code of this file's own:
 *  - a payload is taken for the node only when it is exactly the node's name;
 *  - a row is applied only when it is well formed (id, state approved or denied, a role name
 *    hoopd's control socket takes, a reason within bounds), names a pending request, and its
 *    sha256 is that request's whole SHA-256 in lower-case hex: nothing is applied whose hash
 *    does not match the held statement's;
 *  - the decision relayed is the row's (approved -> approve, denied -> deny);
 *  - what is not applied says why, and relays nothing.
 * Seeds: fuzz/corpus/central_decision/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"

#include "../user/hoopctl/cdecision.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NODE "nodea"
#define SHA_A "5b1f0c2e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"
#define SHA_B "0000000000000000000000000000000000000000000000000000000000000000"

static int lower_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!strchr("0123456789abcdef", s[i]) || !s[i])
			return 0;
	return 1;
}

static int relayable_role(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *f[8] = {0}, *p;
	int nf = 0;
	struct cdec_pending pend[4] = {
	    {"a0000beef", SHA_A}, {"a1234abcd", SHA_B}, {"a00000001", NULL}, {NULL, NULL}};
	size_t np = 3;
	struct cdec_row row;
	struct cdec_out out;
	enum cdec_verdict v;

	if (size > 8192)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0'; /* a NUL inside ends the field there, as a C string from libpq would */
	for (p = buf; nf < 8;) {
		char *nl = strchr(p, '\n');

		f[nf++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	for (int i = 0; i < 8; i++)
		if (f[i] && !strcmp(f[i], "\\N"))
			f[i] = NULL;
	if (nf >= 7) {
		pend[3].id = f[6];
		pend[3].sha256 = nf >= 8 ? f[7] : NULL;
		np = 4;
	}

	REQUIRE(cdec_notify_for(f[0], NODE) == (f[0] && !strcmp(f[0], NODE)));

	row.id = nf > 1 ? f[1] : NULL;
	row.state = nf > 2 ? f[2] : NULL;
	row.sha256 = nf > 3 ? f[3] : NULL;
	row.decided_by = nf > 4 ? f[4] : NULL;
	row.reason = nf > 5 ? f[5] : NULL;
	v = cdec_judge(&row, pend, np, &out);
	REQUIRE(v >= CDEC_APPLY && v <= CDEC_MALFORMED);
	if (v == CDEC_APPLY) {
		const struct cdec_pending *m = NULL;

		for (size_t i = 0; i < np; i++)
			if (pend[i].id && row.id && !strcmp(pend[i].id, row.id)) {
				m = &pend[i];
				break;
			}
		REQUIRE(m != NULL);
		REQUIRE(m->sha256 && lower_hex64(row.sha256) && !strcmp(m->sha256, row.sha256));
		REQUIRE(relayable_role(row.decided_by));
		REQUIRE(!row.reason || strlen(row.reason) <= CDEC_REASON_MAX);
		REQUIRE(out.decision &&
			((!strcmp(row.state, "approved") && !strcmp(out.decision, "approve")) ||
			 (!strcmp(row.state, "denied") && !strcmp(out.decision, "deny"))));
	} else {
		REQUIRE(out.decision == NULL && out.why[0]);
	}
	/* a matching request and a row that differs from its hash in one digit: never applied */
	if (v == CDEC_APPLY) {
		char alt[65];
		struct cdec_row r2 = row;

		memcpy(alt, row.sha256, 65);
		alt[63] = alt[63] == '0' ? '1' : '0';
		r2.sha256 = alt;
		REQUIRE(cdec_judge(&r2, pend, np, &out) != CDEC_APPLY);
	}
	free(buf);
	return 0;
}
