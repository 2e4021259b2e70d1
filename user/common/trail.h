/*
 * The audit trail's on-disk format, the one definition that hoopd (the writer, audit.c) and
 * hoopctl (the readers: verify, sessions, replay, export) share. docs/audit.md describes it:
 *   <state dir>/audit.ed25519   the checkpoint signing key, PEM PKCS#8 (root's, mode 0400)
 *   <state dir>/audit.pub       its public key, PEM SubjectPublicKeyInfo (mode 0444): verifiers
 *   <state dir>/audit.key       32 random bytes, the HMAC key of checkpoints written before
 *                               hoopd signed them (root's, mode 0400; no longer made)
 *   <state dir>/audit/seg-NNNNNNNN.jsonl[.gz]   segments, numbered from 1, one record a line
 * Every record begins {"seq":N,"prev":"<64 lowercase hex>", where prev is the chain hash (hex
 * SHA-256) of the line before it, across segments; record 1's prev is 64 zeros. A checkpoint
 * record carries "sig": the hex Ed25519 signature of "hoop-checkpoint-v2:<its seq>:<its prev>"
 * and "key": the signing key's id (trail_key_id); one written before hoopd signed carries
 * "hmac": HMAC-SHA-256 under audit.key of "<its seq>:<its prev>" instead.
 * Changing anything here changes the format: existing trails would no longer verify.
 */
#ifndef HOOP_TRAIL_H
#define HOOP_TRAIL_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>
#include <zlib.h>

#define TRAIL_KEY_LEN	32
#define TRAIL_HASH_HEX	65 /* 64 hex digits and the NUL */
#define TRAIL_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define TRAIL_SIG_HEX	129 /* an Ed25519 signature (64 bytes) in hex, and the NUL */
#define TRAIL_KEYID_HEX 33  /* a key id (16 bytes) in hex, and the NUL */
/* What a signature covers, before "<seq>:<prev>": it can be mistaken for no other signed text,
 * and "v2" tells it from the HMAC's undecorated "<seq>:<prev>" (v1). */
#define TRAIL_SIG_DOMAIN "hoop-checkpoint-v2:"
/* The longest record head, {"seq":<20 digits>,"prev":"<64 hex>", (102 bytes) */
#define TRAIL_HEAD_MAX 104
/* The longest record hoopctl reads, and hoopd's workers send (audit_ipc.h): hoopd records
 * statements of up to 64 MiB (--max-message), and escaped as JSON they grow. */
#define TRAIL_RECORD_MAX (512u << 20)

/* ---- segment names ---------------------------------------------------------------------- */

enum trail_seg_kind {
	TRAIL_SEG_PLAIN = 0, /* seg-N.jsonl: the open segment, or a closed one not yet compressed */
	TRAIL_SEG_GZ = 1,    /* seg-N.jsonl.gz: closed and compressed */
	TRAIL_SEG_GZ_TMP = 2, /* seg-N.jsonl.gz.tmp: a compression under way (or cut short) */
};

/* seg-%08u.jsonl, .jsonl.gz or .jsonl.gz.tmp into out (at least 32 bytes). */
void trail_seg_name(char *out, size_t n, uint32_t segno, enum trail_seg_kind kind);
/* Is name one of the three (exactly 8 digits)? 1 with *segno and *kind set, or 0. */
int trail_seg_parse(const char *name, uint32_t *segno, enum trail_seg_kind *kind);

/* ---- the chain and checkpoints ------------------------------------------------------------ */

/* The record head hoopd writes in front of a record's fields, seq and prev: its length. out
 * holds TRAIL_HEAD_MAX bytes; it is not NUL-terminated and ends with the comma. */
size_t trail_format_head(char *out, uint64_t seq, const char prev[TRAIL_HASH_HEX]);
/* Parse a line's head (strictly: seq without leading zeros, prev 64 lowercase hex, then ','
 * or '}'). 0, or -1 when the line does not start as a record does. */
int trail_parse_head(const char *line, size_t len, uint64_t *seq, char prev[TRAIL_HASH_HEX]);
/* The chain hash of a line (its bytes without the newline): hex SHA-256. */
void trail_chain_hash(const void *line, size_t len, char out[TRAIL_HASH_HEX]);
/* The "hmac" a checkpoint with this seq and prev carries: hex HMAC-SHA-256 of "seq:prev". */
void trail_checkpoint_mac(const uint8_t key[TRAIL_KEY_LEN], uint64_t seq,
			  const char prev[TRAIL_HASH_HEX], char out[TRAIL_HASH_HEX]);

