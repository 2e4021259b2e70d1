/* Policy loader: YAML document -> struct policy, strictly checked. What each section of the file
 * may hold is a key table here; reading the file and the tables is policy_yaml.c's. */
#include "policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <hs/hs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"
#include "sqlfacts.h"

static const char *const proto_names[] = {"tcp", "postgres", "mysql", "redis"};

const char *policy_protocol_name(enum hoop_protocol p)
{
	return (unsigned)p < 4 ? proto_names[p] : "?";
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
	if (slash && pol_decimal(slash + 1, maxlen, &len))
		return -1;
	out->len = (uint8_t)len;
	/* Clear host bits so the LPM key and policy_match agree. */
	for (unsigned bit = len; bit < 128; bit++)
		out->addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
	return 0;
}

/* The database leg's TLS, in the order of enum upstream_tls (tls.h), like libpq's sslmode. */
static const char *const upstream_tls_names[] = {"disable",   "prefer",	     "require",
						 "verify-ca", "verify-full", NULL};
static const char *const action_names[] = {"allow", "audit", "approve", "deny", NULL};

const char *policy_action_name(enum policy_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "?";
}

/* The names of enum mask_style and enum mask_detector, in their order (mask.h). */
static const char *const style_names[] = {"redact", "partial",		 "hash",
					  "null",   "format_preserving", NULL};
static const char *const detector_names[] = {"us_ssn", "email", "phone", "credit_card",
					     "mrn",    "dob",	"ipv4",	 NULL};

/* ---- targets ---- */

static int parse_protocol(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct policy_target *t = obj;
	int i;

	for (i = 0; i < 4; i++)
		if (pol_scalar(v) && !strcmp(pol_scalar(v), proto_names[i]))
			break;
	if (i == 4)
		return fail(c, v, "protocol must be one of postgres, mysql, redis, tcp");
	t->protocol = (enum hoop_protocol)i;
	return 0;
}

static int parse_ports(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct policy_target *t = obj;
	char q[SHOW_BUF];

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "ports must be a list, e.g. [5432]");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		yaml_node_t *pn = yaml_document_get_node(c->doc, *it);
		const char *s = pol_scalar(pn);
		unsigned port;

		if (!s)
			return fail(c, pn, "a port must be a number");
		if (pol_decimal(s, 65535, &port) || !port)
			return fail(c, pn,
				    "port '%s' is not a number from 1 to 65535 (plain digits, no "
				    "sign, blank or leading zero)",
				    pol_show(s, q));
		if (t->nports == POLICY_MAX_PORTS)
			return fail(c, pn, "at most %d ports per target", POLICY_MAX_PORTS);
		t->ports[t->nports++] = (uint16_t)port;
	}
	return 0;
}

static int parse_cidrs(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct policy_target *t = obj;
	char q[SHOW_BUF];

	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, v, "cidrs must be a list, e.g. [10.0.0.0/8, \"::/0\"]");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		yaml_node_t *cn = yaml_document_get_node(c->doc, *it);

		if (t->ncidrs == POLICY_MAX_CIDRS)
			return fail(c, cn, "at most %d cidrs per target", POLICY_MAX_CIDRS);
		if (!pol_scalar(cn))
			return fail(
			    c, cn,
			    "a cidrs item must be a string like \"10.0.0.0/8\" or \"::/0\", "
			    "not a list or mapping");
		if (parse_cidr(pol_scalar(cn), &t->cidrs[t->ncidrs]))
			return fail(c, cn,
				    "'%s' is not an address or CIDR (like 10.0.0.0/8 or \"::/0\")",
				    pol_show(pol_scalar(cn), q));
		t->ncidrs++;
	}
	return 0;
}

static const char *const approval_mode_names[] = {"hold", "retry", NULL};

enum {
	TK_NAME,
	TK_PROTOCOL,
	TK_PORTS,
	TK_CIDRS,
	TK_UPSTREAM_TLS,
	TK_CA_FILE,
	TK_SERVER_NAME,
	TK_APPROVAL_MODE
};

