/* Policy loader: YAML document -> struct policy, strictly checked. Reads one regular file of at
 * most 1 MiB holding one YAML document. */
#include "policy.h"

#include <ctype.h>

#include "sqlfacts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <hs/hs.h>
#include <yaml.h>

/* Larger than any sane policy; refused before the file is read into memory. */
#define POLICY_MAX_BYTES (1024 * 1024)

struct pctx {
	const char *path;
	const unsigned char *text; /* the whole file, for positions libyaml gives as offsets */
	size_t len;
	yaml_document_t *doc;
	char *err;
	size_t errn;
};

static int fail_at(struct pctx *c, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct pctx *c, const yaml_mark_t *m, const char *fmt, ...)
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

#define fail(c, n, ...) fail_at(c, (n) ? &(n)->start_mark : NULL, __VA_ARGS__)

/* Text from the file inside a message: at most SHOW_MAX bytes (cut between characters, then
 * "..."), control bytes as \xNN, so one bad value can neither flood nor split a log line. */
#define SHOW_MAX 64
#define SHOW_BUF (4 * SHOW_MAX + 4)

static const char *show(const char *s, char buf[SHOW_BUF])
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

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *const proto_names[] = {"tcp", "postgres", "mysql", "redis"};

const char *policy_protocol_name(enum hoop_protocol p)
{
	return (unsigned)p < 4 ? proto_names[p] : "?";
}

/* Plain decimal only: no sign, blank or leading zero ("0" itself is fine), at most max. strtol
 * would take "-0", "+8", " 8" and "0008", and a policy should mean what it plainly says. */
static int parse_decimal(const char *s, unsigned max, unsigned *out)
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

/* "ADDR" or "ADDR/LEN". Nothing is cut to fit a buffer: text too long to be an address is
 * refused whole. */
static int parse_cidr(const char *s, struct policy_cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned len, maxlen;

	if (alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = HOOP_AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = HOOP_AF_INET6;
		maxlen = 128;
	} else {
		return -1;
	}
	len = maxlen;
	if (slash && parse_decimal(slash + 1, maxlen, &len))
		return -1;
	out->len = (uint8_t)len;
	/* Clear host bits so the LPM key and policy_match agree. */
	for (unsigned bit = len; bit < 128; bit++)
		out->addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	return 0;
}

/* Index of key in names (NULL-terminated), or -1. */
static int key_index(const char *key, const char *const *names)
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
		return fail(c, k, "duplicate key '%s' (first at %zu:%zu)", show(key, q),
			    (*seen)->start_mark.line + 1, (*seen)->start_mark.column + 1);
	*seen = k;
	return 0;
}

enum { TK_NAME, TK_PROTOCOL, TK_PORTS, TK_CIDRS, TK_UPSTREAM_TLS, TK_CA_FILE, TK_SERVER_NAME,
       TK_COUNT };
static const char *const target_keys[TK_COUNT + 1] = {
    "name", "protocol", "ports", "cidrs", "upstream_tls", "ca_file", "tls_server_name", NULL};
/* The database leg's TLS, in the order of enum upstream_tls (tls.h), like libpq's sslmode. */
static const char *const upstream_tls_names[] = {"disable", "prefer", "require", "verify-ca",
						 "verify-full", NULL};

