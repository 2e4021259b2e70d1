/*
 * The policy file as YAML (policy_int.h): read whole (one regular file of at most 1 MiB, one
 * document), every error with the file, line and column of its node (libyaml's own errors too,
 * encoding errors counted from their byte offset), and the key-table reader every section of
 * the file goes through: a key's value checked by its type and bounds into its field.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "policy_int.h"

/* Larger than any sane policy; refused before the file is read into memory. */
#define POLICY_MAX_BYTES (1024 * 1024)

int pol_fail_at(struct pctx *c, const yaml_mark_t *m, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m)
		snprintf(c->err, c->errn, "%s:%zu:%zu: %s", c->path, m->line + 1, m->column + 1,
			 msg);
	else
		snprintf(c->err, c->errn, "%s: %s", c->path, msg);
	return -EINVAL;
}

const char *pol_show(const char *s, char buf[SHOW_BUF])
{
	size_t n = strlen(s), o = 0;

	if (n > SHOW_MAX)
		for (n = SHOW_MAX; n && ((unsigned char)s[n] & 0xc0) == 0x80; n--)
			;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(buf + o, SHOW_BUF - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	if (n < strlen(s))
		o += (size_t)snprintf(buf + o, SHOW_BUF - o, "...");
	buf[o] = '\0';
	return buf;
}

const char *pol_scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Plain decimal only: no sign, blank or leading zero ("0" itself is fine), at most max. strtol
 * would take "-0", "+8", " 8" and "0008", and a policy should mean what it plainly says. */
int pol_decimal(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max) /* checked every digit, so v never overflows */
			return -1;
	}
	*out = v;
	return 0;
}

/* Index of key in names (NULL-terminated), or -1. */
int pol_key_index(const char *key, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(key, names[i]))
			return i;
	return -1;
}

/* libyaml keeps the last of two equal keys and tells no one; a policy must not hide an entry. */
static int check_duplicate(struct pctx *c, yaml_node_t *k, const char *key, yaml_node_t **seen)
{
	char q[SHOW_BUF];

	if (*seen)
		return fail(c, k, "duplicate key '%s' (first at %zu:%zu)", pol_show(key, q),
			    (*seen)->start_mark.line + 1, (*seen)->start_mark.column + 1);
	*seen = k;
	return 0;
}

/* A list of words (or one word) into l; lower-cased when fold is set. */
int pol_list(struct pctx *c, yaml_node_t *v, const char *what, struct policy_list *l, int fold)
{
	yaml_node_item_t one, *start, *top;

	if (v->type == YAML_SCALAR_NODE) {
		one = (yaml_node_item_t)(v - c->doc->nodes.start + 1);
		start = &one;
		top = &one + 1;
	} else if (v->type == YAML_SEQUENCE_NODE) {
		start = v->data.sequence.items.start;
		top = v->data.sequence.items.top;
	} else {
		return fail(c, v, "%s must be a list of words, e.g. [a, b]", what);
	}
	for (yaml_node_item_t *it = start; it < top; it++) {
		yaml_node_t *n = yaml_document_get_node(c->doc, *it);
		const char *s = pol_scalar(n);

		if (!s || !*s || strlen(s) >= POLICY_NAME)
			return fail(c, n, "each %s item must be a word of 1 to %d characters", what,
				    POLICY_NAME - 1);
		if (l->n == POLICY_MAX_LIST)
			return fail(c, n, "at most %d items in %s", POLICY_MAX_LIST, what);
		snprintf(l->v[l->n], POLICY_NAME, "%s", s);
		if (fold)
			for (char *p = l->v[l->n]; *p; p++)
				*p = (char)tolower((unsigned char)*p);
		l->n++;
	}
	return 0;
}

static int parse_bool(struct pctx *c, yaml_node_t *v, const char *what, int *out)
{
	const char *s = pol_scalar(v);

	if (s && !strcmp(s, "true"))
		*out = 1;
	else if (s && !strcmp(s, "false"))
		*out = 0;
	else
		return fail(c, v, "%s must be true or false", what);
	return 0;
}