#define T struct policy_target
static const struct pkey target_keys[] = {
    [TK_NAME] = KSTR("name", T, name, PK_NONEMPTY, "name must be a word of 1 to 63 characters"),
    [TK_PROTOCOL] = KFN("protocol", parse_protocol),
    [TK_PORTS] = KFN("ports", parse_ports),
    [TK_CIDRS] = KFN("cidrs", parse_cidrs),
    [TK_UPSTREAM_TLS] = KENUM("upstream_tls", T, upstream_tls, upstream_tls_names, NULL,
			      "upstream_tls must be one of disable, prefer, require, verify-ca, "
			      "verify-full"),
    [TK_CA_FILE] = KSTR("ca_file", T, ca_file, PK_NONEMPTY,
			"%s must be a non-empty string shorter than %zu bytes"),
    [TK_SERVER_NAME] = KSTR("tls_server_name", T, tls_server_name, PK_NONEMPTY,
			    "%s must be a non-empty string shorter than %zu bytes"),
    [TK_APPROVAL_MODE] = KENUM("approval_mode", T, approval_retry, approval_mode_names, NULL,
			       "approval_mode must be hold (the statement waits for the approver) "
			       "or retry (refused with its request id; sent again after approval, "
			       "it runs once)"),
};
#undef T

static void target_init(void *obj, const yaml_node_t *n)
{
	memset(obj, 0, sizeof(struct policy_target));
}

static int target_done(struct pctx *c, yaml_node_t *n, void *obj, yaml_node_t *const *seen)
{
	struct policy_target *t = obj;
	char q[SHOW_BUF];

	if (!t->name[0])
		return fail(c, n, "target has no name");
	if (!seen[TK_PROTOCOL])
		return fail(c, n, "target '%s' has no protocol", pol_show(t->name, q));
	if (!t->nports)
		return fail(c, n, "target '%s' has no ports", pol_show(t->name, q));
	if (!seen[TK_UPSTREAM_TLS])
		t->upstream_tls = 1; /* prefer, as libpq does */
	if (!t->ncidrs) {
		parse_cidr("0.0.0.0/0", &t->cidrs[0]);
		parse_cidr("::/0", &t->cidrs[1]);
		t->ncidrs = 2;
	}
	return 0;
}

static const struct psection target_section = {
    .name = "target",
    .not_mapping = "a target must be a mapping with name, protocol and ports",
    .keys = target_keys,
    .nkeys = NKEYS(target_keys),
    .words_only = 1,
    .init = target_init,
    .done = target_done,
};

/* ---- rules ---- */

static int parse_statements(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct policy_rule *r = obj;
	struct policy_list l = {0};
	char q[SHOW_BUF];
	int e;

	if ((e = pol_list(c, v, "statements", &l, 1)))
		return e;
	for (int i = 0; i < l.n; i++) {
		int kind = sqlfacts_kind_from_name(l.v[i]);

		if (kind < 0)
			return fail(c, v,
				    "unknown statement kind '%s' (see docs/policy.md for the list)",
				    pol_show(l.v[i], q));
		r->statements |= 1ULL << kind;
	}
	return 0;
}

static int parse_copy(struct pctx *c, yaml_node_t *v, void *obj)
{
	static const char *const names[] = {"program", "file", "stdin", "stdout", NULL};
	static const int bits[] = {SQL_COPY_PROGRAM, SQL_COPY_FILE, SQL_COPY_STDIN,
				   SQL_COPY_STDOUT};
	struct policy_rule *r = obj;
	struct policy_list l = {0};
	int e;

	if ((e = pol_list(c, v, "copy", &l, 1)))
		return e;
	for (int i = 0; i < l.n; i++) {
		int b = pol_key_index(l.v[i], names);

		if (b < 0)
			return fail(c, v, "copy items are program, file, stdin, stdout");
		r->copy |= bits[b];
	}
	return 0;
}

#define T struct policy_rule
static const struct pkey match_keys[] = {
    KFN("statements", parse_statements),	   KLIST("tables", T, tables, 0),
    KLIST("tables_written", T, tables_written, 0), KLIST("schemas", T, schemas, 0),
    KLIST("functions", T, functions, PK_FOLD),	   KFN("copy", parse_copy),
    KBOOL("without_where", T, without_where),	   KBOOL("without_limit", T, without_limit),
    KBOOL("probes_masked", T, probes_masked),	   KBOOL("writes_masked", T, writes_masked),
};

