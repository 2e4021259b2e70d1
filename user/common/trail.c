/* The audit trail's on-disk format: segment names, record heads, the chain hash, checkpoint
 * signatures (and the MACs of older checkpoints), the keys and the line reader (trail.h). No policy
 * here: what a bad line means is the caller's to say. */
#include "trail.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hex.h"

static const char *const seg_suffix[] = {".jsonl", ".jsonl.gz", ".jsonl.gz.tmp"};

void trail_seg_name(char *out, size_t n, uint32_t segno, enum trail_seg_kind kind)
{
	snprintf(out, n, "seg-%08u%s", segno, seg_suffix[kind]);
}

int trail_seg_parse(const char *name, uint32_t *segno, enum trail_seg_kind *kind)
{
	uint32_t v = 0;

	if (strncmp(name, "seg-", 4))
		return 0;
	for (int i = 4; i < 12; i++) {
		if (!isdigit((unsigned char)name[i]))
			return 0;
		v = v * 10 + (uint32_t)(name[i] - '0');
	}
	for (int k = TRAIL_SEG_PLAIN; k <= TRAIL_SEG_GZ_TMP; k++) {
		if (!strcmp(name + 12, seg_suffix[k])) {
			*segno = v;
			*kind = (enum trail_seg_kind)k;
			return 1;
		}
	}
	return 0;
}

/* Without snprintf: hoopd writes one for every record. */
size_t trail_format_head(char *out, uint64_t seq, const char prev[TRAIL_HASH_HEX])
{
	char digits[24];
	int nd = 0;
	size_t hl;

	do
		digits[nd++] = (char)('0' + seq % 10);
	while ((seq /= 10));
	memcpy(out, "{\"seq\":", 7);
	hl = 7;
	while (nd)
		out[hl++] = digits[--nd];
	memcpy(out + hl, ",\"prev\":\"", 9);
	hl += 9;
	memcpy(out + hl, prev, 64);
	hl += 64;
	memcpy(out + hl, "\",", 2);
	return hl + 2;
}

int trail_parse_head(const char *line, size_t len, uint64_t *seq, char prev[TRAIL_HASH_HEX])
{
	const char *p = line + 7, *end = line + len;
	uint64_t v = 0;
	int digits = 0;

	if (len < 7 || memcmp(line, "{\"seq\":", 7))
		return -1;
	while (p < end && isdigit((unsigned char)*p) && digits < 19) {
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
		digits++;
	}
	if (!digits || (digits > 1 && line[7] == '0'))
		return -1;
	if (end - p < 9 + 64 + 2 || memcmp(p, ",\"prev\":\"", 9))
		return -1;
	p += 9;
	for (int i = 0; i < 64; i++)
		if (!isdigit((unsigned char)p[i]) && (p[i] < 'a' || p[i] > 'f'))
			return -1;
	memcpy(prev, p, 64);
	prev[64] = '\0';
	p += 64;
	if (p[0] != '"' || (p[1] != ',' && p[1] != '}'))
		return -1;
	*seq = v;
	return 0;
}

/*
 * OpenSSL 3's one-shot SHA256() looks the algorithm up in its provider tables on every call,
 * which cost more than the hashing of a short record: fetch it once (per thread: the context
 * is state).
 */
void trail_chain_hash(const void *line, size_t len, char out[TRAIL_HASH_HEX])
{
	static _Thread_local EVP_MD *md;
	static _Thread_local EVP_MD_CTX *ctx;
	uint8_t d[SHA256_DIGEST_LENGTH];

	if (!md)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!ctx)
		ctx = EVP_MD_CTX_new();
	if (!md || !ctx || !EVP_DigestInit_ex2(ctx, md, NULL) ||
	    !EVP_DigestUpdate(ctx, line, len) || !EVP_DigestFinal_ex(ctx, d, NULL))
		SHA256(line, len, d);
	hex_encode(d, sizeof(d), out);
}