static int parse_target(struct pctx *c, yaml_node_t *n, struct policy_target *t)
{
	yaml_node_t *seen[TK_COUNT] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "a target must be a mapping with name, protocol and ports");
	memset(t, 0, sizeof(*t));
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki, r;

		if (!key)
			return fail(c, k, "target keys must be plain words");
		ki = key_index(key, target_keys);
		if (ki < 0)
			return fail(c, k,
				    "unknown target key '%s' (known: name, protocol, ports, cidrs, "
				    "upstream_tls, ca_file, tls_server_name)",
				    show(key, q));
		r = check_duplicate(c, k, key, &seen[ki]);
		if (r)
			return r;
		if (ki == TK_NAME) {
			if (!scalar(v) || !*scalar(v) || strlen(scalar(v)) >= sizeof(t->name))
				return fail(c, v, "name must be a word of 1 to 63 characters");
			snprintf(t->name, sizeof(t->name), "%s", scalar(v));
		} else if (ki == TK_PROTOCOL) {
			int i;

			for (i = 0; i < 4; i++)
				if (scalar(v) && !strcmp(scalar(v), proto_names[i]))
					break;
			if (i == 4)
				return fail(c, v,
					    "protocol must be one of postgres, mysql, redis, tcp");
			t->protocol = (enum hoop_protocol)i;
		} else if (ki == TK_UPSTREAM_TLS) {
			int i = scalar(v) ? key_index(scalar(v), upstream_tls_names) : -1;

			if (i < 0)
				return fail(c, v,
					    "upstream_tls must be one of disable, prefer, require, "
					    "verify-ca, verify-full");
			t->upstream_tls = i;
		} else if (ki == TK_CA_FILE || ki == TK_SERVER_NAME) {
			char *dst = ki == TK_CA_FILE ? t->ca_file : t->tls_server_name;
			size_t cap = ki == TK_CA_FILE ? sizeof(t->ca_file) : sizeof(t->tls_server_name);

			if (!scalar(v) || !*scalar(v) || strlen(scalar(v)) >= cap)
				return fail(c, v, "%s must be a non-empty string shorter than %zu bytes",
					    key, cap);
			snprintf(dst, cap, "%s", scalar(v));
		} else if (ki == TK_PORTS) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "ports must be a list, e.g. [5432]");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *pn = yaml_document_get_node(c->doc, *it);
				const char *s = scalar(pn);
				unsigned port;

				if (!s)
					return fail(c, pn, "a port must be a number");
				if (parse_decimal(s, 65535, &port) || !port)
					return fail(
					    c, pn,
					    "port '%s' is not a number from 1 to 65535 (plain "
					    "digits, no sign, blank or leading zero)",
					    show(s, q));
				if (t->nports == POLICY_MAX_PORTS)
					return fail(c, pn, "at most %d ports per target",
						    POLICY_MAX_PORTS);
				t->ports[t->nports++] = (uint16_t)port;
			}
		} else {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v,
					    "cidrs must be a list, e.g. [10.0.0.0/8, \"::/0\"]");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *cn = yaml_document_get_node(c->doc, *it);

				if (t->ncidrs == POLICY_MAX_CIDRS)
					return fail(c, cn, "at most %d cidrs per target",
						    POLICY_MAX_CIDRS);
				if (!scalar(cn))
					return fail(
					    c, cn,
					    "a cidrs item must be a string like \"10.0.0.0/8\" "
					    "or \"::/0\", not a list or mapping");
				if (parse_cidr(scalar(cn), &t->cidrs[t->ncidrs]))
					return fail(c, cn,
						    "'%s' is not an address or CIDR (like "
						    "10.0.0.0/8 or \"::/0\")",
						    show(scalar(cn), q));
				t->ncidrs++;
			}
		}
	}
	if (!t->name[0])
		return fail(c, n, "target has no name");
	if (!seen[TK_PROTOCOL])
		return fail(c, n, "target '%s' has no protocol", show(t->name, q));
	if (!t->nports)
		return fail(c, n, "target '%s' has no ports", show(t->name, q));
	if (!seen[TK_UPSTREAM_TLS])
		t->upstream_tls = 1; /* prefer, as libpq does */
	if (!t->ncidrs) {
		parse_cidr("0.0.0.0/0", &t->cidrs[0]);
		parse_cidr("::/0", &t->cidrs[1]);
		t->ncidrs = 2;
	}
	return 0;
}

/* version and targets, then the sections later parts of hoop read: accepted here so one policy
 * file serves every version. */
enum { TOP_VERSION, TOP_TARGETS, TOP_RULES, TOP_MASKING, TOP_AUDIT, TOP_APPROVALS,
       TOP_ON_PARSE_ERROR, TOP_CATALOG, TOP_DEFAULT, TOP_LIMITS, TOP_COUNT };
static const char *const top_keys[TOP_COUNT + 1] = {
    "version",	 "targets",	   "rules",   "masking", "audit",
    "approvals", "on_parse_error", "catalog", "default", "limits", NULL,
};

static const char *const action_names[] = {"allow", "audit", "approve", "deny", NULL};

const char *policy_action_name(enum policy_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "?";
}

/* A list of words (or one word) into l; lower-cased when fold is set. */
static int parse_list(struct pctx *c, yaml_node_t *v, const char *what, struct policy_list *l,
		      int fold)
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
		const char *s = scalar(n);

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
	const char *s = scalar(v);

	if (s && !strcmp(s, "true"))
		*out = 1;
	else if (s && !strcmp(s, "false"))
		*out = 0;
	else
		return fail(c, v, "%s must be true or false", what);
	return 0;
}

static const char *const match_keys[] = {"statements", "tables",	"tables_written",
					 "schemas",    "functions",	"copy",
					 "without_where", "without_limit", "probes_masked", "writes_masked", NULL};
static const char *const when_keys[] = {"owner", "user", "database", "exe", "labels", NULL};
static const char *const rule_keys[] = {"name", "action", "match", "when", "message", NULL};

