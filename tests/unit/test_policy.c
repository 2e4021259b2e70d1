/* Unit tests for the policy loader, policy_match, policy_protocol_name and the JSON writer.
 *
 * Usage: test_policy CASES_DIR (tests/unit/policy). Every CASES_DIR/ok-NAME.yaml must load and
 * every CASES_DIR/bad-NAME.yaml must be refused; each has a NAME.expect beside it, one directive
 * a line ('#' starts a comment line):
 *
 *   ok-*.expect   version N
 *                 target NAME PROTOCOL PORT[,PORT...] NCIDRS   one per target, in file order
 *                 cidr ADDR/LEN       the target's CIDRs after loading, in order (all or none)
 *                 match ADDR PORT NAME|none                    what policy_match returns
 *                 limit KEY VALUE     a limits: value after loading (defaults filled in)
 *   bad-*.expect  LINE:COL: TEXT      the error is "FILE:LINE:COL: ..." and contains TEXT
 *                 -: TEXT             the error is "FILE: ..." (no position) and contains TEXT
 *   both          known-bug WHY       a reported, unfixed bug: failures are shown, not counted
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"
#include "json.h"
#include "policy.h"

#define MAX_EXPECT_LINES 256

struct expect {
	char *lines[MAX_EXPECT_LINES];
	int lineno[MAX_EXPECT_LINES]; /* line in the file, for failure messages */
	int n;
	const char *known_bug;
};

static void expect_free(struct expect *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->lines[i]);
	e->n = 0;
}

/* Reads the directives of one .expect file, without comments and blank lines. */
static int expect_read(const char *path, struct expect *e)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0;
	FILE *f;

	memset(e, 0, sizeof(*e));
	f = fopen(path, "re");
	if (!f) {
		unit_fail(__FILE__, __LINE__, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		if (e->n == MAX_EXPECT_LINES) {
			unit_fail(__FILE__, __LINE__, "%s: more than %d directives", path,
				  MAX_EXPECT_LINES);
			break;
		}
		e->lineno[e->n] = lineno;
		e->lines[e->n] = strdup(line);
		if (!strncmp(line, "known-bug ", 10))
			e->known_bug = e->lines[e->n] + 10;
		e->n++;
	}
	free(line);
	fclose(f);
	if (!e->n) {
		unit_fail(__FILE__, __LINE__, "%s has no directives", path);
		return -1;
	}
	return 0;
}

/* Parses an IPv4 or IPv6 address into policy_match's (family, 16 bytes) form. */
static int parse_addr(const char *s, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = HOOP_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = HOOP_AF_INET6;
		return 0;
	}
	return -1;
}

static const char *cidr_str(const struct policy_cidr *c, char *buf, size_t n)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->family == HOOP_AF_INET ? AF_INET : AF_INET6, c->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "family-%u", c->family);
	snprintf(buf, n, "%s/%u", a, c->len);
	return buf;
}

static const char *ports_str(const struct policy_target *t, char *buf, size_t n)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < t->nports && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%u", i ? "," : "", t->ports[i]);
	return buf;
}