void trail_checkpoint_mac(const uint8_t key[TRAIL_KEY_LEN], uint64_t seq,
			  const char prev[TRAIL_HASH_HEX], char out[TRAIL_HASH_HEX])
{
	char msg[96];
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int ml = sizeof(mac);
	int n = snprintf(msg, sizeof(msg), "%llu:%.64s", (unsigned long long)seq, prev);

	HMAC(EVP_sha256(), key, TRAIL_KEY_LEN, (const uint8_t *)msg, (size_t)n, mac, &ml);
	hex_encode(mac, 32, out);
}

size_t trail_checkpoint_text(uint64_t seq, const char prev[TRAIL_HASH_HEX], char *out, size_t n)
{
	int r = snprintf(out, n, TRAIL_SIG_DOMAIN "%llu:%.64s", (unsigned long long)seq, prev);

	return r < 0 ? 0 : (size_t)r < n ? (size_t)r : n - 1;
}

int trail_checkpoint_sign(EVP_PKEY *key, uint64_t seq, const char prev[TRAIL_HASH_HEX],
			  char out[TRAIL_SIG_HEX])
{
	char msg[128];
	size_t n = trail_checkpoint_text(seq, prev, msg, sizeof(msg)), sl = 64;
	uint8_t sig[64];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	/* Ed25519 hashes the message itself: no digest of ours (NULL md), one shot */
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, key) == 1 &&
		 EVP_DigestSign(c, sig, &sl, (const uint8_t *)msg, n) == 1 && sl == sizeof(sig);

	EVP_MD_CTX_free(c);
	if (!ok)
		return -EIO;
	hex_encode(sig, sizeof(sig), out);
	return 0;
}

int trail_checkpoint_verify(EVP_PKEY *pub, uint64_t seq, const char prev[TRAIL_HASH_HEX],
			    const char *sig)
{
	char msg[128];
	size_t n = trail_checkpoint_text(seq, prev, msg, sizeof(msg));
	uint8_t raw[64];
	EVP_MD_CTX *c;
	int ok;

	/* exactly as hoopd writes it: 128 lower-case hex digits, nothing else */
	if (strlen(sig) != 2 * sizeof(raw))
		return 0;
	for (size_t i = 0; i < sizeof(raw); i++) {
		int hi = hex_digit(sig[2 * i]), lo = hex_digit(sig[2 * i + 1]);

		if (hi < 0 || lo < 0 || isupper((unsigned char)sig[2 * i]) ||
		    isupper((unsigned char)sig[2 * i + 1]))
			return 0;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	c = EVP_MD_CTX_new();
	ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, pub) == 1 &&
	     EVP_DigestVerify(c, raw, sizeof(raw), (const uint8_t *)msg, n) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

int trail_key_id(EVP_PKEY *key, char out[TRAIL_KEYID_HEX])
{
	uint8_t raw[32], d[SHA256_DIGEST_LENGTH];
	size_t n = sizeof(raw);

	out[0] = '\0';
	if (!key || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519 ||
	    EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != sizeof(raw))
		return -EINVAL;
	SHA256(raw, sizeof(raw), d);
	hex_encode(d, 16, out);
	return 0;
}

/* Read the key from fd: exactly TRAIL_KEY_LEN bytes of a regular file. */
static int key_read(int fd, const char *p, uint8_t key[TRAIL_KEY_LEN], char *err, size_t errn)
{
	uint8_t k[TRAIL_KEY_LEN + 1];
	ssize_t n = 0, got;
	struct stat st;

	while (!fstat(fd, &st) && S_ISREG(st.st_mode) && (size_t)n < sizeof(k) &&
	       (got = read(fd, k + n, sizeof(k) - (size_t)n)) > 0)
		n += got;
	if (n == TRAIL_KEY_LEN) {
		memcpy(key, k, TRAIL_KEY_LEN);
		return 0;
	}
	snprintf(err, errn, "%s is not a %d-byte key (%s)", p, TRAIL_KEY_LEN,
		 n > TRAIL_KEY_LEN ? "longer" : "shorter, or not a regular file");
	return -EINVAL;
}

/* A new key, in a new file of mode 0400 (sdfd: the state directory). */
static int key_create(int sdfd, const char *p, uint8_t key[TRAIL_KEY_LEN], char *err, size_t errn)
{
	int fd, e;

	if (RAND_bytes(key, TRAIL_KEY_LEN) != 1) {
		snprintf(err, errn, "cannot make a key for %s: no random bytes", p);
		return -EIO;
	}
	fd = openat(sdfd, "audit.key", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0 || write(fd, key, TRAIL_KEY_LEN) != TRAIL_KEY_LEN || fsync(fd)) {
		e = errno;
		snprintf(err, errn, "cannot write %s: %s", p, strerror(e));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	close(fd);
	return 1;
}

int trail_key_load(const char *state_dir, int create, uint8_t key[TRAIL_KEY_LEN], char *err,
		   size_t errn)
{
	char p[4200];
	int fd, r, e, sdfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	snprintf(p, sizeof(p), "%s/audit.key", state_dir);
	if (sdfd < 0) {
		e = errno;
		snprintf(err, errn, "cannot open the state directory %s (for audit.key): %s",
			 state_dir, strerror(e));
		return -e;
	}
	fd = openat(sdfd, "audit.key", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		r = key_read(fd, p, key, err, errn);
		close(fd);
	} else if (errno == ENOENT && create) {
		r = key_create(sdfd, p, key, err, errn);
	} else {
		e = errno;
		snprintf(err, errn, "cannot read %s: %s", p,
			 e == ELOOP ? "it is a symbolic link" : strerror(e));
		r = -e;
	}
	close(sdfd);
	return r;
}

/* A PEM key file is a few hundred bytes: anything longer is not one, and is not read whole. */
#define PEM_MAX 4096

/* The contents of the PEM file open at fd (p: its name, for errors) into buf (PEM_MAX + 1
 * bytes, NUL-terminated): a regular file of at most PEM_MAX bytes. 0, or a negative errno. */
static int pem_read_fd(int fd, const char *p, char *buf, size_t *n, char *err, size_t errn)
{
	struct stat st;
	ssize_t got = 0;

	*n = 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, errn, "%s is not a regular file", p);
		return -EINVAL;
	}
	while (*n < PEM_MAX && (got = read(fd, buf + *n, PEM_MAX - *n)) > 0)
		*n += (size_t)got;
	if (got < 0) {
		int e = errno;

		snprintf(err, errn, "cannot read %s: %s", p, strerror(e));
		return -e;
	}
	if (*n == PEM_MAX) {
		snprintf(err, errn, "%s is longer than %d bytes: not a PEM key", p, PEM_MAX);
		return -EINVAL;
	}
	buf[*n] = '\0';
	return 0;
}