static int parse_match(struct pctx *c, yaml_node_t *n, struct policy_rule *r)
{
	yaml_node_t *seen[10] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "match must be a mapping, e.g. {statements: [delete]}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki = key ? key_index(key, match_keys) : -1, e;

		if (ki < 0)
			return fail(c, k,
				    "unknown match key '%s' (known: statements, tables, "
				    "tables_written, schemas, functions, copy, without_where, "
				    "without_limit, probes_masked, writes_masked)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		switch (ki) {
		case 0: {
			struct policy_list l = {0};

			if ((e = parse_list(c, v, "statements", &l, 1)))
				return e;
			for (int i = 0; i < l.n; i++) {
				int kind = sqlfacts_kind_from_name(l.v[i]);

				if (kind < 0)
					return fail(c, v,
						    "unknown statement kind '%s' (see docs/policy.md "
						    "for the list)",
						    show(l.v[i], q));
				r->statements |= 1ULL << kind;
			}
			break;
		}
		case 1:
			e = parse_list(c, v, "tables", &r->tables, 0);
			break;
		case 2:
			e = parse_list(c, v, "tables_written", &r->tables_written, 0);
			break;
		case 3:
			e = parse_list(c, v, "schemas", &r->schemas, 0);
			break;
		case 4:
			e = parse_list(c, v, "functions", &r->functions, 1);
			break;
		case 5: {
			struct policy_list l = {0};

			if ((e = parse_list(c, v, "copy", &l, 1)))
				return e;
			for (int i = 0; i < l.n; i++) {
				if (!strcmp(l.v[i], "program"))
					r->copy |= SQL_COPY_PROGRAM;
				else if (!strcmp(l.v[i], "file"))
					r->copy |= SQL_COPY_FILE;
				else if (!strcmp(l.v[i], "stdin"))
					r->copy |= SQL_COPY_STDIN;
				else if (!strcmp(l.v[i], "stdout"))
					r->copy |= SQL_COPY_STDOUT;
				else
					return fail(c, v,
						    "copy items are program, file, stdin, stdout");
			}
			break;
		}
		case 6:
			e = parse_bool(c, v, "without_where", &r->without_where);
			break;
		case 7:
			e = parse_bool(c, v, "without_limit", &r->without_limit);
			break;
		case 8:
			e = parse_bool(c, v, "probes_masked", &r->probes_masked);
			break;
		case 9:
			e = parse_bool(c, v, "writes_masked", &r->writes_masked);
			break;
		}
		if (e)
			return e;
	}
	return 0;
}

static int parse_when(struct pctx *c, yaml_node_t *n, struct policy_rule *r)
{
	yaml_node_t *seen[5] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "when must be a mapping, e.g. {database: [clinical]}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki = key ? key_index(key, when_keys) : -1, e = 0;

		if (ki < 0)
			return fail(c, k,
				    "unknown when key '%s' (known: owner, user, database, exe, "
				    "labels)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (ki == 0)
			e = parse_list(c, v, "owner", &r->owners, 0);
		else if (ki == 1)
			e = parse_list(c, v, "user", &r->users, 0);
		else if (ki == 2)
			e = parse_list(c, v, "database", &r->databases, 0);
		else if (ki == 3)
			e = parse_list(c, v, "exe", &r->exes, 0);
		else {
			if (v->type != YAML_MAPPING_NODE)
				return fail(c, v, "labels must be a mapping, e.g. {team: ml}");
			for (yaml_node_pair_t *lp = v->data.mapping.pairs.start;
			     lp < v->data.mapping.pairs.top; lp++) {
				yaml_node_t *lk = yaml_document_get_node(c->doc, lp->key);
				yaml_node_t *lv = yaml_document_get_node(c->doc, lp->value);

				if (!scalar(lk) || !scalar(lv) || r->label_keys.n == POLICY_MAX_LIST ||
				    strlen(scalar(lk)) >= POLICY_NAME ||
				    strlen(scalar(lv)) >= POLICY_NAME)
					return fail(c, lk, "labels are short key: value words");
				snprintf(r->label_keys.v[r->label_keys.n++], POLICY_NAME, "%s",
					 scalar(lk));
				snprintf(r->label_values.v[r->label_values.n++], POLICY_NAME, "%s",
					 scalar(lv));
			}
		}
		if (e)
			return e;
	}
	return 0;
}

static const char *const audit_keys[] = {"durability", "checkpoint_every", "segment_bytes",
					 "retention", "stream", NULL};

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

static int parse_audit(struct pctx *c, yaml_node_t *n, struct policy_audit *a)
{
	yaml_node_t *seen[5] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "audit must be a mapping, e.g. {durability: fsync}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k), *val = scalar(v);
		int ki = key ? key_index(key, audit_keys) : -1, e;
		unsigned u;

		if (ki < 0)
			return fail(c, k,
				    "unknown audit key '%s' (known: durability, checkpoint_every, "
				    "segment_bytes, retention, stream)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (!val)
			return fail(c, v, "audit.%s must be a single value", key);
		switch (ki) {
		case 0:
			if (!strcmp(val, "flush"))
				a->durability = 0;
			else if (!strcmp(val, "fsync"))
				a->durability = 1;
			else
				return fail(c, v, "audit.durability must be flush or fsync");
			break;
		case 1:
			if (parse_decimal(val, 10000000, &u) || !u)
				return fail(c, v, "audit.checkpoint_every must be a number from 1");
			a->checkpoint_every = u;
			break;
		case 2:
			if (parse_decimal(val, 4000000000u, &u) || u < 65536)
				return fail(c, v, "audit.segment_bytes must be a number of bytes, at "
						  "least 65536");
			a->segment_bytes = u;
			break;
		case 3:
			if (parse_duration(val, &a->retention_s))
				return fail(c, v,
					    "audit.retention must be a duration like 90d, 12h, 30m, "
					    "or 0 to keep everything");
			break;
		case 4:
			if (!*val || strlen(val) >= sizeof(a->stream))
				return fail(c, v, "audit.stream must be stdout or a file path");
			snprintf(a->stream, sizeof(a->stream), "%s", val);
			break;
		}
	}
	return 0;
}