static void check_ok_case(const char *yaml, const char *expect_path, const struct expect *e)
{
	struct policy *pol = NULL;
	char err[1024] = "";
	int r, ti = -1, ci = 0;

	r = policy_load(yaml, &pol, err, sizeof(err));
	if (r) {
		unit_fail(__FILE__, __LINE__, "policy_load returned %d: %s", r, err);
		return;
	}
	for (int i = 0; i < e->n; i++) {
		const char *line = e->lines[i];
		char name[128], proto[32], ports[512], addr[128], buf[512];
		int n, ncidrs;

		unit_where("%s:%d", expect_path, e->lineno[i]);
		if (sscanf(line, "version %d", &n) == 1) {
			CHECK_EQ_INT(pol->version, n);
		} else if (sscanf(line, "target %127s %31s %511s %d", name, proto, ports,
				  &ncidrs) == 4) {
			const struct policy_target *t;

			if (ti >= 0 && ci)
				CHECK_EQ_INT(ci, pol->targets[ti].ncidrs);
			ti++;
			ci = 0;
			if (ti >= pol->ntargets) {
				unit_fail(__FILE__, __LINE__,
					  "expected target '%s', loaded only %d", name,
					  pol->ntargets);
				continue;
			}
			t = &pol->targets[ti];
			CHECK_STREQ(t->name, name);
			CHECK_STREQ(policy_protocol_name(t->protocol), proto);
			CHECK_STREQ(ports_str(t, buf, sizeof(buf)), ports);
			CHECK_EQ_INT(t->ncidrs, ncidrs);
		} else if (sscanf(line, "cidr %127s", addr) == 1) {
			if (ti < 0 || ti >= pol->ntargets || ci >= pol->targets[ti].ncidrs) {
				unit_fail(__FILE__, __LINE__, "no loaded CIDR left for '%s'", addr);
				continue;
			}
			CHECK_STREQ(cidr_str(&pol->targets[ti].cidrs[ci++], buf, sizeof(buf)),
				    addr);
		} else if (sscanf(line, "match %127s %d %127s", addr, &n, name) == 3) {
			uint8_t a[16];
			int family, m;

			if (parse_addr(addr, &family, a)) {
				unit_fail(__FILE__, __LINE__, "bad address '%s' in match", addr);
				continue;
			}
			m = policy_match(pol, family, a, (uint16_t)n);
			CHECK_STREQ(m < 0 ? "none" : pol->targets[m].name, name);
		} else if (sscanf(line, "limit %127s %511s", name, buf) == 2) {
			const struct policy_limits *l = &pol->limits;
			unsigned long long got = 0;

			if (!strcmp(name, "statement_bytes"))
				got = l->statement_bytes;
			else if (!strcmp(name, "statement_tokens"))
				got = l->statement_tokens;
			else if (!strcmp(name, "statement_depth"))
				got = l->statement_depth;
			else if (!strcmp(name, "connections_per_cgroup"))
				got = l->connections_per_cgroup;
			else if (!strcmp(name, "cgroup_buffer_bytes"))
				got = l->cgroup_buffer_bytes;
			else if (!strcmp(name, "buffer_bytes"))
				got = l->buffer_bytes;
			else
				unit_fail(__FILE__, __LINE__, "unknown limit '%s'", name);

			CHECK_EQ_INT(got, strtoull(buf, NULL, 10));
		} else if (strncmp(line, "known-bug ", 10)) {
			unit_fail(__FILE__, __LINE__, "unknown directive '%s'", line);
		}
	}
	unit_where("%s", expect_path);
	if (ti >= 0 && ti < pol->ntargets && ci)
		CHECK_EQ_INT(ci, pol->targets[ti].ncidrs);
	/* Every loaded target must be described, so a dropped or extra target fails. */
	CHECK_EQ_INT(ti + 1, pol->ntargets);
	policy_free(pol);
}

