/*
 * Unit tests for the audit trail's format (user/common/trail.c), which hoopd writes and hoopctl
 * reads: segment names both ways, the record head, the chain hash, the checkpoint MAC and the
 * checkpoint signature against values computed by an independent implementation (Python's
 * hashlib, hmac and cryptography; the commands are beside the values), that a signature fails
 * on any flipped bit and under another key, the key files' rules (audit.key, audit.ed25519 and
 * audit.pub), and the line reader over plain and
 * gzip segments (several gzip members, a torn last line, an oversized line); and the records'
 * timestamp (isotime.h).
 * Usage: test_trail SCRATCH-DIR (created; its contents are replaced).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
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

/* RFC 8032's test 1 key: its public key is d75a9801...f707511a */
static EVP_PKEY *rfc8032_key(void)
{
	static const uint8_t sk[32] = {
	    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
	    0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
	    0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
	};

	return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, sizeof(sk));
}

/*
 * python3 -c 'from cryptography.hazmat.primitives.asymmetric.ed25519 import *; k =
 *   Ed25519PrivateKey.from_private_bytes(bytes.fromhex("9d61...7f60")); print(k.sign(
 *   b"hoop-checkpoint-v2:2:<REC1_HASH>").hex())': the checkpoint after record 1
 */
#define REC1_CP_SIG                                                                                \
	"764fd9c99f7fea3afc3d0aaa760291b198cc2728146ee49ae7801f6aae46322a53af5268c2b7de8a278f6edf" \
	"06e8a3ea7810e24cbbfabaf221b12f6154a1d505"

static void test_checkpoint_sig(void)
{
	EVP_PKEY *k = rfc8032_key(), *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char sig[TRAIL_SIG_HEX], bad[TRAIL_SIG_HEX], prev[TRAIL_HASH_HEX], id[TRAIL_KEYID_HEX];
	char text[128];

	CHECK(k && other);
	if (!k || !other)
		return;
	CHECK_EQ_INT(trail_checkpoint_text(2, REC1_HASH, text, sizeof(text)),
		     strlen("hoop-checkpoint-v2:2:" REC1_HASH));
	CHECK_STREQ(text, "hoop-checkpoint-v2:2:" REC1_HASH);
	/* Ed25519 is deterministic: the same bytes as another implementation makes */
	CHECK_EQ_INT(trail_checkpoint_sign(k, 2, REC1_HASH, sig), 0);
	CHECK_STREQ(sig, REC1_CP_SIG);
	CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, sig), 1);
	/* python3 -c 'import hashlib; print(hashlib.sha256(bytes.fromhex("d75a...511a"))
	 *   .hexdigest()[:32])' */
	CHECK_EQ_INT(trail_key_id(k, id), 0);
	CHECK_STREQ(id, "21fe31dfa154a261626bf854046fd227");

	/* every bit of the seq, the prev and the signature counts */
	for (int b = 0; b < 64; b++) {
		unit_where("seq bit %d", b);
		CHECK_EQ_INT(trail_checkpoint_verify(k, 2 ^ (1ULL << b), REC1_HASH, sig), 0);
	}
	for (int i = 0; i < 64; i++) {
		unit_where("prev digit %d", i);
		memcpy(prev, REC1_HASH, sizeof(prev));
		prev[i] = prev[i] == '0' ? '1' : '0';
		CHECK_EQ_INT(trail_checkpoint_verify(k, 2, prev, sig), 0);
	}
	for (int bit = 0; bit < 512; bit++) {
		static const char digits[] = "0123456789abcdef";
		int i = bit / 4, v;

		unit_where("signature bit %d", bit);
		memcpy(bad, sig, sizeof(bad));
		v = bad[i] <= '9' ? bad[i] - '0' : bad[i] - 'a' + 10;
		bad[i] = digits[v ^ (1 << (bit % 4))];
		CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, bad), 0);
	}
	unit_where("spelling");
	/* only as hoopd writes it: lower-case, exactly 128 digits */
	memcpy(bad, sig, sizeof(bad));
	for (int i = 0; bad[i]; i++)
		if (bad[i] >= 'a')
			bad[i] = (char)(bad[i] - 'a' + 'A');
	CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, bad), 0);
	bad[126] = '\0';
	CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, bad), 0);
	CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, ""), 0);
	/* another key: its signature does not verify under k, and its id is not k's */
	unit_where("another key");
	CHECK_EQ_INT(trail_checkpoint_sign(other, 2, REC1_HASH, bad), 0);
	CHECK_EQ_INT(trail_checkpoint_verify(other, 2, REC1_HASH, bad), 1);
	CHECK_EQ_INT(trail_checkpoint_verify(k, 2, REC1_HASH, bad), 0);
	CHECK_EQ_INT(trail_checkpoint_verify(other, 2, REC1_HASH, sig), 0);
	CHECK_EQ_INT(trail_key_id(other, prev), 0);
	CHECK(strcmp(prev, id) != 0);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
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

