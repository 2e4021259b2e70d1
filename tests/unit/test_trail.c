/*
 * Unit tests for the audit trail's format (user/common/trail.c), which hoopd writes and hoopctl
 * reads: segment names both ways, the record head, the chain hash and the checkpoint MAC
 * against values computed by an independent implementation (Python's hashlib and hmac; the
 * commands are beside the values), the key file's rules, and the line reader over plain and
 * gzip segments (several gzip members, a torn last line, an oversized line); and the records'
 * timestamp (isotime.h).
 * Usage: test_trail SCRATCH-DIR (created; its contents are replaced).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "isotime.h"
#include "trail.h"

static const char *scratch;

/* Record 1 as hoopd writes it, after the head. */
#define REC1_BODY                                                                                  \
	"\"ts\":\"2026-11-26T14:38:51.916898Z\",\"kind\":\"audit_open\",\"segment\":1,\"pid\":"    \
	"4242}"
#define REC1 "{\"seq\":1,\"prev\":\"" TRAIL_ZERO_HASH "\"," REC1_BODY

/*
 * python3 -c 'import hashlib; print(hashlib.sha256(b"<REC1>").hexdigest())'
 */
#define REC1_HASH "9484031ec3a9a48d1da0b2830e6db78a3420600ad3ffd5cfee1e486a2d73f92a"

static void test_seg_names(void)
{
	static const struct {
		uint32_t n;
		enum trail_seg_kind kind;
		const char *name;
	} cases[] = {
	    {1, TRAIL_SEG_PLAIN, "seg-00000001.jsonl"},
	    {17, TRAIL_SEG_GZ, "seg-00000017.jsonl.gz"},
	    {99999999, TRAIL_SEG_GZ_TMP, "seg-99999999.jsonl.gz.tmp"},
	};
	static const char *const not_segments[] = {
	    "seg-1.jsonl",
	    "seg-0000001.jsonl",
	    "seg-000000001.jsonl",
	    "seg-0000000a.jsonl",
	    "seg-00000001.json",
	    "seg-00000001.jsonl.",
	    "seg-00000001.jsonlgz",
	    "seg-+0000001.jsonl",
	    "seg-00000001.jsonl.gz.tmp.x",
	    "audit.key",
	    "seg-",
	    "",
	};
	char name[64];
	uint32_t n;
	enum trail_seg_kind kind;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unit_where("%s", cases[i].name);
		trail_seg_name(name, sizeof(name), cases[i].n, cases[i].kind);
		CHECK_STREQ(name, cases[i].name);
		CHECK(trail_seg_parse(name, &n, &kind) == 1);
		CHECK_EQ_INT(n, cases[i].n);
		CHECK_EQ_INT(kind, cases[i].kind);
	}
	for (size_t i = 0; i < sizeof(not_segments) / sizeof(not_segments[0]); i++) {
		unit_where("%s", not_segments[i]);
		CHECK(trail_seg_parse(not_segments[i], &n, &kind) == 0);
	}
}

static void test_head(void)
{
	char head[TRAIL_HEAD_MAX + 1], prev[TRAIL_HASH_HEX];
	uint64_t seq;
	size_t hl;

	hl = trail_format_head(head, 1, TRAIL_ZERO_HASH);
	head[hl] = '\0';
	CHECK_STREQ(head, "{\"seq\":1,\"prev\":\"" TRAIL_ZERO_HASH "\",");
	hl = trail_format_head(head, UINT64_MAX, REC1_HASH);
	CHECK(hl <= TRAIL_HEAD_MAX);
	head[hl] = '\0';
	CHECK_STREQ(head, "{\"seq\":18446744073709551615,\"prev\":\"" REC1_HASH "\",");

	CHECK(trail_parse_head(REC1, strlen(REC1), &seq, prev) == 0);
	CHECK_EQ_INT(seq, 1);
	CHECK_STREQ(prev, TRAIL_ZERO_HASH);
	/* {"seq":N,"prev":"..."} with nothing else is a record head too */
	CHECK(trail_parse_head("{\"seq\":7,\"prev\":\"" REC1_HASH "\"}", 84, &seq, prev) == 0);
	CHECK_EQ_INT(seq, 7);
	CHECK_STREQ(prev, REC1_HASH);
	/* leading zero, upper-case hex, a short hash, no comma */
	CHECK(trail_parse_head("{\"seq\":07,\"prev\":\"" REC1_HASH "\",", 86, &seq, prev) < 0);
	CHECK(trail_parse_head(
		  "{\"seq\":7,\"prev\":\"9484031EC3A9A48D1DA0B2830E6DB78A3420600AD3FFD5CF"
		  "EE1E486A2D73F92A\",",
		  85, &seq, prev) < 0);
	CHECK(trail_parse_head("{\"seq\":7,\"prev\":\"00\",", 21, &seq, prev) < 0);
	CHECK(trail_parse_head("{\"seq\":7,\"prev\":\"" REC1_HASH "\" ", 85, &seq, prev) < 0);
	CHECK(trail_parse_head("{\"seq\":", 7, &seq, prev) < 0);
}