static void check_bad_case(const char *yaml, const char *expect_path, const struct expect *e)
{
	struct policy *pol = NULL;
	char err[1024] = "", want[1200];
	const char *line = NULL, *text;
	int r, lineno = 0;

	for (int i = 0; i < e->n && !line; i++)
		if (strncmp(e->lines[i], "known-bug ", 10)) {
			line = e->lines[i];
			lineno = e->lineno[i];
		}
	unit_where("%s:%d", expect_path, lineno);
	text = line ? strstr(line, ": ") : NULL;
	if (!text || !text[2]) {
		unit_fail(__FILE__, __LINE__, "want one 'LINE:COL: TEXT' or '-: TEXT' line");
		return;
	}
	text += 2;
	if (!strncmp(line, "-: ", 3))
		snprintf(want, sizeof(want), "%s: ", yaml);
	else
		snprintf(want, sizeof(want), "%s:%.*s: ", yaml, (int)(text - 2 - line), line);

	r = policy_load(yaml, &pol, err, sizeof(err));
	CHECK_EQ_INT(r, -EINVAL);
	CHECK(pol == NULL);
	if (strncmp(err, want, strlen(want)) || !strstr(err + strlen(want), text))
		unit_fail(__FILE__, __LINE__, "error \"%s\", want \"%s...%s...\"", err, want, text);
	if (!r)
		policy_free(pol);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static int yaml_or_expect(const struct dirent *d)
{
	return ends_with(d->d_name, ".yaml") || ends_with(d->d_name, ".expect");
}

static void run_policy_cases(const char *dir)
{
	struct dirent **ents;
	int n, nok = 0, nbad = 0;

	unit_begin("policy case directory");
	n = scandir(dir, &ents, yaml_or_expect, alphasort);
	if (n < 0) {
		unit_fail(__FILE__, __LINE__, "cannot list %s: %s", dir, strerror(errno));
		unit_end();
		return;
	}
	/* Each .yaml needs its .expect and the other way round. */
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		int yaml = ends_with(name, ".yaml");
		int stem = (int)(strlen(name) - (yaml ? 5 : 7));
		char other[4096];

		snprintf(other, sizeof(other), "%s/%.*s%s", dir, stem, name,
			 yaml ? ".expect" : ".yaml");
		if (access(other, R_OK))
			unit_fail(__FILE__, __LINE__, "%s/%s: no %s beside it", dir, name, other);
		if (ends_with(name, ".yaml") && strncmp(name, "ok-", 3) && strncmp(name, "bad-", 4))
			unit_fail(__FILE__, __LINE__, "%s/%s: case names start with ok- or bad-",
				  dir, name);
		nok += ends_with(name, ".yaml") && !strncmp(name, "ok-", 3);
		nbad += ends_with(name, ".yaml") && !strncmp(name, "bad-", 4);
	}
	if (!nok || !nbad)
		unit_fail(__FILE__, __LINE__, "%s holds %d ok and %d bad cases; want both", dir,
			  nok, nbad);
	unit_end();

	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		char yaml[4096], expect_path[4096];
		struct expect e;

		if (!ends_with(name, ".yaml"))
			continue;
		snprintf(yaml, sizeof(yaml), "%s/%s", dir, name);
		snprintf(expect_path, sizeof(expect_path), "%s/%.*s.expect", dir,
			 (int)(strlen(name) - 5), name);
		unit_begin(name);
		if (!expect_read(expect_path, &e)) {
			if (e.known_bug)
				unit_known_bug(e.known_bug);
			if (!strncmp(name, "ok-", 3))
				check_ok_case(yaml, expect_path, &e);
			else if (!strncmp(name, "bad-", 4))
				check_bad_case(yaml, expect_path, &e);
		}
		unit_end(); /* before expect_free: the known-bug text lives in e */
		expect_free(&e);
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
}

static void test_policy_load_missing_file(void)
{
	const char *path = "/nonexistent/hoop-policy.yaml";
	struct policy *pol = NULL;
	char err[512] = "";

	CHECK_EQ_INT(policy_load(path, &pol, err, sizeof(err)), -ENOENT);
	CHECK(pol == NULL);
	CHECK(!strncmp(err, path, strlen(path)));
	CHECK(strstr(err, strerror(ENOENT)) != NULL);
}

/* A temporary directory for the file-type and size tests, removed with its files at the end. */
static char tmp_dir[256];

static const char *tmp_path(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", tmp_dir, name);
	return buf;
}

static int tmp_setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/hoop-unit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp_dir)) {
		unit_fail(__FILE__, __LINE__, "mkdtemp %s: %s", tmp_dir, strerror(errno));
		tmp_dir[0] = '\0';
		return -1;
	}
	return 0;
}

static void tmp_cleanup(void)
{
	const char *names[] = {"fifo", "max.yaml", "big.yaml"};
	char p[512];

	if (!tmp_dir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tmp_path(names[i], p, sizeof(p)));
	rmdir(tmp_dir);
}

/* A refusal of the file as a whole: "PATH: ..." with want in it, no line:col, no policy. */
static void check_file_refused(const char *path, int want_r, const char *want)
{
	struct policy *pol = NULL;
	char err[1024] = "", q[1024];
	int r;

	r = policy_load(path, &pol, err, sizeof(err));
	CHECK_EQ_INT(r, want_r);
	CHECK(pol == NULL);
	if (strncmp(err, path, strlen(path)) || strncmp(err + strlen(path), ": ", 2) ||
	    !strstr(err, want))
		unit_fail(__FILE__, __LINE__, "error \"%s\", want \"%s: ...%s...\"",
			  unit_quote(err, q, sizeof(q)), path, want);
	if (!r)
		policy_free(pol);
}

static const char *cases_dir;

static void test_policy_load_directory(void)
{
	check_file_refused(cases_dir, -EISDIR, strerror(EISDIR));
}

/* A FIFO must be refused at once, not block waiting for a writer; the alarm turns a hang into a
 * failed run. */