static const struct psection match_section = {
    .name = "match",
    .not_mapping = "match must be a mapping, e.g. {statements: [delete]}",
    .keys = match_keys,
    .nkeys = NKEYS(match_keys),
};

static int parse_labels(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct policy_rule *r = obj;

	if (v->type != YAML_MAPPING_NODE)
		return fail(c, v, "labels must be a mapping, e.g. {team: ml}");
	for (yaml_node_pair_t *lp = v->data.mapping.pairs.start; lp < v->data.mapping.pairs.top;
	     lp++) {
		yaml_node_t *lk = yaml_document_get_node(c->doc, lp->key);
		yaml_node_t *lv = yaml_document_get_node(c->doc, lp->value);

		if (!pol_scalar(lk) || !pol_scalar(lv) || r->label_keys.n == POLICY_MAX_LIST ||
		    strlen(pol_scalar(lk)) >= POLICY_NAME || strlen(pol_scalar(lv)) >= POLICY_NAME)
			return fail(c, lk, "labels are short key: value words");
		snprintf(r->label_keys.v[r->label_keys.n++], POLICY_NAME, "%s", pol_scalar(lk));
		snprintf(r->label_values.v[r->label_values.n++], POLICY_NAME, "%s", pol_scalar(lv));
	}
	return 0;
}

/* clang-format off */
static const struct pkey when_keys[] = {
    KLIST("owner", T, owners, 0),
    KLIST("user", T, users, 0),
    KLIST("database", T, databases, 0),
    KLIST("exe", T, exes, 0),
    KFN("labels", parse_labels),
};
/* clang-format on */

static const struct psection when_section = {
    .name = "when",
    .not_mapping = "when must be a mapping, e.g. {database: [clinical]}",
    .keys = when_keys,
    .nkeys = NKEYS(when_keys),
};

enum { RK_NAME, RK_ACTION, RK_MATCH, RK_WHEN, RK_MESSAGE };

static const struct pkey rule_keys[] = {
    [RK_NAME] = KSTR("name", T, name, PK_NONEMPTY, "name must be a word of 1 to 63 characters"),
    [RK_ACTION] = KENUM("action", T, action, action_names, NULL,
			"action must be one of deny, approve, allow, audit"),
    [RK_MATCH] = KSAME("match", &match_section),
    [RK_WHEN] = KSAME("when", &when_section),
    [RK_MESSAGE] = KSTR("message", T, message, 0, "%s must be text shorter than %zu bytes"),
};
#undef T

static void rule_init(void *obj, const yaml_node_t *n)
{
	struct policy_rule *r = obj;

	memset(r, 0, sizeof(*r));
	r->line = (int)n->start_mark.line + 1;
}

static int rule_done(struct pctx *c, yaml_node_t *n, void *obj, yaml_node_t *const *seen)
{
	struct policy_rule *r = obj;
	char q[SHOW_BUF];

	if (!r->name[0])
		return fail(c, n, "rule has no name");
	if (!seen[RK_ACTION])
		return fail(c, n, "rule '%s' has no action", pol_show(r->name, q));
	if (!seen[RK_MATCH])
		return fail(c, n, "rule '%s' has no match (use match: {} to match everything)",
			    pol_show(r->name, q));
	return 0;
}

static const struct psection rule_section = {
    .name = "rule",
    .not_mapping = "a rule must be a mapping with name, action and match",
    .keys = rule_keys,
    .nkeys = NKEYS(rule_keys),
    .init = rule_init,
    .done = rule_done,
};

/* ---- audit, approvals, catalog, limits ---- */

static const char *const durability_names[] = {"flush", "fsync", NULL};