static const char *const approval_keys[] = {"approvers", "timeout", "notify_command",
					    "max_waiting", NULL};

static int parse_approvals(struct pctx *c, yaml_node_t *n, struct policy_approvals *a)
{
	yaml_node_t *seen[4] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "approvals must be a mapping, e.g. {approvers: [alice], timeout: 5m}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki = key ? key_index(key, approval_keys) : -1, e = 0;

		if (ki < 0)
			return fail(c, k,
				    "unknown approvals key '%s' (known: approvers, timeout, "
				    "notify_command, max_waiting)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (ki == 0) {
			e = parse_list(c, v, "approvers", &a->approvers, 0);
		} else if (ki == 1) {
			if (!scalar(v) || parse_duration(scalar(v), &a->timeout_s) || !a->timeout_s)
				return fail(c, v, "approvals.timeout must be a duration like 5m or 90s");
		} else if (ki == 3) {
			unsigned mw;

			if (!scalar(v) || parse_decimal(scalar(v), 4096, &mw) || !mw)
				return fail(c, v, "approvals.max_waiting must be 1 to 4096");
			a->max_waiting = (int)mw;
		} else {
			if (!scalar(v) || !*scalar(v) || strlen(scalar(v)) >= sizeof(a->notify_command))
				return fail(c, v, "approvals.notify_command must be a shell command");
			snprintf(a->notify_command, sizeof(a->notify_command), "%s", scalar(v));
		}
		if (e)
			return e;
	}
	return 0;
}

/* ---- masking and catalog ---- */

/* The names of enum mask_style and enum mask_detector, in their order (mask.h). */
static const char *const style_names[] = {"redact", "partial", "hash", "null",
					  "format_preserving", NULL};
static const char *const detector_names[] = {"us_ssn", "email", "phone", "credit_card",
					     "mrn", "dob", "ipv4", NULL};

/* "[schema.]table.column", each part a glob of at most 63 bytes, folded to lower case as
 * PostgreSQL folds unquoted names. */
static int parse_mask_match(struct pctx *c, yaml_node_t *v, struct mask_column_rule *mr)
{
	const char *s = scalar(v);
	char parts[3][MASK_NAME];
	int np = 0;

	if (!s || !*s)
		return fail(c, v, "match must be \"table.column\" or \"schema.table.column\" "
				  "(globs allowed, e.g. \"*.email\")");
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (np == 3 || !l || l >= MASK_NAME)
			return fail(c, v, "match must be \"table.column\" or "
					  "\"schema.table.column\", each part 1 to %d characters "
					  "(globs allowed, e.g. \"*.email\")",
				    MASK_NAME - 1);
		for (size_t i = 0; i < l; i++)
			parts[np][i] = (char)tolower((unsigned char)p[i]);
		parts[np][l] = 0;
		np++;
		if (!dot)
			break;
		p = dot + 1;
	}
	if (np < 2)
		return fail(c, v, "match must name a table and a column: \"table.column\" "
				  "(\"*.email\" for every table)");
	memset(mr->schema, 0, sizeof(mr->schema));
	if (np == 3)
		snprintf(mr->schema, sizeof(mr->schema), "%s", parts[0]);
	snprintf(mr->table, sizeof(mr->table), "%s", parts[np - 2]);
	snprintf(mr->column, sizeof(mr->column), "%s", parts[np - 1]);
	return 0;
}

static const char *const mcol_keys[] = {"match",     "style",	"keep_first",
					"keep_last", "free_text", NULL};