static void test_policy_load_special_files(void)
{
	char p[512];

	check_file_refused("/dev/null", -EINVAL, "not a regular file (a character device)");
	if (!tmp_dir[0])
		return;
	if (mkfifo(tmp_path("fifo", p, sizeof(p)), 0600)) {
		unit_fail(__FILE__, __LINE__, "mkfifo %s: %s", p, strerror(errno));
		return;
	}
	alarm(10);
	check_file_refused(p, -EINVAL, "not a regular file (a FIFO)");
	alarm(0);
}

/* Writes a valid policy padded with one comment line to exactly size bytes. */
static int write_policy_of_size(const char *path, size_t size)
{
	static const char head[] = "version: 1\ntargets: [{name: pg, protocol: postgres, ports: "
				   "[5432]}]\n#";
	char *buf = malloc(size);
	FILE *f;
	int r = 0;

	if (!buf || size < sizeof(head)) {
		free(buf);
		return -1;
	}
	memcpy(buf, head, sizeof(head) - 1);
	memset(buf + sizeof(head) - 1, 'x', size - sizeof(head));
	buf[size - 1] = '\n';
	f = fopen(path, "we");
	if (!f || fwrite(buf, 1, size, f) != size)
		r = -1;
	if (f && fclose(f))
		r = -1;
	free(buf);
	return r;
}

static void test_policy_load_size_cap(void)
{
	struct policy *pol = NULL;
	char p[512], err[1024] = "";

	if (!tmp_dir[0])
		return;
	/* 1 MiB exactly is allowed... */
	if (write_policy_of_size(tmp_path("max.yaml", p, sizeof(p)), 1 << 20)) {
		unit_fail(__FILE__, __LINE__, "cannot write %s: %s", p, strerror(errno));
		return;
	}
	CHECK_EQ_INT(policy_load(p, &pol, err, sizeof(err)), 0);
	if (pol) {
		CHECK_EQ_INT(pol->ntargets, 1);
		policy_free(pol);
	} else {
		unit_fail(__FILE__, __LINE__, "1 MiB policy refused: %s", err);
	}
	/* ...one byte more is refused before parsing. */
	if (write_policy_of_size(tmp_path("big.yaml", p, sizeof(p)), (1 << 20) + 1)) {
		unit_fail(__FILE__, __LINE__, "cannot write %s: %s", p, strerror(errno));
		return;
	}
	check_file_refused(p, -EFBIG, "policy file is larger than 1 MiB");
}

static void test_policy_protocol_name(void)
{
	CHECK_STREQ(policy_protocol_name(HOOP_PROTO_TCP), "tcp");
	CHECK_STREQ(policy_protocol_name(HOOP_PROTO_POSTGRES), "postgres");
	CHECK_STREQ(policy_protocol_name(HOOP_PROTO_MYSQL), "mysql");
	CHECK_STREQ(policy_protocol_name(HOOP_PROTO_REDIS), "redis");
	CHECK_STREQ(policy_protocol_name((enum hoop_protocol)4), "?");
	CHECK_STREQ(policy_protocol_name((enum hoop_protocol)255), "?");
}

/* policy_match on hand-built policies, independent of the loader. */

static struct policy_target *add_target(struct policy *p, const char *name, uint16_t port)
{
	struct policy_target *t = &p->targets[p->ntargets++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->protocol = HOOP_PROTO_POSTGRES;
	t->ports[t->nports++] = port;
	return t;
}

/* CIDRs are given in canonical form (host bits clear), as the loader stores them. */
static void add_cidr(struct policy_target *t, const char *addr, int len)
{
	struct policy_cidr *c = &t->cidrs[t->ncidrs++];
	int family;

	memset(c, 0, sizeof(*c));
	CHECK_EQ_INT(parse_addr(addr, &family, c->addr), 0);
	c->family = (uint8_t)family;
	c->len = (uint8_t)len;
}

static int match(const struct policy *p, const char *addr, uint16_t port)
{
	uint8_t a[16];
	int family;

	CHECK_EQ_INT(parse_addr(addr, &family, a), 0);
	return policy_match(p, family, a, port);
}

static struct policy *new_policy(void)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p) {
		perror("calloc");
		exit(2);
	}
	p->version = 1;
	return p;
}