static void test_sign_key(void)
{
	EVP_PKEY *k1 = NULL, *k2 = NULL, *pub = NULL;
	char err[512], path[4200], pubpath[4200], id1[TRAIL_KEYID_HEX], id2[TRAIL_KEYID_HEX];
	char sig[TRAIL_SIG_HEX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/audit.ed25519", scratch);
	snprintf(pubpath, sizeof(pubpath), "%s/audit.pub", scratch);
	unlink(path);
	unlink(pubpath);
	/* the verifier never makes one */
	CHECK_EQ_INT(trail_sign_key_load(scratch, 0, &k1, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "audit.ed25519") != NULL && k1 == NULL);
	CHECK(stat(path, &st) < 0 && stat(pubpath, &st) < 0);
	/* hoopd does: the private key 0400, the public one 0444 (whatever the umask) */
	umask(077);
	CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k1, err, sizeof(err)), 1);
	umask(022);
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0400);
	CHECK(stat(pubpath, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0444);
	CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k2, err, sizeof(err)), 0);
	CHECK_STREQ(err, "");
	CHECK(k1 && k2 && EVP_PKEY_eq(k1, k2) == 1);
	EVP_PKEY_free(k2);
	k2 = NULL;
	/* audit.pub is the public half: what it verifies, k1 signed */
	CHECK_EQ_INT(trail_pub_load(pubpath, 1, &pub, err, sizeof(err)), 0);
	CHECK(pub && !trail_key_id(pub, id2) && !trail_key_id(k1, id1));
	CHECK_STREQ(id1, id2);
	CHECK(!trail_checkpoint_sign(k1, 9, REC1_HASH, sig) &&
	      trail_checkpoint_verify(pub, 9, REC1_HASH, sig) == 1);
	EVP_PKEY_free(pub);
	pub = NULL;
	/* an audit.pub that holds anything else is written anew */
	unlink(pubpath);
	write_file("audit.pub", "not a key\n", 10, 0644);
	CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k2, err, sizeof(err)), 0);
	CHECK(strstr(err, "written anew") != NULL);
	CHECK(stat(pubpath, &st) == 0 && (st.st_mode & 07777) == 0444);
	CHECK_EQ_INT(trail_pub_load(pubpath, 1, &pub, err, sizeof(err)), 0);
	CHECK(pub && !trail_key_id(pub, id2));
	CHECK_STREQ(id1, id2);
	EVP_PKEY_free(pub);
	pub = NULL;
	EVP_PKEY_free(k2);
	k2 = NULL;
	/* a public key is not a private key, nor a private key a public one */
	CHECK_EQ_INT(trail_pub_load(path, 1, &pub, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not an Ed25519 public key") != NULL);
	/* not PEM, too long, a symbolic link: refused, by either side */
	unlink(path);
	write_file("audit.ed25519", "-----BEGIN PRIVATE KEY-----\nAAAA\n", 33, 0400);
	CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k2, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not an Ed25519 private key") != NULL && k2 == NULL);
	{
		static char big[8192];

		memset(big, 'A', sizeof(big));
		unlink(path);
		write_file("audit.ed25519", big, sizeof(big), 0400);
		CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k2, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "longer") != NULL);
	}
	unlink(path);
	CHECK(symlink("elsewhere", path) == 0);
	CHECK_EQ_INT(trail_sign_key_load(scratch, 1, &k2, err, sizeof(err)), -ELOOP);
	CHECK(strstr(err, "symbolic link") != NULL);
	unlink(pubpath);
	CHECK(symlink("audit.ed25519", pubpath) == 0);
	CHECK_EQ_INT(trail_pub_load(pubpath, 1, &pub, err, sizeof(err)), -ELOOP);
	unlink(path);
	unlink(pubpath);
	EVP_PKEY_free(k1);
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
	UNIT_RUN(test_checkpoint_sig);
	UNIT_RUN(test_key);
	UNIT_RUN(test_sign_key);
	UNIT_RUN(test_lines);
	UNIT_RUN(test_ts_iso_us);
	return unit_report();
}