static void test_chain_hash(void)
{
	char hx[TRAIL_HASH_HEX];

	trail_chain_hash(REC1, strlen(REC1), hx);
	CHECK_STREQ(hx, REC1_HASH);
	/* python3 -c 'import hashlib; print(hashlib.sha256(b"").hexdigest())' */
	trail_chain_hash("", 0, hx);
	CHECK_STREQ(hx, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_checkpoint_mac(void)
{
	uint8_t key[TRAIL_KEY_LEN];
	char mac[TRAIL_HASH_HEX];

	for (int i = 0; i < TRAIL_KEY_LEN; i++)
		key[i] = (uint8_t)i;
	/* python3 -c 'import hmac, hashlib; print(hmac.new(bytes(range(32)),
	 *   b"2:<REC1_HASH>", hashlib.sha256).hexdigest())': the checkpoint after record 1 */
	trail_checkpoint_mac(key, 2, REC1_HASH, mac);
	CHECK_STREQ(mac, "017fedc0e9464d180b45ba373136589c3141316ab45c8658547158603b85a670");
	/* the same with b"18446744073709551615:" + b"f" * 64 */
	trail_checkpoint_mac(key, UINT64_MAX,
			     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
			     mac);
	CHECK_STREQ(mac, "19c6607a3f93089573ee47c77f61e468d28ea1acbe16b77ba8995e595a576cc4");
}

static void write_file(const char *name, const void *p, size_t n, mode_t mode)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", scratch, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n);
	if (fd >= 0)
		close(fd);
}

static void test_key(void)
{
	uint8_t k1[TRAIL_KEY_LEN], k2[TRAIL_KEY_LEN];
	char err[512], path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit.key", scratch);
	unlink(path);
	/* the verifier never makes one */
	CHECK_EQ_INT(trail_key_load(scratch, 0, k1, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "audit.key") != NULL);
	CHECK(stat(path, &st) < 0);
	/* hoopd does, 0400, and then finds it */
	CHECK_EQ_INT(trail_key_load(scratch, 1, k1, err, sizeof(err)), 1);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0400 &&
	      st.st_size == TRAIL_KEY_LEN);
	CHECK_EQ_INT(trail_key_load(scratch, 1, k2, err, sizeof(err)), 0);
	CHECK(!memcmp(k1, k2, sizeof(k1)));
	CHECK_EQ_INT(trail_key_load(scratch, 0, k2, err, sizeof(err)), 0);
	CHECK(!memcmp(k1, k2, sizeof(k1)));
	/* 33 bytes, 31 bytes: not the key hoopd made (and never replaced) */
	write_file("audit.key", "0123456789abcdef0123456789abcdefX", 33, 0600);
	CHECK_EQ_INT(trail_key_load(scratch, 1, k2, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "longer") != NULL);
	write_file("audit.key", "0123456789abcdef0123456789abcde", 31, 0600);
	CHECK_EQ_INT(trail_key_load(scratch, 0, k2, err, sizeof(err)), -EINVAL);
	/* a symbolic link is not followed, by either side */
	unlink(path);
	write_file("elsewhere", "0123456789abcdef0123456789abcdef", 32, 0600);
	CHECK(symlink("elsewhere", path) == 0);
	CHECK_EQ_INT(trail_key_load(scratch, 0, k2, err, sizeof(err)), -ELOOP);
	CHECK_EQ_INT(trail_key_load(scratch, 1, k2, err, sizeof(err)), -ELOOP);
	CHECK(strstr(err, "symbolic link") != NULL);
	unlink(path);
}