/* Never ask for a pass phrase (OpenSSL's default would prompt on the terminal). */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return -1;
}

/* The Ed25519 key (private: PKCS#8; else SubjectPublicKeyInfo) in PEM text, or NULL. */
static EVP_PKEY *pem_parse(const char *pem, size_t n, int private)
{
	BIO *b = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *k = NULL;

	if (b)
		k = private ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL)
			    : PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (k && EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

/* key as PEM (private: PKCS#8, else SubjectPublicKeyInfo) into a new memory BIO, or NULL. */
static BIO *pem_write(EVP_PKEY *key, int private)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok = b && (private ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
			       : PEM_write_bio_PUBKEY(b, key));

	if (!ok) {
		BIO_free(b);
		return NULL;
	}
	return b;
}

/* A new file name in sdfd holding the PEM text of b, of mode `mode` whatever the umask,
 * fsynced. 0, or -EIO with the reason in err. */
static int pem_create(int sdfd, const char *name, const char *p, BIO *b, mode_t mode, char *err,
		      size_t errn)
{
	char *data;
	long len = BIO_get_mem_data(b, &data);
	int fd, e;

	fd = openat(sdfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0 || len <= 0 || write(fd, data, (size_t)len) != len || fchmod(fd, mode) ||
	    fsync(fd)) {
		e = errno;
		snprintf(err, errn, "cannot write %s: %s", p, strerror(e));
		if (fd >= 0) {
			close(fd);
			unlinkat(sdfd, name, 0); /* not half a key: the next start makes it anew */
		}
		return -EIO;
	}
	close(fd);
	return 0;
}