static int parse_mask_column(struct pctx *c, yaml_node_t *n, struct mask_column_rule *mr)
{
	yaml_node_t *seen[5] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "a masking column must be a mapping, e.g. "
				  "{match: \"patients.ssn\", style: partial, keep_last: 4}");
	memset(mr, 0, sizeof(*mr));
	mr->line = (int)n->start_mark.line + 1;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki = key ? key_index(key, mcol_keys) : -1, e = 0;
		unsigned u;

		if (ki < 0)
			return fail(c, k, "unknown masking column key '%s' (known: match, style, "
					  "keep_first, keep_last, free_text)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (ki == 0) {
			e = parse_mask_match(c, v, mr);
		} else if (ki == 1) {
			int st = scalar(v) ? key_index(scalar(v), style_names) : -1;

			if (st < 0)
				return fail(c, v, "style must be one of redact, partial, hash, null, "
						  "format_preserving");
			mr->style = (enum mask_style)st;
		} else if (ki == 4) {
			e = parse_bool(c, v, "free_text", &mr->free_text);
		} else {
			if (!scalar(v) || parse_decimal(scalar(v), 64, &u))
				return fail(c, v, "%s must be a number from 0 to 64", key);
			if (ki == 2)
				mr->keep_first = (int)u;
			else
				mr->keep_last = (int)u;
		}
		if (e)
			return e;
	}
	if (!seen[0])
		return fail(c, n, "a masking column needs match: \"table.column\"");
	if (mr->free_text && seen[1])
		return fail(c, seen[1], "a free_text column has no style: its values go through "
					"the detectors, and anything computed from it is redacted");
	if (!seen[1] && !mr->free_text)
		return fail(c, n, "a masking column needs a style (redact, partial, hash, null, "
				  "format_preserving) or free_text: true");
	if ((seen[2] || seen[3]) && mr->style != MASK_PARTIAL)
		return fail(c, seen[2] ? seen[2] : seen[3],
			    "keep_first and keep_last apply to style partial only");
	if (mr->style == MASK_PARTIAL && !seen[2] && !seen[3])
		mr->keep_last = 4;
	return 0;
}

enum { MK_COLUMNS, MK_DETECTORS, MK_MRN, MK_KEY, MK_UNMASKABLE, MK_UNKNOWN, MK_DETSTYLE,
       MK_COUNT };
static const char *const masking_keys[MK_COUNT + 1] = {
    "columns", "detectors", "mrn_pattern", "hmac_key_file", "on_unmaskable", "unknown_style",
    "detector_style", NULL};

static int parse_masking(struct pctx *c, yaml_node_t *n, struct mask_policy *m)
{
	yaml_node_t *seen[MK_COUNT] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "masking must be a mapping, e.g. {columns: [...], detectors: "
				  "[us_ssn, email]}");
	m->enabled = 1;
	m->detectors = (1u << DET_COUNT) - 1;
	m->unknown_style = MASK_REDACT;
	m->detector_style = MASK_PARTIAL;
	m->on_unmaskable = UNMASKABLE_WITHHOLD;
	snprintf(m->mrn_pattern, sizeof(m->mrn_pattern), "MRN-[0-9]{8}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k), *s = scalar(v);
		int ki = key ? key_index(key, masking_keys) : -1, e = 0;

		if (ki < 0)
			return fail(c, k, "unknown masking key '%s' (known: columns, detectors, "
					  "mrn_pattern, hmac_key_file, on_unmaskable, "
					  "unknown_style, detector_style)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		switch (ki) {
		case MK_COLUMNS:
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "masking.columns must be a list of "
						  "{match, style} mappings");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *cn = yaml_document_get_node(c->doc, *it);

				if (m->nrules == MASK_MAX_RULES)
					return fail(c, cn, "at most %d masking columns",
						    MASK_MAX_RULES);
				if ((e = parse_mask_column(c, cn, &m->rules[m->nrules])))
					return e;
				m->nrules++;
			}
			break;
		case MK_DETECTORS: {
			struct policy_list l = {0};

			if ((e = parse_list(c, v, "detectors", &l, 1)))
				return e;
			m->detectors = 0;
			for (int i = 0; i < l.n; i++) {
				int d = key_index(l.v[i], detector_names);

				if (d < 0)
					return fail(c, v, "unknown detector '%s' (known: us_ssn, email, "
							  "phone, credit_card, mrn, dob, ipv4)",
						    show(l.v[i], q));
				m->detectors |= 1u << d;
			}
			break;
		}
		case MK_MRN:
			if (!s || !*s || strlen(s) >= sizeof(m->mrn_pattern))
				return fail(c, v, "mrn_pattern must be a regular expression shorter "
						  "than %zu bytes",
					    sizeof(m->mrn_pattern));
			snprintf(m->mrn_pattern, sizeof(m->mrn_pattern), "%s", s);
			{
				/* The detector compiles it with Hyperscan: refuse here what it
				 * would refuse there, with the place in the file. */
				hs_database_t *db = NULL;
				hs_compile_error_t *ce = NULL;

				if (hs_compile(s, HS_FLAG_SOM_LEFTMOST, HS_MODE_BLOCK, NULL, &db,
					       &ce) != HS_SUCCESS) {
					e = fail(c, v, "mrn_pattern is not a valid pattern: %s",
						 ce && ce->message ? ce->message : "?");
					hs_free_compile_error(ce);
					return e;
				}
				hs_free_database(db);
			}
			break;
		case MK_KEY:
			if (!s || s[0] != '/' || strlen(s) >= sizeof(m->hmac_key_file))
				return fail(c, v, "hmac_key_file must be an absolute path");
			snprintf(m->hmac_key_file, sizeof(m->hmac_key_file), "%s", s);
			break;
		case MK_UNMASKABLE:
			if (s && !strcmp(s, "withhold"))
				m->on_unmaskable = UNMASKABLE_WITHHOLD;
			else if (s && !strcmp(s, "null"))
				m->on_unmaskable = UNMASKABLE_NULL;
			else
				return fail(c, v, "on_unmaskable must be withhold or null");
			break;
		case MK_UNKNOWN:
			if (s && !strcmp(s, "redact"))
				m->unknown_style = MASK_REDACT;
			else if (s && !strcmp(s, "null"))
				m->unknown_style = MASK_NULL;
			else
				return fail(c, v, "unknown_style must be redact or null (a value of "
						  "unknown provenance is never partly shown)");
			break;
		case MK_DETSTYLE: {
			int st = s ? key_index(s, style_names) : -1;

			if (st < 0 || st == MASK_NULL)
				return fail(c, v, "detector_style must be partial, redact, hash or "
						  "format_preserving");
			m->detector_style = (enum mask_style)st;
			break;
		}
		}
	}
	return 0;
}