/* The signed text of a checkpoint: TRAIL_SIG_DOMAIN "<seq>:<prev>", into out (at least 128
 * bytes); its length. */
size_t trail_checkpoint_text(uint64_t seq, const char prev[TRAIL_HASH_HEX], char *out, size_t n);
/* The "sig" a checkpoint with this seq and prev carries, made with the Ed25519 private key:
 * 128 hex digits. 0, or -EIO (OpenSSL failed). */
int trail_checkpoint_sign(EVP_PKEY *key, uint64_t seq, const char prev[TRAIL_HASH_HEX],
			  char out[TRAIL_SIG_HEX]);
/* Does sig (hex, as a record carries it) verify under the Ed25519 public key pub? 1 or 0. */
int trail_checkpoint_verify(EVP_PKEY *pub, uint64_t seq, const char prev[TRAIL_HASH_HEX],
			    const char *sig);
/* A checkpoint's "key": hex of the first 16 bytes of SHA-256 of the raw 32-byte Ed25519
 * public key (of key, private or public). 0, or -EINVAL. */
int trail_key_id(EVP_PKEY *key, char out[TRAIL_KEYID_HEX]);

/* ---- the keys ---------------------------------------------------------------------------- */

/*
 * Load <state_dir>/audit.key: a regular file of exactly TRAIL_KEY_LEN bytes, not opened
 * through a symbolic link (the state directory may be writable by whoever escaped into it).
 * With create (hoopd) a missing key is made: random bytes, a new file (O_EXCL) of mode 0400,
 * fsynced. 0 loaded, 1 created, or a negative errno with the reason in err (one phrase naming
 * the file, for the caller to prefix).
 */
int trail_key_load(const char *state_dir, int create, uint8_t key[TRAIL_KEY_LEN], char *err,
		   size_t errn);

/*
 * Load the signing key <state_dir>/audit.ed25519 under the same rules (a regular file, not a
 * symbolic link, at most 4 KiB, PEM PKCS#8 of an Ed25519 key); with create a missing one is
 * made (O_EXCL, mode 0400, fsynced). Either way <state_dir>/audit.pub is made to hold its
 * public key (mode 0444), replaced when it holds anything else. 0 loaded, 1 created, or a
 * negative errno with the reason in err; *key is the caller's to EVP_PKEY_free.
 */
int trail_sign_key_load(const char *state_dir, int create, EVP_PKEY **key, char *err, size_t errn);
/*
 * Load an Ed25519 public key (PEM SubjectPublicKeyInfo, at most 4 KiB) from path; nofollow:
 * not through a symbolic link (a file in the state directory). 0, or a negative errno with the
 * reason in err (-ENOENT when there is no such file).
 */
int trail_pub_load(const char *path, int nofollow, EVP_PKEY **key, char *err, size_t errn);

/* ---- reading segments line by line ------------------------------------------------------ */

/* One segment, plain or gzip (zlib reads either), line by line whatever a line's length. */
struct trail_lines {
	gzFile f;
	char chunk[65536];
	int clen, cpos;
	char *line; /* the last line: len bytes, no newline, NUL-terminated */
	size_t len, cap;
	size_t max;	 /* the longest line read (longer: an error, damaged) */
	unsigned lineno; /* of the last line */
	int torn;	 /* that line had no newline: the file ends inside it */
	uint64_t whole;	 /* bytes (uncompressed) up to and including the last newline */
	char err[256];	 /* why the last call returned -1 */
	int damaged;	 /* that error is in the data (bad gzip stream, oversized line) */
};

/* Open name in the directory dirfd (not following a symbolic link); lines up to max bytes.
 * 0, or -1 with l->err set (errno kept). Close it with trail_lines_close either way. */
int trail_lines_open(struct trail_lines *l, int dirfd, const char *name, size_t max);
/* 1: a line in l->line, 0: the end, -1: an error (l->err, l->damaged). */
int trail_lines_next(struct trail_lines *l);
void trail_lines_close(struct trail_lines *l);

#endif