/* The lines of a segment, "|"-separated, torn ones marked with a trailing "~". */
static int read_all(const char *name, size_t max, char *out, size_t n, uint64_t *whole)
{
	struct trail_lines l;
	int dfd = open(scratch, O_RDONLY | O_DIRECTORY), r;
	size_t o = 0;

	out[0] = '\0';
	if (trail_lines_open(&l, dfd, name, max)) {
		trail_lines_close(&l);
		close(dfd);
		return -2;
	}
	while ((r = trail_lines_next(&l)) == 1)
		o += (size_t)snprintf(out + o, n - o, "%s%s%s", o ? "|" : "", l.line,
				      l.torn ? "~" : "");
	*whole = l.whole;
	trail_lines_close(&l);
	close(dfd);
	return r;
}

static void test_lines(void)
{
	static const char plain[] = "one\n\nthree\ntorn";
	char got[256], path[4200];
	uint64_t whole;
	gzFile g;

	write_file("seg-00000001.jsonl", plain, sizeof(plain) - 1, 0600);
	CHECK_EQ_INT(read_all("seg-00000001.jsonl", 1 << 20, got, sizeof(got), &whole), 0);
	CHECK_STREQ(got, "one||three|torn~");
	CHECK_EQ_INT(whole, 11); /* up to the last newline: what a repair keeps */
	/* a line longer than max is an error in the data */
	CHECK_EQ_INT(read_all("seg-00000001.jsonl", 5, got, sizeof(got), &whole), -1);
	/* two gzip members (hoopd compresses in chunks) read as one stream */
	snprintf(path, sizeof(path), "%s/seg-00000002.jsonl.gz", scratch);
	unlink(path);
	for (int m = 0; m < 2; m++) {
		g = gzopen(path, m ? "ab" : "wb");
		CHECK(g != NULL);
		if (g) {
			gzputs(g, m ? "lo\nsecond\n" : "first\nhal");
			gzclose(g);
		}
	}
	CHECK_EQ_INT(read_all("seg-00000002.jsonl.gz", 1 << 20, got, sizeof(got), &whole), 0);
	CHECK_STREQ(got, "first|hallo|second");
	/* a .gz cut short is damage, not an end */
	{
		char buf[256];
		FILE *f = fopen(path, "rb");
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

		if (f)
			fclose(f);
		write_file("seg-00000003.jsonl.gz", buf, n > 10 ? n - 10 : 0, 0600);
	}
	CHECK_EQ_INT(read_all("seg-00000003.jsonl.gz", 1 << 20, got, sizeof(got), &whole), -1);
	CHECK_EQ_INT(read_all("seg-00000009.jsonl", 1 << 20, got, sizeof(got), &whole), -2);
}

/* Every record's "ts" (isotime.h): RFC 3339 UTC with microseconds, now. */
static void test_ts_iso_us(void)
{
	char ts[TS_ISO_US_LEN];
	struct tm tm = {0};
	time_t before = time(NULL), at;
	const char *end;

	ts_iso_us(ts);
	unit_where("%s", ts);
	CHECK_EQ_INT(strlen(ts), TS_ISO_US_LEN - 1);
	end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	CHECK(end && end == ts + 19 && end[0] == '.' && ts[26] == 'Z');
	for (int i = 20; i < 26; i++)
		CHECK(ts[i] >= '0' && ts[i] <= '9');
	at = timegm(&tm);
	CHECK(at >= before && at <= time(NULL));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_trail SCRATCH-DIR\n");
		return 2;
	}
	scratch = argv[1];
	if (mkdir(scratch, 0700) && errno != EEXIST) {
		perror(scratch);
		return 2;
	}
	UNIT_RUN(test_seg_names);
	UNIT_RUN(test_head);
	UNIT_RUN(test_chain_hash);
	UNIT_RUN(test_checkpoint_mac);
	UNIT_RUN(test_key);
	UNIT_RUN(test_lines);
	UNIT_RUN(test_ts_iso_us);
	return unit_report();
}