/*
 * <state dir>/audit.pub holds key's public half, for whoever verifies. Anyone who can write the
 * state directory can replace it: what is there is read (never through a link) and, unless it
 * is exactly what hoopd would write, removed and written anew. 0 as it was, 1 (re)written, or
 * a negative errno.
 */
static int pub_ensure(int sdfd, const char *state_dir, EVP_PKEY *key, char *err, size_t errn)
{
	char p[4200], have[PEM_MAX + 1], *want;
	size_t n = 0;
	long wl;
	BIO *b = pem_write(key, 0);
	int fd, r, was = 0;

	snprintf(p, sizeof(p), "%s/audit.pub", state_dir);
	if (!b) {
		snprintf(err, errn, "cannot write %s: the public key cannot be encoded", p);
		return -EIO;
	}
	wl = BIO_get_mem_data(b, &want);
	fd = openat(sdfd, "audit.pub", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		was = 1;
		if (!pem_read_fd(fd, p, have, &n, err, errn) && n == (size_t)wl &&
		    !memcmp(have, want, n)) {
			close(fd);
			BIO_free(b);
			return 0;
		}
		close(fd);
	} else {
		was = errno != ENOENT;
	}
	if (was && unlinkat(sdfd, "audit.pub", 0)) {
		r = errno;
		snprintf(err, errn, "cannot replace %s: %s", p, strerror(r));
		BIO_free(b);
		return -r;
	}
	r = pem_create(sdfd, "audit.pub", p, b, 0444, err, errn);
	BIO_free(b);
	return r ? r : 1;
}

/* A new Ed25519 key in sdfd's audit.ed25519, mode 0400. 0, or a negative errno. */
static int sign_key_create(int sdfd, const char *p, EVP_PKEY **key, char *err, size_t errn)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *b = k ? pem_write(k, 1) : NULL;
	int r;

	if (!b) {
		snprintf(err, errn, "cannot make a key for %s: OpenSSL has no Ed25519 key for us",
			 p);
		EVP_PKEY_free(k);
		return -EIO;
	}
	r = pem_create(sdfd, "audit.ed25519", p, b, 0400, err, errn);
	BIO_free(b);
	if (r) {
		EVP_PKEY_free(k);
		return r;
	}
	*key = k;
	return 1;
}

int trail_sign_key_load(const char *state_dir, int create, EVP_PKEY **key, char *err, size_t errn)
{
	char p[4200], pem[PEM_MAX + 1];
	size_t n;
	int fd, r, e, sdfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*key = NULL;
	err[0] = '\0';
	snprintf(p, sizeof(p), "%s/audit.ed25519", state_dir);
	if (sdfd < 0) {
		e = errno;
		snprintf(err, errn, "cannot open the state directory %s (for audit.ed25519): %s",
			 state_dir, strerror(e));
		return -e;
	}
	/* O_NONBLOCK: a FIFO planted there must not hang the start (it is refused below) */
	fd = openat(sdfd, "audit.ed25519", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		r = pem_read_fd(fd, p, pem, &n, err, errn);
		close(fd);
		if (!r && !(*key = pem_parse(pem, n, 1))) {
			snprintf(err, errn, "%s is not an Ed25519 private key (PEM PKCS#8)", p);
			r = -EINVAL;
		}
		OPENSSL_cleanse(pem, sizeof(pem));
	} else if (errno == ENOENT && create) {
		r = sign_key_create(sdfd, p, key, err, errn);
	} else {
		e = errno;
		snprintf(err, errn, "cannot read %s: %s", p,
			 e == ELOOP ? "it is a symbolic link" : strerror(e));
		r = -e;
	}
	if (r >= 0) {
		int pr = pub_ensure(sdfd, state_dir, *key, err, errn);

		if (pr < 0) {
			EVP_PKEY_free(*key);
			*key = NULL;
			r = pr;
		} else if (pr == 1 && r == 0) {
			snprintf(
			    err, errn,
			    "%s/audit.pub did not hold audit.ed25519's public key: written anew",
			    state_dir);
		} else {
			err[0] = '\0';
		}
	}
	close(sdfd);
	return r;
}

