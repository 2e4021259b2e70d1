/*
 * libFuzzer target for hoopctl's audit-trail reader (user/hoopctl/verify.c and replay.c, over
 * trailread.c and user/common/trail.c): the bytes are the
 * body of one record line, after the {"seq":1,"prev":"<zeros>", head hoopd writes in front of
 * every record. Invariants, each checked on every input:
 *  - verify accepts the line exactly when it is one JSON object (and, for a checkpoint, its
 *    HMAC verifies); when it accepts it, the chain hash it carries on is the SHA-256 of the
 *    line's bytes, and a successor written as hoopd writes one (next seq, that hash as prev,
 *    a checkpoint with the right HMAC) verifies too: reader and writer agree on the chain.
 *  - replay's text output of the record holds no control byte (C0 but newline, DEL, C1), no
 *    bidirectional control and no invalid UTF-8: whatever an agent put in a record reaches an
 *    operator's terminal only escaped (disp.h).
 * Seeds: fuzz/corpus/audit_record/.
 */
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_require.h"

#include "hex.h"

/* The reader's static functions are what is fuzzed: take them in whole. */
#include "../user/hoopctl/verify.c"
#include "../user/hoopctl/replay.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD "{\"seq\":1,\"prev\":\"" TRAIL_ZERO_HASH "\","

/* Is the text a terminal would show, as text: UTF-8 with no control or bidi code point? */
static int clean_for_terminal(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t l;

		if (s[i] < 0x80) {
			if ((s[i] < 0x20 && s[i] != '\n') || s[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			l = 2, c = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			l = 3, c = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			l = 4, c = s[i] & 0x07;
		else
			return 0;
		if (i + l > n)
			return 0;
		for (size_t k = 1; k < l; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if ((l == 2 && c < 0x80) || (l == 3 && c < 0x800) || (l == 4 && c < 0x10000) ||
		    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			return 0;
		if ((c >= 0x80 && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
		    (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069))
			return 0;
		i += l;
	}
	return 1;
}

/* What replay prints for record r, captured. */
static void check_replay(const struct rec *r)
{
	struct replay rp = {0};
	FILE *saved = stdout, *mem;
	char *out = NULL;
	size_t outn = 0;

	rp.id = js(r->o, "session");
	mem = open_memstream(&out, &outn);
	REQUIRE(mem);
	stdout = mem;
	replay_one(r, &rp);
	fflush(mem);
	stdout = saved;
	fclose(mem);
	REQUIRE(clean_for_terminal((const unsigned char *)out, outn));
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct seg s = {.n = 1, .name = "seg-00000001.jsonl"};
	struct verify v;
	size_t hl = strlen(HEAD), len;
	const char *why = "";
	char *line, hx[65];
	uint8_t d[SHA256_DIGEST_LENGTH];
	struct json_object *o;
	int rc;

	/* a record is one line */
	if (memchr(data, '\n', size))
		size = (size_t)((const uint8_t *)memchr(data, '\n', size) - data);
	if (size > (1 << 16))
		return 0;
	len = hl + size;
	line = malloc(len + 1);
	REQUIRE(line);
	memcpy(line, HEAD, hl);
	memcpy(line + hl, data, size);
	line[len] = '\0';

	memset(&v, 0, sizeof(v));
	v.have_key = 1; /* the zero key: an HMAC checkpoint's successor below is made with it */
	rc = verify_record(&v, &s, line, len, 1);
	o = parse_json(line, len, &why);
	if (!rc) {
		char next[256], msg[128], mac_hex[65];
		uint8_t mac[32];
		unsigned int ml = sizeof(mac);

		REQUIRE(o); /* only JSON objects verify */
		SHA256((const uint8_t *)line, len, d);
		hex_encode(d, sizeof(d), hx);
		REQUIRE(!strcmp(v.prev, hx));
		REQUIRE(v.expect == 2 && v.records == 1 && !v.bad);
		/* the successor hoopd would write: it must verify */
		snprintf(msg, sizeof(msg), "2:%s", hx);
		HMAC(EVP_sha256(), v.key, sizeof(v.key), (const uint8_t *)msg, strlen(msg), mac,
		     &ml);
		hex_encode(mac, ml, mac_hex);
		snprintf(
		    next, sizeof(next),
		    "{\"seq\":2,\"prev\":\"%s\",\"kind\":\"checkpoint\",\"reason\":\"interval\","
		    "\"hmac\":\"%s\"}",
		    hx, mac_hex);
		REQUIRE(verify_record(&v, &s, next, strlen(next), 2) == 0);
		REQUIRE(v.checkpoints == 1);
	} else {
		/* refused: not one JSON object, or a checkpoint whose HMAC is wrong */
		REQUIRE(v.bad);
		REQUIRE(!o || !strcmp(js(o, "kind"), "checkpoint"));
	}
	if (o) {
		struct rec r = {.seg = &s, .lineno = 1, .seq = 1, .line = line, .len = len, .o = o};

		check_replay(&r);
		json_object_put(o);
	}
	free(v.removed);
	free(line);
	return 0;
}