static void test_match_ipv4(void)
{
	struct policy *p = new_policy();

	add_cidr(add_target(p, "ten", 5432), "10.0.0.0", 8);
	add_cidr(add_target(p, "odd", 5432), "172.16.0.0", 12);
	add_cidr(add_target(p, "one", 5432), "192.0.2.7", 32);
	CHECK_EQ_INT(match(p, "10.0.0.0", 5432), 0);
	CHECK_EQ_INT(match(p, "10.255.255.255", 5432), 0);
	CHECK_EQ_INT(match(p, "9.255.255.255", 5432), -1);
	CHECK_EQ_INT(match(p, "11.0.0.0", 5432), -1);
	/* /12 does not end on a byte: the partial byte decides. */
	CHECK_EQ_INT(match(p, "172.16.0.1", 5432), 1);
	CHECK_EQ_INT(match(p, "172.31.255.255", 5432), 1);
	CHECK_EQ_INT(match(p, "172.32.0.0", 5432), -1);
	CHECK_EQ_INT(match(p, "172.15.255.255", 5432), -1);
	CHECK_EQ_INT(match(p, "192.0.2.7", 5432), 2);
	CHECK_EQ_INT(match(p, "192.0.2.6", 5432), -1);
	CHECK_EQ_INT(match(p, "192.0.2.8", 5432), -1);
	free(p);
}

static void test_match_ipv4_any(void)
{
	struct policy *p = new_policy();

	add_cidr(add_target(p, "all", 6379), "0.0.0.0", 0);
	CHECK_EQ_INT(match(p, "0.0.0.0", 6379), 0);
	CHECK_EQ_INT(match(p, "255.255.255.255", 6379), 0);
	CHECK_EQ_INT(match(p, "::", 6379), -1);
	free(p);
}

static void test_match_ipv6(void)
{
	struct policy *p = new_policy();

	add_cidr(add_target(p, "doc", 5432), "2001:db8::", 32);
	add_cidr(add_target(p, "odd", 5432), "fd00::80", 121);
	add_cidr(add_target(p, "host", 5432), "fe80::1", 128);
	CHECK_EQ_INT(match(p, "2001:db8::1", 5432), 0);
	CHECK_EQ_INT(match(p, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 5432), 0);
	CHECK_EQ_INT(match(p, "2001:db9::", 5432), -1);
	CHECK_EQ_INT(match(p, "2001:db7:ffff::", 5432), -1);
	CHECK_EQ_INT(match(p, "fd00::80", 5432), 1);
	CHECK_EQ_INT(match(p, "fd00::ff", 5432), 1);
	CHECK_EQ_INT(match(p, "fd00::7f", 5432), -1);
	CHECK_EQ_INT(match(p, "fd00::100", 5432), -1);
	CHECK_EQ_INT(match(p, "fe80::1", 5432), 2);
	CHECK_EQ_INT(match(p, "fe80::2", 5432), -1);
	free(p);
}

static void test_match_port(void)
{
	struct policy *p = new_policy();
	struct policy_target *t = add_target(p, "pg", 5432);

	t->ports[t->nports++] = 5433;
	add_cidr(t, "10.0.0.0", 8);
	add_cidr(t, "2001:db8::", 32);
	CHECK_EQ_INT(match(p, "10.1.1.1", 5432), 0);
	CHECK_EQ_INT(match(p, "10.1.1.1", 5433), 0);
	CHECK_EQ_INT(match(p, "2001:db8::1", 5433), 0);
	CHECK_EQ_INT(match(p, "10.1.1.1", 5434), -1);
	CHECK_EQ_INT(match(p, "2001:db8::1", 3306), -1);
	/* Ports are host order: the byte-swapped port must not match. */
	CHECK_EQ_INT(match(p, "10.1.1.1", htons(5432)), -1);
	free(p);
}

static void test_match_family(void)
{
	struct policy *p = new_policy();
	uint8_t a[16];
	int family;

	add_cidr(add_target(p, "v4", 5432), "10.0.0.0", 8);
	add_cidr(add_target(p, "v6", 3306), "a00::", 8);
	/* Same leading bytes (0x0a), other family: no match either way. */
	CHECK_EQ_INT(parse_addr("a00::1", &family, a), 0);
	CHECK_EQ_INT(policy_match(p, HOOP_AF_INET6, a, 5432), -1);
	CHECK_EQ_INT(policy_match(p, HOOP_AF_INET6, a, 3306), 1);
	CHECK_EQ_INT(parse_addr("10.0.0.1", &family, a), 0);
	CHECK_EQ_INT(policy_match(p, HOOP_AF_INET, a, 3306), -1);
	CHECK_EQ_INT(policy_match(p, HOOP_AF_INET, a, 5432), 0);
	free(p);
}