static const char *const catalog_keys[] = {"user", "password_file", "refresh", NULL};

static int parse_catalog(struct pctx *c, yaml_node_t *n, struct policy_catalog *cat)
{
	yaml_node_t *seen[3] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "catalog must be a mapping, e.g. {user: hoop_catalog, "
				  "password_file: /etc/hoop/catalog.password}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k), *s = scalar(v);
		int ki = key ? key_index(key, catalog_keys) : -1, e;

		if (ki < 0)
			return fail(c, k, "unknown catalog key '%s' (known: user, password_file, "
					  "refresh)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (ki == 0) {
			if (!s || !*s || strlen(s) >= sizeof(cat->user))
				return fail(c, v, "catalog.user must be a database user name");
			snprintf(cat->user, sizeof(cat->user), "%s", s);
		} else if (ki == 1) {
			if (!s || s[0] != '/' || strlen(s) >= sizeof(cat->password_file))
				return fail(c, v, "catalog.password_file must be an absolute path");
			snprintf(cat->password_file, sizeof(cat->password_file), "%s", s);
		} else {
			if (!s || parse_duration(s, &cat->refresh_s) || !cat->refresh_s)
				return fail(c, v, "catalog.refresh must be a duration like 60s or 5m");
		}
	}
	return 0;
}

static const char *const limit_keys[] = {"statement_bytes",	   "statement_tokens",
					 "statement_depth",	   "connections_per_cgroup",
					 "cgroup_buffer_bytes", "buffer_bytes", NULL};

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

static int parse_limits(struct pctx *c, yaml_node_t *n, struct policy_limits *l)
{
	yaml_node_t *seen[6] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "limits must be a mapping, e.g. {statement_bytes: 1MiB}");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k), *val = scalar(v);
		int ki = key ? key_index(key, limit_keys) : -1, e;
		uint64_t b;
		unsigned u;

		if (ki < 0)
			return fail(c, k,
				    "unknown limits key '%s' (known: statement_bytes, "
				    "statement_tokens, statement_depth, connections_per_cgroup, "
				    "cgroup_buffer_bytes, buffer_bytes)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (!val)
			return fail(c, v, "limits.%s must be a single value", key);
		switch (ki) {
		case 0:
			/* At most what the grammar's facts and plans take whole (SQLFACTS_MAX_TEXT):
			 * a larger cap would only turn "over the limit" into "cannot be parsed". */
			if (parse_bytes(val, SQLFACTS_MAX_TEXT, &b) || b < 1024)
				return fail(c, v,
					    "limits.statement_bytes must be a size from 1KiB to "
					    "1MiB, e.g. 512KiB");
			l->statement_bytes = (uint32_t)b;
			break;
		case 1:
			if (parse_decimal(val, 100000000, &u) || u < 64)
				return fail(c, v,
					    "limits.statement_tokens must be a number from 64");
			l->statement_tokens = u;
			break;
		case 2:
			if (parse_decimal(val, 100000, &u) || u < 16)
				return fail(c, v,
					    "limits.statement_depth must be a number from 16 to "
					    "100000");
			l->statement_depth = u;
			break;
		case 3:
			if (parse_decimal(val, 1000000, &u) || !u)
				return fail(c, v,
					    "limits.connections_per_cgroup must be a number from 1");
			l->connections_per_cgroup = u;
			break;
		case 4:
		case 5:
			if (parse_bytes(val, 1ULL << 40, &b) || b < (1 << 20))
				return fail(c, v, "limits.%s must be a size of at least 1MiB, e.g. "
						  "128MiB",
					    key);
			if (ki == 4)
				l->cgroup_buffer_bytes = b;
			else
				l->buffer_bytes = b;
			break;
		}
	}
	return 0;
}

