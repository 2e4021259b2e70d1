/* Policy loader: YAML document -> struct policy, strictly checked. */
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct pctx {
	const char *path;
	yaml_document_t *doc;
	char *err;
	size_t errn;
};

static int fail(struct pctx *c, yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct pctx *c, yaml_node_t *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n)
		snprintf(c->err, c->errn, "%s:%zu:%zu: %s", c->path, n->start_mark.line + 1,
			 n->start_mark.column + 1, msg);
	else
		snprintf(c->err, c->errn, "%s: %s", c->path, msg);
	return -EINVAL;
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

static int parse_cidr(const char *s, struct policy_cidr *out)
{
	char buf[64];
	char *slash;
	long len;
	int maxlen;

	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = HOOP_AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = HOOP_AF_INET6;
		maxlen = 128;
	} else {
		return -1;
	}
	len = maxlen;
	if (slash) {
		char *end;

		len = strtol(slash, &end, 10);
		if (*slash == '\0' || *end || len < 0 || len > maxlen)
			return -1;
	}
	out->len = (uint8_t)len;
	/* Clear host bits so the LPM key and policy_match agree. */
	for (int bit = (int)len; bit < 128; bit++)
		out->addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	return 0;
}

static int parse_target(struct pctx *c, yaml_node_t *n, struct policy_target *t)
{
	int have_proto = 0;

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, n, "a target must be a mapping with name, protocol and ports");
	memset(t, 0, sizeof(*t));
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);

		if (!key)
			return fail(c, k, "target keys must be plain words");
		if (!strcmp(key, "name")) {
			if (!scalar(v) || !*scalar(v) || strlen(scalar(v)) >= sizeof(t->name))
				return fail(c, v, "name must be a word of 1 to 63 characters");
			snprintf(t->name, sizeof(t->name), "%s", scalar(v));
		} else if (!strcmp(key, "protocol")) {
			int i;

			for (i = 0; i < 4; i++)
				if (scalar(v) && !strcmp(scalar(v), proto_names[i]))
					break;
			if (i == 4)
				return fail(c, v,
					    "protocol must be one of postgres, mysql, redis, tcp");
			t->protocol = (enum hoop_protocol)i;
			have_proto = 1;
		} else if (!strcmp(key, "ports")) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "ports must be a list, e.g. [5432]");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *pn = yaml_document_get_node(c->doc, *it);
				const char *s = scalar(pn);
				char *end;
				long port;

				if (!s)
					return fail(c, pn, "a port must be a number");
				port = strtol(s, &end, 10);
				if (!*s || *end || port < 1 || port > 65535)
					return fail(c, pn, "port '%s' is not a number from 1 to 65535",
						    s);
				if (t->nports == POLICY_MAX_PORTS)
					return fail(c, pn, "at most %d ports per target",
						    POLICY_MAX_PORTS);
				t->ports[t->nports++] = (uint16_t)port;
			}
		} else if (!strcmp(key, "cidrs")) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "cidrs must be a list, e.g. [10.0.0.0/8, \"::/0\"]");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *cn = yaml_document_get_node(c->doc, *it);

				if (t->ncidrs == POLICY_MAX_CIDRS)
					return fail(c, cn, "at most %d cidrs per target",
						    POLICY_MAX_CIDRS);
				if (!scalar(cn) || parse_cidr(scalar(cn), &t->cidrs[t->ncidrs]))
					return fail(c, cn,
						    "'%s' is not an address or CIDR (like "
						    "10.0.0.0/8 or \"::/0\")",
						    scalar(cn) ? scalar(cn) : "?");
				t->ncidrs++;
			}
		} else {
			return fail(c, k, "unknown target key '%s' (known: name, protocol, ports, cidrs)",
				    key);
		}
	}
	if (!t->name[0])
		return fail(c, n, "target has no name");
	if (!have_proto)
		return fail(c, n, "target '%s' has no protocol", t->name);
	if (!t->nports)
		return fail(c, n, "target '%s' has no ports", t->name);
	if (!t->ncidrs) {
		parse_cidr("0.0.0.0/0", &t->cidrs[0]);
		parse_cidr("::/0", &t->cidrs[1]);
		t->ncidrs = 2;
	}
	return 0;
}

/* Sections later parts of hoop read; accepted here so one policy file serves every version. */
static const char *const later_sections[] = {"rules", "masking", "audit", "approvals",
					     "on_parse_error", "catalog", NULL};

static int parse_doc(struct pctx *c, struct policy *pol)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	int have_version = 0;

	if (!root)
		return fail(c, NULL, "the file is empty");
	if (root->type != YAML_MAPPING_NODE)
		return fail(c, root, "the policy must be a mapping (version:, targets:, ...)");
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
	     p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
		const char *key = scalar(k);
		int r;

		if (!key)
			return fail(c, k, "top-level keys must be plain words");
		if (!strcmp(key, "version")) {
			if (!scalar(v) || strcmp(scalar(v), "1"))
				return fail(c, v, "version must be 1");
			pol->version = 1;
			have_version = 1;
		} else if (!strcmp(key, "targets")) {
			if (v->type != YAML_SEQUENCE_NODE)
				return fail(c, v, "targets must be a list");
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *tn = yaml_document_get_node(c->doc, *it);

				if (pol->ntargets == POLICY_MAX_TARGETS)
					return fail(c, tn, "at most %d targets", POLICY_MAX_TARGETS);
				r = parse_target(c, tn, &pol->targets[pol->ntargets]);
				if (r)
					return r;
				for (int i = 0; i < pol->ntargets; i++)
					if (!strcmp(pol->targets[i].name,
						    pol->targets[pol->ntargets].name))
						return fail(c, tn, "target name '%s' is used twice",
							    pol->targets[i].name);
				pol->ntargets++;
			}
		} else {
			int known = 0;

			for (int i = 0; later_sections[i]; i++)
				known |= !strcmp(key, later_sections[i]);
			if (!known)
				return fail(c, k,
					    "unknown top-level key '%s' (known: version, targets, "
					    "rules, masking, audit, approvals, on_parse_error)",
					    key);
		}
	}
	if (!have_version)
		return fail(c, root, "missing 'version: 1'");
	return 0;
}

int policy_load(const char *path, struct policy **out, char *err, size_t errn)
{
	struct pctx c = {.path = path, .err = err, .errn = errn};
	yaml_parser_t parser;
	yaml_document_t doc;
	struct policy *pol;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
		return r;
	}
	pol = calloc(1, sizeof(*pol));
	if (!pol) {
		fclose(f);
		snprintf(err, errn, "%s: out of memory", path);
		return -ENOMEM;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errn, "%s:%zu:%zu: %s%s%s", path, parser.problem_mark.line + 1,
			 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML",
			 parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		fclose(f);
		free(pol);
		return -EINVAL;
	}
	c.doc = &doc;
	r = parse_doc(&c, pol);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
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