static void test_match_first_target_wins(void)
{
	struct policy *p = new_policy();

	add_cidr(add_target(p, "narrow", 5432), "10.1.0.0", 16);
	add_cidr(add_target(p, "wide", 5432), "10.0.0.0", 8);
	CHECK_EQ_INT(match(p, "10.1.2.3", 5432), 0);
	CHECK_EQ_INT(match(p, "10.2.2.3", 5432), 1);
	p->ntargets = 0;
	CHECK_EQ_INT(match(p, "10.1.2.3", 5432), -1);
	free(p);
}

/* JSON writer. Output is also parsed back with json-c, so validity is checked by a real reader. */

static void check_json_parses(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	if (!o)
		unit_fail(__FILE__, __LINE__, "json-c cannot parse %s", s);
	json_object_put(o);
}

static void test_json_empty(void)
{
	struct jbuf j;

	jb_init(&j);
	CHECK_STREQ(jb_str(&j), "{}");
	jb_free(&j);
	CHECK_STREQ(jb_str(&j), "{}");
}

static void test_json_escapes(void)
{
	struct jbuf j;

	jb_init(&j);
	jb_arr_open(&j);
	jb_str_val(&j, "say \"hi\"");
	jb_str_val(&j, "C:\\dir\\");
	jb_str_val(&j, "a\nb\rc\td");
	/* Hex digits without letters here: test_json_control_bytes covers the case question. */
	jb_str_val(&j, "\x01\b\x10\x19\x7f");
	jb_str_val(&j, "");
	jb_str_val(&j, NULL);
	jb_arr_close(&j);
	CHECK_STREQ(jb_str(&j), "[\"say \\\"hi\\\"\",\"C:\\\\dir\\\\\",\"a\\nb\\rc\\td\","
				"\"\\u0001\\u0008\\u0010\\u0019\x7f\",\"\",null]");
	check_json_parses(jb_str(&j));
	jb_free(&j);
}

/* Every control byte comes out as \n, \r, \t or \u00XX (either hex case is valid JSON). */
static void test_json_control_bytes(void)
{
	for (int c = 1; c < 0x20; c++) {
		char in[2] = {(char)c, 0}, hex[3], q[64];
		const char *got, *want = NULL;
		struct jbuf j;

		jb_init(&j);
		jb_str_val(&j, in);
		got = jb_str(&j);
		if (c == '\n')
			want = "\"\\n\"";
		else if (c == '\r')
			want = "\"\\r\"";
		else if (c == '\t')
			want = "\"\\t\"";
		if (want) {
			CHECK_STREQ(got, want);
		} else {
			snprintf(hex, sizeof(hex), "%02x", c);
			if (strlen(got) != 8 || strncmp(got, "\"\\u00", 5) ||
			    strncasecmp(got + 5, hex, 2) || got[7] != '"')
				unit_fail(__FILE__, __LINE__,
					  "byte 0x%02x: got %s, want \"\\u00%s\"", c,
					  unit_quote(got, q, sizeof(q)), hex);
		}
		jb_free(&j);
	}
}

/* Any string of bytes 1..0x7f, and UTF-8 text, reads back identical through json-c. */
static void test_json_roundtrip(void)
{
	char all[128], q[1024];
	const char *cases[] = {all, "h\xc3\xa9llo \xe2\x9c\x93", "\"\\\"\\\\\"", "</script>"};

	for (int c = 1; c < 128; c++)
		all[c - 1] = (char)c;
	all[127] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *o, *v;
		struct jbuf j;

		jb_init(&j);
		jb_obj_open(&j);
		jb_kv_str(&j, cases[i], cases[i]);
		jb_obj_close(&j);
		o = json_tokener_parse(jb_str(&j));
		if (!o) {
			unit_fail(__FILE__, __LINE__, "case %zu: json-c cannot parse %s", i,
				  unit_quote(jb_str(&j), q, sizeof(q)));
		} else if (!json_object_object_get_ex(o, cases[i], &v)) {
			unit_fail(__FILE__, __LINE__, "case %zu: key did not read back", i);
		} else {
			CHECK_STREQ(json_object_get_string(v), cases[i]);
		}
		json_object_put(o);
		jb_free(&j);
	}
}