/* "90d", "12h", "30m", "45s" or plain seconds; "0" keeps forever. */
static int parse_duration(const char *s, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	int64_t mul = 1;

	if (end == s || v < 0 || s[0] == '+' || s[0] == '-' || s[0] == ' ')
		return -1;
	if (!strcmp(end, "d"))
		mul = 86400;
	else if (!strcmp(end, "h"))
		mul = 3600;
	else if (!strcmp(end, "m"))
		mul = 60;
	else if (strcmp(end, "s") && *end)
		return -1;
	*out = (int64_t)v * mul;
	return 0;
}

/* "1048576", "512KiB", "1MiB", "2GiB": a byte count from 1 to max. */
static int parse_bytes(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (*s < '1' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (!strcmp(end, "KiB"))
		mul = 1ULL << 10;
	else if (!strcmp(end, "MiB"))
		mul = 1ULL << 20;
	else if (!strcmp(end, "GiB"))
		mul = 1ULL << 30;
	else if (*end)
		return -1;
	if (v > max / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static void put_uint(void *field, size_t size, uint64_t v)
{
	if (size == sizeof(uint64_t))
		*(uint64_t *)field = v;
	else
		*(uint32_t *)field = (uint32_t)v;
}

/* One key's value into its field of obj. */
static int parse_value(struct pctx *c, yaml_node_t *v, const struct pkey *k, void *obj)
{
	char *field = (char *)obj + k->off;
	const char *s = pol_scalar(v);
	unsigned u;
	uint64_t b;
	int64_t d;
	int i;

	switch (k->type) {
	case PK_STR:
		if (!s || ((k->flags & PK_NONEMPTY) && !*s) ||
		    ((k->flags & PK_ABSPATH) && s[0] != '/') || strlen(s) >= k->size)
			break;
		snprintf(field, k->size, "%s", s);
		return 0;
	case PK_LIST:
		return pol_list(c, v, k->name, (struct policy_list *)field, k->flags & PK_FOLD);
	case PK_BOOL:
		return parse_bool(c, v, k->name, (int *)field);
	case PK_UINT:
		if (!s || pol_decimal(s, (unsigned)k->max, &u) || u < k->min)
			break;
		put_uint(field, k->size, u);
		return 0;
	case PK_BYTES:
		if (!s || parse_bytes(s, k->max, &b) || b < k->min)
			break;
		put_uint(field, k->size, b);
		return 0;
	case PK_DURATION:
		if (!s || parse_duration(s, &d) || ((k->flags & PK_NONZERO) && !d))
			break;
		*(int64_t *)field = d;
		return 0;
	case PK_ENUM:
		if (!s || (i = pol_key_index(s, k->names)) < 0)
			break;
		*(int *)field = k->values ? k->values[i] : i;
		return 0;
	case PK_SECTION:
		return pol_section(c, v, k->sub, field);
	case PK_FN:
		return k->fn(c, v, obj);
	}
	return fail(c, v, k->msg, k->name, k->size);
}

/* A mapping read by its key table: unknown and repeated keys are refused with their place. */
int pol_section(struct pctx *c, yaml_node_t *n, const struct psection *s, void *obj)
{
	yaml_node_t *seen[PSECTION_MAX_KEYS] = {NULL};
	char q[SHOW_BUF], known[256];
	size_t kn = 0;

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "%s", s->not_mapping);
	if (s->init)
		s->init(obj, n);
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = pol_scalar(k);
		int ki = -1, e;

		if (!key && s->words_only)
			return fail(c, k, "%s keys must be plain words", s->name);
		for (int i = 0; key && i < s->nkeys && ki < 0; i++)
			if (!strcmp(key, s->keys[i].name))
				ki = i;
		if (ki < 0) {
			for (int i = 0; i < s->nkeys; i++)
				kn += (size_t)snprintf(known + kn, sizeof(known) - kn, "%s%s",
						       i ? ", " : "", s->keys[i].name);
			return fail(c, k, "unknown %s key '%s' (known: %s)", s->name,
				    key ? pol_show(key, q) : "?", known);
		}
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (s->scalars && !pol_scalar(v))
			return fail(c, v, "%s.%s must be a single value", s->name, key);
		if ((e = parse_value(c, v, &s->keys[ki], obj)))
			return e;
	}
	return s->done ? s->done(c, n, obj, seen) : 0;
}

int pol_seq(struct pctx *c, yaml_node_t *v, const struct pseq *s, void *array, int *n)
{
	char q[SHOW_BUF];
	int r;

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "%s", s->not_list);
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		yaml_node_t *in = yaml_document_get_node(c->doc, *it);
		char *e = (char *)array + (size_t)*n * s->elem;

		if (*n == s->max)
			return fail(c, in, s->too_many, s->max);
		r = pol_section(c, in, s->sub, e);
		if (r)
			return r;
		for (int i = 0; s->used_twice && i < *n; i++) {
			const char *name = (char *)array + (size_t)i * s->elem + s->name_off;

			if (!strcmp(name, e + s->name_off))
				return fail(c, in, s->used_twice, pol_show(name, q));
		}
		(*n)++;
	}
	return 0;
}