static int parse_rule(struct pctx *c, yaml_node_t *n, struct policy_rule *r)
{
	yaml_node_t *seen[5] = {NULL};
	char q[SHOW_BUF];

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "a rule must be a mapping with name, action and match");
	memset(r, 0, sizeof(*r));
	r->line = (int)n->start_mark.line + 1;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki = key ? key_index(key, rule_keys) : -1, e = 0;

		if (ki < 0)
			return fail(c, k,
				    "unknown rule key '%s' (known: name, action, match, when, "
				    "message)",
				    key ? show(key, q) : "?");
		if ((e = check_duplicate(c, k, key, &seen[ki])))
			return e;
		if (ki == 0) {
			if (!scalar(v) || !*scalar(v) || strlen(scalar(v)) >= sizeof(r->name))
				return fail(c, v, "name must be a word of 1 to 63 characters");
			snprintf(r->name, sizeof(r->name), "%s", scalar(v));
		} else if (ki == 1) {
			int a = scalar(v) ? key_index(scalar(v), action_names) : -1;

			if (a < 0)
				return fail(c, v, "action must be one of deny, approve, allow, audit");
			r->action = (enum policy_action)a;
		} else if (ki == 2) {
			e = parse_match(c, v, r);
		} else if (ki == 3) {
			e = parse_when(c, v, r);
		} else {
			if (!scalar(v) || strlen(scalar(v)) >= sizeof(r->message))
				return fail(c, v, "message must be text shorter than %zu bytes",
					    sizeof(r->message));
			snprintf(r->message, sizeof(r->message), "%s", scalar(v));
		}
		if (e)
			return e;
	}
	if (!r->name[0])
		return fail(c, n, "rule has no name");
	if (!seen[1])
		return fail(c, n, "rule '%s' has no action", show(r->name, q));
	if (!seen[2])
		return fail(c, n, "rule '%s' has no match (use match: {} to match everything)",
			    show(r->name, q));
	return 0;
}

/* Every later check reads scalars as C strings, so a "\0" escape would cut one short silently
 * ("5432\0junk" would read as 5432). */
static int check_no_nul(struct pctx *c)
{
	for (yaml_node_t *n = c->doc->nodes.start; n < c->doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE &&
		    memchr(n->data.scalar.value, '\0', n->data.scalar.length))
			return fail(c, n, "text must not contain a NUL character (\"\\0\")");
	return 0;
}