static void test_json_nested(void)
{
	struct jbuf j;

	jb_init(&j);
	jb_obj_open(&j);
	jb_kv_str(&j, "a", "x");
	jb_key(&j, "list");
	jb_arr_open(&j);
	jb_int_val(&j, 1);
	jb_int_val(&j, -2);
	jb_obj_open(&j);
	jb_kv_bool(&j, "t", 1);
	jb_kv_bool(&j, "f", 0);
	jb_obj_close(&j);
	jb_arr_open(&j);
	jb_arr_close(&j);
	jb_obj_open(&j);
	jb_obj_close(&j);
	jb_raw(&j, "3.5");
	jb_arr_close(&j);
	jb_kv_uint(&j, "u", UINT64_MAX);
	jb_kv_int(&j, "i", INT64_MIN);
	jb_key(&j, "o");
	jb_obj_open(&j);
	jb_key(&j, "deep");
	jb_arr_open(&j);
	jb_arr_open(&j);
	jb_str_val(&j, "z");
	jb_arr_close(&j);
	jb_arr_close(&j);
	jb_obj_close(&j);
	jb_kv_str(&j, "k\"ey", NULL);
	jb_obj_close(&j);
	CHECK_STREQ(jb_str(&j), "{\"a\":\"x\",\"list\":[1,-2,{\"t\":true,\"f\":false},[],{},3.5],"
				"\"u\":18446744073709551615,\"i\":-9223372036854775808,"
				"\"o\":{\"deep\":[[\"z\"]]},\"k\\\"ey\":null}");
	check_json_parses(jb_str(&j));
	jb_free(&j);
}

/* Output larger than the first allocation: nothing lost at the growth points. */
static void test_json_growth(void)
{
	static char big[20000];
	struct json_object *o;
	struct jbuf j;

	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = "ab\"\\\n"[i % 5];
	big[sizeof(big) - 1] = '\0';
	jb_init(&j);
	jb_str_val(&j, big);
	/* 3999 groups "ab\"\\\n" of 8 bytes escaped, then "ab\"\\" (6), then 2 quotes. */
	CHECK_EQ_INT(strlen(jb_str(&j)), 3999 * 8 + 6 + 2);
	CHECK_EQ_INT(j.oom, 0);
	o = json_tokener_parse(jb_str(&j));
	CHECK(o != NULL);
	if (o)
		CHECK_STREQ(json_object_get_string(o), big);
	json_object_put(o);
	jb_free(&j);
	/* A freed buffer is empty and usable again. */
	jb_kv_int(&j, "n", 7);
	CHECK_STREQ(jb_str(&j), "\"n\":7");
	jb_free(&j);
}

/* Bytes that are not UTF-8 become U+FFFD, one per maximal ill-formed subsequence; valid UTF-8
 * passes unchanged. */
static void test_json_invalid_utf8(void)
{
#define R "\xef\xbf\xbd"
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"caf\xe9", "caf" R},	   /* Latin-1 e-acute */
	    {"\xe9t\xe9 x", R "t" R " x"}, /* Latin-1 inside text */
	    {"ok \xe2\x9c", "ok " R},	   /* truncated 3-byte sequence at the end */
	    {"\xf0\x9f\x98", R},	   /* truncated 4-byte sequence at the end */
	    {"\xe2\x9c!", R "!"},	   /* truncated before ASCII */
	    {"\xc0\xaf", R R},		   /* overlong '/' */
	    {"\xc0\x80", R R},		   /* overlong NUL */
	    {"\xe0\x80\xaf", R R R},	   /* overlong '/' in 3 bytes */
	    {"\xf0\x80\x80\xaf", R R R R}, /* overlong '/' in 4 bytes */
	    {"\xed\xa0\x80", R R R},	   /* surrogate U+D800 */
	    {"\xed\xbf\xbf", R R R},	   /* surrogate U+DFFF */
	    {"\xf4\x90\x80\x80", R R R R}, /* U+110000 */
	    {"\xf5\x80\x80\x80", R R R R}, /* lead byte never valid */
	    {"\x80", R},		   /* lone continuation byte */
	    {"\xbf\x80", R R},		   /* two of them */
	    {"\xfe\xff", R R},		   /* byte order mark of UTF-16 */
	    {"a\xe2\x9c\x93\xe9\"", "a\xe2\x9c\x93" R "\\\""},
	    /* valid at the edges of each range */
	    {"\xc2\x80\xdf\xbf", "\xc2\x80\xdf\xbf"},
	    {"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf",
	     "\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"},
	    {"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"},
	    {R, R},
	};