/* Every later check reads scalars as C strings, so a "\0" escape would cut one short silently
 * ("5432\0junk" would read as 5432). */
int pol_check_no_nul(struct pctx *c)
{
	for (yaml_node_t *n = c->doc->nodes.start; n < c->doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE &&
		    memchr(n->data.scalar.value, '\0', n->data.scalar.length))
			return fail(c, n, "text must not contain a NUL character (\"\\0\")");
	return 0;
}

/* libyaml gives encoding errors as a byte offset into the input, not a line and column. Count
 * them as its scanner counts marks: from after any BOM, in characters, with CR LF, CR, LF, NEL,
 * LS and PS each ending a line. The bytes before the offset decoded cleanly, so the walk can
 * trust them; the position is that of the character holding the bad byte. */
static void offset_to_mark(const unsigned char *s, size_t n, size_t off, yaml_mark_t *m)
{
	int utf16 = 0, hi = 0; /* hi: which byte of a UTF-16 unit is the high one */
	size_t i = 0;

	if (n >= 2 && s[0] == 0xff && s[1] == 0xfe) {
		utf16 = 1;
		hi = 1;
		i = 2;
	} else if (n >= 2 && s[0] == 0xfe && s[1] == 0xff) {
		utf16 = 1;
		i = 2;
	} else if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
		i = 3;
	}
	memset(m, 0, sizeof(*m));
	if (off > n)
		off = n;
	while (i < off) {
		unsigned ch, w;

		if (utf16) {
			ch = (unsigned)s[i + hi] << 8 | s[i + 1 - hi];
			w = (ch & 0xfc00) == 0xd800 ? 4 : 2; /* a surrogate pair is one character */
		} else {
			ch = s[i];
			w = ch < 0x80 ? 1 : ch < 0xe0 ? 2 : ch < 0xf0 ? 3 : 4;
		}
		if (off - i < w)
			break;
		if (!utf16 && w > 1) {
			ch &= 0xffu >> (w + 1);
			for (unsigned k = 1; k < w; k++)
				ch = ch << 6 | (s[i + k] & 0x3fu);
		}
		i += w;
		if (ch == '\r' && i < off &&
		    (utf16 ? off - i >= 2 && !s[i + hi] && s[i + 1 - hi] == '\n' : s[i] == '\n'))
			i += utf16 ? 2 : 1;
		if (ch == '\r' || ch == '\n' || ch == 0x85 || ch == 0x2028 || ch == 0x2029) {
			m->line++;
			m->column = 0;
		} else {
			m->column++;
		}
	}
}

static int yaml_fail(struct pctx *c, const yaml_parser_t *p)
{
	yaml_mark_t m = p->problem_mark;
	char what[32] = "";

	if (p->error == YAML_MEMORY_ERROR) {
		snprintf(c->err, c->errn, "%s: out of memory", c->path);
		return -ENOMEM;
	}
	if (p->error == YAML_READER_ERROR) {
		offset_to_mark(c->text, c->len, p->problem_offset, &m);
		/* The value: the bad byte for octet errors, else a character or UTF-16 unit. */
		if (p->problem_value >= 0 && p->problem && strstr(p->problem, "octet"))
			snprintf(what, sizeof(what), " (byte 0x%02X)", (unsigned)p->problem_value);
		else if (p->problem_value >= 0)
			snprintf(what, sizeof(what), " (U+%04X)", (unsigned)p->problem_value);
	}
	return pol_fail_at(c, &m, "%s%s%s%s", p->problem ? p->problem : "bad YAML", what,
			   p->context ? " " : "", p->context ? p->context : "");
}