#define T struct policy_audit
static const struct pkey audit_keys[] = {
    KENUM("durability", T, durability, durability_names, NULL,
	  "audit.durability must be flush or fsync"),
    KUINT("checkpoint_every", T, checkpoint_every, 1, 10000000,
	  "audit.checkpoint_every must be a number from 1"),
    KUINT("segment_bytes", T, segment_bytes, 65536, 4000000000u,
	  "audit.segment_bytes must be a number of bytes, at least 65536"),
    KDUR("retention", T, retention_s, 0,
	 "audit.retention must be a duration like 90d, 12h, 30m, or 0 to keep everything"),
    KSTR("stream", T, stream, PK_NONEMPTY, "audit.stream must be stdout or a file path"),
};
#undef T

static const struct psection audit_section = {
    .name = "audit",
    .not_mapping = "audit must be a mapping, e.g. {durability: fsync}",
    .keys = audit_keys,
    .nkeys = NKEYS(audit_keys),
    .scalars = 1,
};

#define T struct policy_approvals
static const struct pkey approval_keys[] = {
    KLIST("approvers", T, approvers, 0),
    KDUR("timeout", T, timeout_s, PK_NONZERO,
	 "approvals.timeout must be a duration like 5m or 90s"),
    KSTR("notify_command", T, notify_command, PK_NONEMPTY,
	 "approvals.notify_command must be a shell command"),
    KUINT("max_waiting", T, max_waiting, 1, 4096, "approvals.max_waiting must be 1 to 4096"),
};
#undef T

static const struct psection approvals_section = {
    .name = "approvals",
    .not_mapping = "approvals must be a mapping, e.g. {approvers: [alice], timeout: 5m}",
    .keys = approval_keys,
    .nkeys = NKEYS(approval_keys),
};

#define T struct policy_catalog
static const struct pkey catalog_keys[] = {
    KSTR("user", T, user, PK_NONEMPTY, "catalog.user must be a database user name"),
    KSTR("password_file", T, password_file, PK_ABSPATH,
	 "catalog.password_file must be an absolute path"),
    KDUR("refresh", T, refresh_s, PK_NONZERO, "catalog.refresh must be a duration like 60s or 5m"),
};
#undef T

static const struct psection catalog_section = {
    .name = "catalog",
    .not_mapping = "catalog must be a mapping, e.g. {user: hoop_catalog, password_file: "
		   "/etc/hoop/catalog.password}",
    .keys = catalog_keys,
    .nkeys = NKEYS(catalog_keys),
};

#define T struct policy_limits
static const struct pkey limit_keys[] = {
    /* At most what the grammar's facts and plans take whole (SQLFACTS_MAX_TEXT): a larger cap
     * would only turn "over the limit" into "cannot be parsed". */
    KBYTES("statement_bytes", T, statement_bytes, 1024, SQLFACTS_MAX_TEXT,
	   "limits.statement_bytes must be a size from 1KiB to 1MiB, e.g. 512KiB"),
    KUINT("statement_tokens", T, statement_tokens, 64, 100000000,
	  "limits.statement_tokens must be a number from 64"),
    KUINT("statement_depth", T, statement_depth, 16, 100000,
	  "limits.statement_depth must be a number from 16 to 100000"),
    KUINT("connections_per_cgroup", T, connections_per_cgroup, 1, 1000000,
	  "limits.connections_per_cgroup must be a number from 1"),
    KBYTES("cgroup_buffer_bytes", T, cgroup_buffer_bytes, 1 << 20, 1ULL << 40,
	   "limits.%s must be a size of at least 1MiB, e.g. 128MiB"),
    KBYTES("buffer_bytes", T, buffer_bytes, 1 << 20, 1ULL << 40,
	   "limits.%s must be a size of at least 1MiB, e.g. 128MiB"),
};
#undef T

static const struct psection limits_section = {
    .name = "limits",
    .not_mapping = "limits must be a mapping, e.g. {statement_bytes: 1MiB}",
    .keys = limit_keys,
    .nkeys = NKEYS(limit_keys),
    .scalars = 1,
};

/* ---- masking ---- */

/* "[schema.]table.column", each part a glob of at most 63 bytes, folded to lower case as
 * PostgreSQL folds unquoted names. */