#undef R
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[128];
		struct jbuf j;

		unit_where("case %zu", i);
		jb_init(&j);
		jb_str_val(&j, cases[i].in);
		snprintf(want, sizeof(want), "\"%s\"", cases[i].out);
		CHECK_STREQ(jb_str(&j), want);
		check_json_parses(jb_str(&j));
		jb_free(&j);
	}
}

/* Reference UTF-8 check, written apart from json.c's: decode, then refuse overlong forms,
 * surrogates and values above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], len, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, min = 0x80, c &= 0x1f;
		else if ((c & 0xf0) == 0xe0)
			len = 3, min = 0x800, c &= 0x0f;
		else if ((c & 0xf8) == 0xf0)
			len = 4, min = 0x10000, c &= 0x07;
		else
			return 0;
		if (n - i < len)
			return 0;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* The output is valid UTF-8 that json-c reads; valid input reads back unchanged, invalid input
 * shows U+FFFD. */
static void check_utf8_case(const unsigned char *in, size_t n, int *fails)
{
	char s[8], qi[64], qo[64];
	struct json_object *o;
	const char *out;
	struct jbuf j;

	memcpy(s, in, n);
	s[n] = '\0';
	jb_init(&j);
	jb_str_val(&j, s);
	out = jb_str(&j);
	o = json_tokener_parse(out);
	if (!utf8_valid((const unsigned char *)out, strlen(out)) || !o ||
	    (utf8_valid(in, n) && strcmp(json_object_get_string(o), s)) ||
	    (!utf8_valid(in, n) && !strstr(out, "\xef\xbf\xbd"))) {
		if ((*fails)++ < 10)
			unit_fail(__FILE__, __LINE__, "input %s: output %s",
				  unit_quote(s, qi, sizeof(qi)), unit_quote(out, qo, sizeof(qo)));
	}
	json_object_put(o);
	jb_free(&j);
}

/* Every 1- and 2-byte string, and 3- and 4-byte strings from every 3- and 4-byte lead byte with
 * second bytes of every value and later bytes at the edges of the continuation ranges. */
static void test_json_utf8_sweep(void)
{
	static const unsigned char tails[] = {0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0};
	unsigned char in[4];
	int fails = 0;

	for (unsigned a = 1; a < 256; a++) {
		in[0] = (unsigned char)a;
		check_utf8_case(in, 1, &fails);
		for (unsigned b = 1; b < 256; b++) {
			in[1] = (unsigned char)b;
			check_utf8_case(in, 2, &fails);
			for (size_t c = 0; a >= 0xe0 && c < sizeof(tails); c++) {
				in[2] = tails[c];
				check_utf8_case(in, 3, &fails);
				for (size_t d = 0; a >= 0xf0 && d < sizeof(tails); d++) {
					in[3] = tails[d];
					check_utf8_case(in, 4, &fails);
				}
			}
		}
	}
	if (fails)
		unit_fail(__FILE__, __LINE__, "%d inputs failed", fails);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s POLICY_CASES_DIR\n", argv[0]);
		return 2;
	}
	cases_dir = argv[1];
	run_policy_cases(argv[1]);
	unit_begin("temporary directory");
	tmp_setup();
	unit_end();
	UNIT_RUN(test_policy_load_missing_file);
	UNIT_RUN(test_policy_load_directory);
	UNIT_RUN(test_policy_load_special_files);
	UNIT_RUN(test_policy_load_size_cap);
	UNIT_RUN(test_policy_protocol_name);
	UNIT_RUN(test_match_ipv4);
	UNIT_RUN(test_match_ipv4_any);
	UNIT_RUN(test_match_ipv6);
	UNIT_RUN(test_match_port);
	UNIT_RUN(test_match_family);
	UNIT_RUN(test_match_first_target_wins);
	UNIT_RUN(test_json_empty);
	UNIT_RUN(test_json_escapes);
	UNIT_RUN(test_json_control_bytes);
	UNIT_RUN(test_json_roundtrip);
	UNIT_RUN(test_json_nested);
	UNIT_RUN(test_json_growth);
	UNIT_RUN(test_json_invalid_utf8);
	UNIT_RUN(test_json_utf8_sweep);
	tmp_cleanup();
	return unit_report();
}