static int file_fail(struct pctx *c, int r, const char *why)
{
	snprintf(c->err, c->errn, "%s: %s", c->path, why);
	return r;
}

/* Reads the whole file into *text. Only a regular file of at most POLICY_MAX_BYTES, checked
 * before anything is allocated (and again while reading, as the file may grow). */
static int read_file(struct pctx *c, unsigned char **text, size_t *len)
{
	unsigned char *buf = NULL, *nb;
	size_t n = 0, cap;
	struct stat st;
	int fd, r = 0;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer before fstat can refuse it. Reads
	 * of a regular file ignore the flag. */
	fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(c->err, c->errn, "%s: cannot open: %s", c->path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st)) {
		r = -errno;
		snprintf(c->err, c->errn, "%s: cannot stat: %s", c->path, strerror(errno));
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		snprintf(c->err, c->errn, "%s: cannot read: %s", c->path, strerror(EISDIR));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(c->err, c->errn, "%s: cannot read: not a regular file (a %s)", c->path,
			 S_ISFIFO(st.st_mode)	? "FIFO"
			 : S_ISSOCK(st.st_mode) ? "socket"
			 : S_ISCHR(st.st_mode)	? "character device"
			 : S_ISBLK(st.st_mode)	? "block device"
						: "special file");
		goto cleanup;
	}
	if (st.st_size > POLICY_MAX_BYTES) {
		r = file_fail(c, -EFBIG, "policy file is larger than 1 MiB; refused");
		goto cleanup;
	}
	/* One byte more than fstat says, so reaching the end needs no second allocation. */
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		r = file_fail(c, -ENOMEM, "out of memory");
		goto cleanup;
	}
	for (;;) {
		ssize_t got;

		if (n == cap) {
			if (cap > POLICY_MAX_BYTES) {
				r = file_fail(c, -EFBIG,
					      "policy file is larger than 1 MiB; refused");
				goto cleanup;
			}
			cap = cap * 2 > POLICY_MAX_BYTES + 1 ? POLICY_MAX_BYTES + 1 : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				r = file_fail(c, -ENOMEM, "out of memory");
				goto cleanup;
			}
			buf = nb;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			snprintf(c->err, c->errn, "%s: cannot read: %s", c->path, strerror(errno));
			goto cleanup;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	*text = buf;
	*len = n;
	buf = NULL;
cleanup:
	free(buf);
	close(fd);
	return r;
}

int pol_read_doc(struct pctx *c, yaml_document_t *doc)
{
	yaml_document_t next;
	int have_doc = 0, have_next = 0;
	unsigned char *text = NULL;
	yaml_parser_t parser;
	size_t len = 0;
	int r;

	r = read_file(c, &text, &len);
	if (r)
		return r;
	c->text = text;
	c->len = len;
	if (!yaml_parser_initialize(&parser)) {
		free(text);
		snprintf(c->err, c->errn, "%s: out of memory", c->path);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, text, len);
	if (!yaml_parser_load(&parser, doc)) {
		r = yaml_fail(c, &parser);
		goto cleanup;
	}
	have_doc = 1;
	/* A second document would be ignored by every reader that takes the first: refuse it. */
	if (yaml_document_get_root_node(doc)) {
		if (!yaml_parser_load(&parser, &next)) {
			r = yaml_fail(c, &parser);
			goto cleanup;
		}
		have_next = 1;
		if (yaml_document_get_root_node(&next))
			r = pol_fail_at(
			    c, &next.start_mark,
			    "a policy file holds one YAML document; a second starts here");
	}
cleanup:
	if (have_next)
		yaml_document_delete(&next);
	if (r && have_doc)
		yaml_document_delete(doc);
	yaml_parser_delete(&parser);
	free(text);
	c->text = NULL;
	c->len = 0;
	return r;
}