int trail_pub_load(const char *path, int nofollow, EVP_PKEY **key, char *err, size_t errn)
{
	char pem[PEM_MAX + 1];
	size_t n;
	int r, e, fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));

	*key = NULL;
	if (fd < 0) {
		e = errno;
		snprintf(err, errn, "cannot read %s: %s", path,
			 e == ELOOP && nofollow ? "it is a symbolic link" : strerror(e));
		return -e;
	}
	r = pem_read_fd(fd, path, pem, &n, err, errn);
	close(fd);
	if (!r && !(*key = pem_parse(pem, n, 0))) {
		snprintf(err, errn, "%s is not an Ed25519 public key (PEM SubjectPublicKeyInfo)",
			 path);
		r = -EINVAL;
	}
	return r;
}

int trail_lines_open(struct trail_lines *l, int dirfd, const char *name, size_t max)
{
	int fd, e;

	memset(l, 0, sizeof(*l));
	l->max = max;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && !(l->f = gzdopen(fd, "rb"))) {
		close(fd);
		fd = -1;
		errno = ENOMEM;
	}
	if (fd < 0) {
		e = errno;
		snprintf(l->err, sizeof(l->err), "cannot open %s: %s", name, strerror(e));
		errno = e;
		return -1;
	}
	gzbuffer(l->f, 1 << 17);
	return 0;
}

void trail_lines_close(struct trail_lines *l)
{
	if (l->f)
		gzclose(l->f);
	l->f = NULL;
	free(l->line);
	l->line = NULL;
}

/* zlib's error after a read that failed or ended: -1 with it in l->err, or 0 at a clean end. */
static int lines_gzerror(struct trail_lines *l, int at_end)
{
	int ze;
	const char *m = gzerror(l->f, &ze);

	if (at_end && (ze == Z_OK || ze == Z_STREAM_END))
		return 0;
	/* e.g. a .gz cut short: "unexpected end of file" */
	l->damaged = ze != Z_ERRNO;
	snprintf(l->err, sizeof(l->err), "%s", ze == Z_ERRNO ? strerror(errno) : m);
	return -1;
}

/* Room for take more bytes of the line. 0, or -1 with l->err set. */
static int lines_grow(struct trail_lines *l, size_t take)
{
	size_t nc = l->cap ? l->cap : 4096;
	char *x;

	if (l->len + take + 1 > l->max) {
		l->damaged = 1;
		snprintf(l->err, sizeof(l->err), "line %u is longer than %zu MiB", l->lineno + 1,
			 l->max >> 20);
		return -1;
	}
	if (l->len + take + 1 <= l->cap)
		return 0;
	while (nc < l->len + take + 1)
		nc *= 2;
	x = realloc(l->line, nc);
	if (!x) {
		snprintf(l->err, sizeof(l->err), "out of memory");
		return -1;
	}
	l->line = x;
	l->cap = nc;
	return 0;
}

int trail_lines_next(struct trail_lines *l)
{
	l->len = 0;
	l->torn = 0;
	for (;;) {
		char *nl;
		size_t take;

		if (l->cpos == l->clen) {
			l->clen = gzread(l->f, l->chunk, sizeof(l->chunk));
			l->cpos = 0;
			if (l->clen < 0) {
				l->clen = 0;
				return lines_gzerror(l, 0);
			}
			if (l->clen == 0) {
				if (lines_gzerror(l, 1))
					return -1;
				if (!l->len)
					return 0;
				l->torn = 1;
				l->lineno++;
				l->line[l->len] = '\0';
				return 1;
			}
		}
		nl = memchr(l->chunk + l->cpos, '\n', (size_t)(l->clen - l->cpos));
		take = nl ? (size_t)(nl - (l->chunk + l->cpos)) : (size_t)(l->clen - l->cpos);
		if (lines_grow(l, take))
			return -1;
		memcpy(l->line + l->len, l->chunk + l->cpos, take);
		l->len += take;
		l->cpos += (int)take;
		if (nl) {
			l->cpos++;
			l->lineno++;
			l->line[l->len] = '\0';
			l->whole += l->len + 1;
			return 1;
		}
	}
}