static int parse_doc(struct pctx *c, struct policy *pol)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	yaml_node_t *seen[TOP_COUNT] = {NULL};
	char q[SHOW_BUF];
	int r;

	if (!root)
		return fail_at(c, NULL, "the file is empty");
	r = check_no_nul(c);
	if (r)
		return r;
	if (root->type != YAML_MAPPING_NODE)
		return fail(c, root, "the policy must be a mapping (version:, targets:, ...)");
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int ki;

		if (!key)
			return fail(c, k, "top-level keys must be plain words");
		ki = key_index(key, top_keys);
		if (ki < 0)
			return fail(c, k,
				    "unknown top-level key '%s' (known: version, targets, rules, "
				    "default, on_parse_error, masking, audit, approvals, catalog, "
				    "limits)",
				    show(key, q));
		r = check_duplicate(c, k, key, &seen[ki]);
		if (r)
			return r;
		if (ki == TOP_VERSION) {
			if (!scalar(v) || strcmp(scalar(v), "1"))
				return fail(c, v, "version must be 1");
			pol->version = 1;
		} else if (ki == TOP_RULES) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "rules must be a list");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *rn = yaml_document_get_node(c->doc, *it);

				if (pol->nrules == POLICY_MAX_RULES)
					return fail(c, rn, "at most %d rules", POLICY_MAX_RULES);
				r = parse_rule(c, rn, &pol->rules[pol->nrules]);
				if (r)
					return r;
				for (int i = 0; i < pol->nrules; i++)
					if (!strcmp(pol->rules[i].name, pol->rules[pol->nrules].name))
						return fail(c, rn, "rule name '%s' is used twice",
							    show(pol->rules[i].name, q));
				pol->nrules++;
			}
		} else if (ki == TOP_APPROVALS) {
			r = parse_approvals(c, v, &pol->approvals);
			if (r)
				return r;
		} else if (ki == TOP_MASKING) {
			r = parse_masking(c, v, &pol->masking);
			if (r)
				return r;
		} else if (ki == TOP_CATALOG) {
			r = parse_catalog(c, v, &pol->catalog);
			if (r)
				return r;
		} else if (ki == TOP_AUDIT) {
			r = parse_audit(c, v, &pol->audit);
			if (r)
				return r;
		} else if (ki == TOP_LIMITS) {
			r = parse_limits(c, v, &pol->limits);
			if (r)
				return r;
		} else if (ki == TOP_ON_PARSE_ERROR) {
			const char *s = scalar(v);

			if (s && !strcmp(s, "deny"))
				pol->on_parse_error = ACTION_DENY;
			else if (s && !strcmp(s, "approve"))
				pol->on_parse_error = ACTION_APPROVE;
			else
				return fail(c, v, "on_parse_error must be deny or approve");
		} else if (ki == TOP_DEFAULT) {
			const char *s = scalar(v);

			if (s && !strcmp(s, "allow"))
				pol->default_action = ACTION_ALLOW;
			else if (s && !strcmp(s, "deny"))
				pol->default_action = ACTION_DENY;
			else if (s && !strcmp(s, "audit"))
				pol->default_action = ACTION_AUDIT;
			else
				return fail(c, v, "default must be allow, audit or deny");
		} else if (ki == TOP_TARGETS) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "targets must be a list");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *tn = yaml_document_get_node(c->doc, *it);

				if (pol->ntargets == POLICY_MAX_TARGETS)
					return fail(c, tn, "at most %d targets",
						    POLICY_MAX_TARGETS);
				r = parse_target(c, tn, &pol->targets[pol->ntargets]);
				if (r)
					return r;
				for (int i = 0; i < pol->ntargets; i++)
					if (!strcmp(pol->targets[i].name,
						    pol->targets[pol->ntargets].name))
						return fail(c, tn, "target name '%s' is used twice",
							    show(pol->targets[i].name, q));
				pol->ntargets++;
			}
		}
	}
	if (!seen[TOP_VERSION])
		return fail(c, root, "missing 'version: 1'");
	if (!seen[TOP_ON_PARSE_ERROR])
		pol->on_parse_error = ACTION_DENY; /* what cannot be parsed is not forwarded */
	if (!pol->approvals.timeout_s)
		pol->approvals.timeout_s = 300;
	if (!pol->approvals.max_waiting)
		pol->approvals.max_waiting = 16;
	if (!pol->catalog.refresh_s)
		pol->catalog.refresh_s = 60;
	if (!pol->limits.statement_bytes)
		pol->limits.statement_bytes = LIMITS_STATEMENT_BYTES;
	if (!pol->limits.statement_tokens)
		pol->limits.statement_tokens = LIMITS_STATEMENT_TOKENS;
	if (!pol->limits.statement_depth)
		pol->limits.statement_depth = LIMITS_STATEMENT_DEPTH;
	if (!pol->limits.connections_per_cgroup)
		pol->limits.connections_per_cgroup = LIMITS_CONNECTIONS_PER_CGROUP;
	if (!pol->limits.cgroup_buffer_bytes)
		pol->limits.cgroup_buffer_bytes = LIMITS_CGROUP_BUFFER_BYTES;
	if (!pol->limits.buffer_bytes)
		pol->limits.buffer_bytes = LIMITS_BUFFER_BYTES;
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
	return fail_at(c, &m, "%s%s%s%s", p->problem ? p->problem : "bad YAML", what,
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

int policy_load(const char *path, struct policy **out, char *err, size_t errn)
{
	struct pctx c = {.path = path, .err = err, .errn = errn};
	yaml_document_t doc, next;
	int have_doc = 0, have_next = 0;
	unsigned char *text = NULL;
	struct policy *pol = NULL;
	yaml_parser_t parser;
	size_t len = 0;
	int r;

	r = read_file(&c, &text, &len);
	if (r)
		return r;
	c.text = text;
	c.len = len;
	pol = calloc(1, sizeof(*pol));
	if (!pol || !yaml_parser_initialize(&parser)) {
		free(pol);
		free(text);
		snprintf(err, errn, "%s: out of memory", path);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = yaml_fail(&c, &parser);
		goto cleanup;
	}
	have_doc = 1;
	c.doc = &doc;
	/* A second document would be ignored by every reader that takes the first: refuse it. */
	if (yaml_document_get_root_node(&doc)) {
		if (!yaml_parser_load(&parser, &next)) {
			r = yaml_fail(&c, &parser);
			goto cleanup;
		}
		have_next = 1;
		if (yaml_document_get_root_node(&next)) {
			r = fail_at(&c, &next.start_mark,
				    "a policy file holds one YAML document; a second starts here");
			goto cleanup;
		}
	}
	r = parse_doc(&c, pol);
cleanup:
	if (have_next)
		yaml_document_delete(&next);
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(text);
	if (r) {
		free(pol);
		return r;
	}
	*out = pol;
	return 0;
}

void policy_free(struct policy *p)
{
	free(p);
}

static int cidr_contains(const struct policy_cidr *c, int family, const uint8_t *addr)
{
	int full = c->len / 8, rem = c->len % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->addr, addr, (size_t)full))
		return 0;
	if (rem && ((c->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rem))))
		return 0;
	return 1;
}

int policy_match(const struct policy *p, int family, const uint8_t *addr, uint16_t port)
{
	for (int i = 0; i < p->ntargets; i++) {
		const struct policy_target *t = &p->targets[i];
		int pm = 0;

		for (int j = 0; j < t->nports; j++)
			pm |= t->ports[j] == port;
		if (!pm)
			continue;
		for (int j = 0; j < t->ncidrs; j++)
			if (cidr_contains(&t->cidrs[j], family, addr))
				return i;
	}
	return -1;
}