static int parse_mask_match(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct mask_column_rule *mr = obj;
	const char *s = pol_scalar(v);
	char parts[3][MASK_NAME];
	int np = 0;

	if (!s || !*s)
		return fail(c, v,
			    "match must be \"table.column\" or \"schema.table.column\" "
			    "(globs allowed, e.g. \"*.email\")");
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (np == 3 || !l || l >= MASK_NAME)
			return fail(c, v,
				    "match must be \"table.column\" or "
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
		return fail(c, v,
			    "match must name a table and a column: \"table.column\" "
			    "(\"*.email\" for every table)");
	memset(mr->schema, 0, sizeof(mr->schema));
	if (np == 3)
		snprintf(mr->schema, sizeof(mr->schema), "%s", parts[0]);
	snprintf(mr->table, sizeof(mr->table), "%s", parts[np - 2]);
	snprintf(mr->column, sizeof(mr->column), "%s", parts[np - 1]);
	return 0;
}

enum { MC_MATCH, MC_STYLE, MC_KEEP_FIRST, MC_KEEP_LAST, MC_FREE_TEXT };

#define T struct mask_column_rule
static const struct pkey mcol_keys[] = {
    [MC_MATCH] = KFN("match", parse_mask_match),
    [MC_STYLE] = KENUM("style", T, style, style_names, NULL,
		       "style must be one of redact, partial, hash, null, format_preserving"),
    [MC_KEEP_FIRST] = KUINT("keep_first", T, keep_first, 0, 64, "%s must be a number from 0 to 64"),
    [MC_KEEP_LAST] = KUINT("keep_last", T, keep_last, 0, 64, "%s must be a number from 0 to 64"),
    [MC_FREE_TEXT] = KBOOL("free_text", T, free_text),
};
#undef T

static void mcol_init(void *obj, const yaml_node_t *n)
{
	struct mask_column_rule *mr = obj;

	memset(mr, 0, sizeof(*mr));
	mr->line = (int)n->start_mark.line + 1;
}

static int mcol_done(struct pctx *c, yaml_node_t *n, void *obj, yaml_node_t *const *seen)
{
	struct mask_column_rule *mr = obj;

	if (!seen[MC_MATCH])
		return fail(c, n, "a masking column needs match: \"table.column\"");
	if (mr->free_text && seen[MC_STYLE])
		return fail(c, seen[MC_STYLE],
			    "a free_text column has no style: its values go through the detectors, "
			    "and anything computed from it is redacted");
	if (!seen[MC_STYLE] && !mr->free_text)
		return fail(c, n,
			    "a masking column needs a style (redact, partial, hash, null, "
			    "format_preserving) or free_text: true");
	if ((seen[MC_KEEP_FIRST] || seen[MC_KEEP_LAST]) && mr->style != MASK_PARTIAL)
		return fail(c, seen[MC_KEEP_FIRST] ? seen[MC_KEEP_FIRST] : seen[MC_KEEP_LAST],
			    "keep_first and keep_last apply to style partial only");
	if (mr->style == MASK_PARTIAL && !seen[MC_KEEP_FIRST] && !seen[MC_KEEP_LAST])
		mr->keep_last = 4;
	return 0;
}

static const struct psection mcol_section = {
    .name = "masking column",
    .not_mapping = "a masking column must be a mapping, e.g. {match: \"patients.ssn\", style: "
		   "partial, keep_last: 4}",
    .keys = mcol_keys,
    .nkeys = NKEYS(mcol_keys),
    .init = mcol_init,
    .done = mcol_done,
};

static int parse_mask_columns(struct pctx *c, yaml_node_t *v, void *obj)
{
	static const struct pseq seq = {
	    .not_list = "masking.columns must be a list of {match, style} mappings",
	    .sub = &mcol_section,
	    .elem = sizeof(struct mask_column_rule),
	    .max = MASK_MAX_RULES,
	    .too_many = "at most %d masking columns",
	};
	struct mask_policy *m = obj;

	return pol_seq(c, v, &seq, m->rules, &m->nrules);
}

static int parse_detectors(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct mask_policy *m = obj;
	struct policy_list l = {0};
	char q[SHOW_BUF];
	int e;

	if ((e = pol_list(c, v, "detectors", &l, 1)))
		return e;
	m->detectors = 0;
	for (int i = 0; i < l.n; i++) {
		int d = pol_key_index(l.v[i], detector_names);

		if (d < 0)
			return fail(c, v,
				    "unknown detector '%s' (known: us_ssn, email, phone, "
				    "credit_card, mrn, dob, ipv4)",
				    pol_show(l.v[i], q));
		m->detectors |= 1u << d;
	}
	return 0;
}

static int parse_mrn_pattern(struct pctx *c, yaml_node_t *v, void *obj)
{
	struct mask_policy *m = obj;
	const char *s = pol_scalar(v);
	hs_database_t *db = NULL;
	hs_compile_error_t *ce = NULL;
	int e;

	if (!s || !*s || strlen(s) >= sizeof(m->mrn_pattern))
		return fail(c, v, "mrn_pattern must be a regular expression shorter than %zu bytes",
			    sizeof(m->mrn_pattern));
	snprintf(m->mrn_pattern, sizeof(m->mrn_pattern), "%s", s);
	/* The detector compiles it with Hyperscan: refuse here what it would refuse there, with
	 * the place in the file. */
	if (hs_compile(s, HS_FLAG_SOM_LEFTMOST, HS_MODE_BLOCK, NULL, &db, &ce) != HS_SUCCESS) {
		e = fail(c, v, "mrn_pattern is not a valid pattern: %s",
			 ce && ce->message ? ce->message : "?");
		hs_free_compile_error(ce);
		return e;
	}
	hs_free_database(db);
	return 0;
}

static const char *const unmaskable_names[] = {"withhold", "null", NULL};
static const int unmaskable_values[] = {UNMASKABLE_WITHHOLD, UNMASKABLE_NULL};
static const char *const unknown_style_names[] = {"redact", "null", NULL};
static const int unknown_style_values[] = {MASK_REDACT, MASK_NULL};
/* any style but null: a detector's match is inside a value that stays */
static const char *const detector_style_names[] = {"redact", "partial", "hash", "format_preserving",
						   NULL};
static const int detector_style_values[] = {MASK_REDACT, MASK_PARTIAL, MASK_HASH,
					    MASK_FORMAT_PRESERVING};

#define T struct mask_policy
static const struct pkey masking_keys[] = {
    KFN("columns", parse_mask_columns),
    KFN("detectors", parse_detectors),
    KFN("mrn_pattern", parse_mrn_pattern),
    KSTR("hmac_key_file", T, hmac_key_file, PK_ABSPATH, "hmac_key_file must be an absolute path"),
    KENUM("on_unmaskable", T, on_unmaskable, unmaskable_names, unmaskable_values,
	  "on_unmaskable must be withhold or null"),
    KENUM("unknown_style", T, unknown_style, unknown_style_names, unknown_style_values,
	  "unknown_style must be redact or null (a value of unknown provenance is never partly "
	  "shown)"),
    KENUM("detector_style", T, detector_style, detector_style_names, detector_style_values,
	  "detector_style must be partial, redact, hash or format_preserving"),
};
#undef T

static void masking_init(void *obj, const yaml_node_t *n)
{
	struct mask_policy *m = obj;

	m->enabled = 1;
	m->detectors = (1u << DET_COUNT) - 1;
	m->unknown_style = MASK_REDACT;
	m->detector_style = MASK_PARTIAL;
	m->on_unmaskable = UNMASKABLE_WITHHOLD;
	snprintf(m->mrn_pattern, sizeof(m->mrn_pattern), "MRN-[0-9]{8}");
}

static const struct psection masking_section = {
    .name = "masking",
    .not_mapping = "masking must be a mapping, e.g. {columns: [...], detectors: [us_ssn, email]}",
    .keys = masking_keys,
    .nkeys = NKEYS(masking_keys),
    .init = masking_init,
};

/* ---- the document ---- */

static int parse_targets(struct pctx *c, yaml_node_t *v, void *obj)
{
	static const struct pseq seq = {
	    .not_list = "targets must be a list",
	    .sub = &target_section,
	    .elem = sizeof(struct policy_target),
	    .max = POLICY_MAX_TARGETS,
	    .too_many = "at most %d targets",
	    .name_off = offsetof(struct policy_target, name),
	    .used_twice = "target name '%s' is used twice",
	};
	struct policy *pol = obj;

	return pol_seq(c, v, &seq, pol->targets, &pol->ntargets);
}

static int parse_rules(struct pctx *c, yaml_node_t *v, void *obj)
{
	static const struct pseq seq = {
	    .not_list = "rules must be a list",
	    .sub = &rule_section,
	    .elem = sizeof(struct policy_rule),
	    .max = POLICY_MAX_RULES,
	    .too_many = "at most %d rules",
	    .name_off = offsetof(struct policy_rule, name),
	    .used_twice = "rule name '%s' is used twice",
	};
	struct policy *pol = obj;

	return pol_seq(c, v, &seq, pol->rules, &pol->nrules);
}

static const char *const version_names[] = {"1", NULL};
static const int version_values[] = {1};
static const char *const on_parse_error_names[] = {"deny", "approve", NULL};
static const int on_parse_error_values[] = {ACTION_DENY, ACTION_APPROVE};
static const char *const default_names[] = {"allow", "deny", "audit", NULL};
static const int default_values[] = {ACTION_ALLOW, ACTION_DENY, ACTION_AUDIT};

/* version and targets, then the sections later parts of hoop read: accepted here so one policy
 * file serves every version. */
enum {
	TOP_VERSION,
	TOP_TARGETS,
	TOP_RULES,
	TOP_DEFAULT,
	TOP_ON_PARSE_ERROR,
	TOP_MASKING,
	TOP_AUDIT,
	TOP_APPROVALS,
	TOP_CATALOG,
	TOP_LIMITS
};

#define T struct policy
static const struct pkey top_keys[] = {
    [TOP_VERSION] =
	KENUM("version", T, version, version_names, version_values, "version must be 1"),
    [TOP_TARGETS] = KFN("targets", parse_targets),
    [TOP_RULES] = KFN("rules", parse_rules),
    [TOP_DEFAULT] = KENUM("default", T, default_action, default_names, default_values,
			  "default must be allow, audit or deny"),
    [TOP_ON_PARSE_ERROR] = KENUM("on_parse_error", T, on_parse_error, on_parse_error_names,
				 on_parse_error_values, "on_parse_error must be deny or approve"),
    [TOP_MASKING] = KSUB("masking", T, masking, &masking_section),
    [TOP_AUDIT] = KSUB("audit", T, audit, &audit_section),
    [TOP_APPROVALS] = KSUB("approvals", T, approvals, &approvals_section),
    [TOP_CATALOG] = KSUB("catalog", T, catalog, &catalog_section),
    [TOP_LIMITS] = KSUB("limits", T, limits, &limits_section),
};
#undef T

/* Defaults for what the file leaves out. */
static int top_done(struct pctx *c, yaml_node_t *root, void *obj, yaml_node_t *const *seen)
{
	struct policy *pol = obj;

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

static const struct psection top_section = {
    .name = "top-level",
    .not_mapping = "the policy must be a mapping (version:, targets:, ...)",
    .keys = top_keys,
    .nkeys = NKEYS(top_keys),
    .words_only = 1,
    .done = top_done,
};

static int parse_doc(struct pctx *c, struct policy *pol)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	int r;

	if (!root)
		return pol_fail_at(c, NULL, "the file is empty");
	r = pol_check_no_nul(c);
	if (r)
		return r;
	return pol_section(c, root, &top_section, pol);
}

int policy_load(const char *path, struct policy **out, char *err, size_t errn)
{
	struct pctx c = {.path = path, .err = err, .errn = errn};
	yaml_document_t doc;
	struct policy *pol;
	int r;

	r = pol_read_doc(&c, &doc);
	if (r)
		return r;
	pol = calloc(1, sizeof(*pol));
	if (!pol) {
		yaml_document_delete(&doc);
		snprintf(err, errn, "%s: out of memory", path);
		return -ENOMEM;
	}
	c.doc = &doc;
	r = parse_doc(&c, pol);
	yaml_document_delete(&doc);
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
