/*
 * Unit tests of the session records (user/hoopd/audit/record.c) over a real audit trail
 * (user/hoopd/audit/audit_store.c) with small segments: the identity records carry comes from the session's
 * const identity, and "who" is said in each session's first statement record of every segment
 * and in no other, over many sessions that start and end in any order (events.c keeps that set
 * itself, not in the sessions).
 *
 * Usage: test_events STATE_DIR   (the trail is written there and read back)
 */
#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "audit_store.h"
#include "record.h"
#include "harness.h"
#include "session.h"

#define NSESS 97 /* sessions alive at once */

static char g_dir[512]; /* this test's trail */

static struct session *sess_new(unsigned n)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		abort();
	snprintf(s->id, sizeof(s->id), "s%012x", n);
	snprintf(s->peer, sizeof(s->peer), "127.0.0.1:%u", 40000 + n % 20000);
	snprintf(s->owner, sizeof(s->owner), "owner-%u@example.org", n);
	snprintf(s->user, sizeof(s->user), "user%u", n);
	snprintf(s->database, sizeof(s->database), "db%u", n % 7);
	snprintf(s->target, sizeof(s->target), "pg");
	snprintf(s->protocol_name, sizeof(s->protocol_name), "postgres");
	s->o.tgid = 1000 + n;
	return s;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every record of the trail in order, each with its segment's number, to fn. */
static void each_record(const char *dir, void (*fn)(unsigned seg, struct json_object *o, void *),
			void *arg)
{
	char path[1024], line[8192];
	struct dirent **ents;
	int n;

	snprintf(path, sizeof(path), "%s/audit", dir);
	n = scandir(path, &ents, NULL, by_name);
	CHECK(n > 0);
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++) {
		unsigned seg;
		gzFile f;

		if (sscanf(ents[i]->d_name, "seg-%8u.jsonl", &seg) != 1) {
			free(ents[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/audit/%s", dir, ents[i]->d_name);
		f = gzopen(path, "rb"); /* plain or compressed */
		CHECK(f != NULL);
		while (f && gzgets(f, line, sizeof(line))) {
			struct json_object *o = json_tokener_parse(line);

			CHECK(o != NULL);
			if (o)
				fn(seg, o, arg);
			json_object_put(o);
		}
		if (f)
			gzclose(f);
		free(ents[i]);
	}
	free(ents);
}

struct who_check {
	char seen[4096][32]; /* "segment/session" of statement records seen */
	int nseen, statements, whos, segments;
	unsigned last_seg;
};

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void check_who(unsigned seg, struct json_object *o, void *arg)
{
	struct who_check *c = arg;
	struct json_object *who;
	const char *kind = str(o, "kind"), *id = str(o, "session");
	char key[32];
	int first = 1;

	if (seg != c->last_seg) {
		c->last_seg = seg;
		c->segments++;
		c->nseen = 0; /* a new segment: every session says who again */
	}
	if (!kind || strcmp(kind, "statement"))
		return;
	c->statements++;
	snprintf(key, sizeof(key), "%u/%s", seg, id);
	for (int i = 0; i < c->nseen && first; i++)
		first = strcmp(c->seen[i], key) != 0;
	if (first && c->nseen < 4096)
		snprintf(c->seen[c->nseen++], sizeof(c->seen[0]), "%s", key);
	unit_where("segment %u, session %s, statement %s", seg, id, str(o, "stmt"));
	CHECK_EQ_INT(json_object_object_get_ex(o, "who", &who), first);
	if (first && who) {
		unsigned n = (unsigned)strtoul(id + 1, NULL, 16);
		char want[32];

		c->whos++;
		snprintf(want, sizeof(want), "user%u", n);
		CHECK(str(who, "user") && !strcmp(str(who, "user"), want));
		snprintf(want, sizeof(want), "owner-%u@example.org", n);
		CHECK(str(who, "owner") && !strcmp(str(who, "owner"), want));
	}
	unit_where("%s", "");
}

/* Many sessions' statements, in a random order; sessions end and others begin meanwhile. */
static void write_statements(void)
{
	struct session *live[NSESS];
	unsigned next = 1, rnd = 12345;
	uint64_t seq[NSESS] = {0};

	for (int i = 0; i < NSESS; i++)
		live[i] = sess_new(next++);
	for (int round = 0; round < 4000; round++) {
		int i;
		struct ev_statement e = {.protocol = "simple", .text = "select 1", .text_len = 8,
					 .verdict = "allow"};

		rnd = rnd * 1103515245 + 12345;
		i = (int)((rnd >> 8) % NSESS);
		e.seq = ++seq[i];
		CHECK_EQ_INT(ev_statement(sess_agent(live[i]), &e), 0);
		if ((rnd >> 20) % 9 == 0) {
			/* It ends (its id leaves events' set), and a new session takes its place. */
			struct ev_session_end end = {.reason = "test"};

			ev_session_end(sess_agent(live[i]), &end);
			free(live[i]);
			live[i] = sess_new(next++);
			seq[i] = 0;
		}
	}
	for (int i = 0; i < NSESS; i++)
		free(live[i]);
}

static void test_who_once_per_session_and_segment(void)
{
	struct who_check *c = calloc(1, sizeof(*c));

	each_record(g_dir, check_who, c);
	CHECK(c->segments > 10);
	CHECK(c->statements == 4000);
	CHECK(c->whos > c->segments);
	free(c);
}

/* session_start of an engine without a login (tcp) has no login fields; with one it has. */
static void start_fields(unsigned seg, struct json_object *o, void *arg)
{
	int *n = arg;
	struct json_object *v;

	if (!str(o, "kind") || strcmp(str(o, "kind"), "session_start"))
		return;
	if (!strcmp(str(o, "target"), "raw")) {
		CHECK(!json_object_object_get_ex(o, "user", &v));
		CHECK(!json_object_object_get_ex(o, "params", &v));
		CHECK(!strcmp(str(o, "protocol"), "tcp"));
		n[0]++;
	} else {
		CHECK(str(o, "user") && !strcmp(str(o, "user"), "user7"));
		CHECK(str(o, "application_name") && !strcmp(str(o, "application_name"), "app"));
		CHECK(!strcmp(str(o, "protocol"), "postgres"));
		n[1]++;
	}
}

static void write_starts(void)
{
	struct session *tcp = sess_new(5), *pg = sess_new(7);
	struct ev_session_start login = {.application_name = "app", .params_json = "{}"};

	tcp->user[0] = tcp->database[0] = '\0';
	snprintf(tcp->target, sizeof(tcp->target), "raw");
	snprintf(tcp->protocol_name, sizeof(tcp->protocol_name), "tcp");
	ev_session_start(sess_agent(tcp), NULL);
	ev_session_start(sess_agent(pg), &login);
	free(tcp);
	free(pg);
}

static void test_session_start_with_and_without_login(void)
{
	int n[2] = {0};

	each_record(g_dir, start_fields, n);
	CHECK(n[0] == 1 && n[1] == 1);
}

int main(int argc, char **argv)
{
	struct audit_cfg cfg = {.durability = AUDIT_FLUSH, .checkpoint_every = 1000,
				.segment_bytes = 16384};

	if (argc != 2) {
		fprintf(stderr, "usage: test_events STATE_DIR\n");
		return 2;
	}
	snprintf(g_dir, sizeof(g_dir), "%s", argv[1]);
	mkdir(g_dir, 0700);
	/* One trail (audit.c's state is the process's): written first, then read back. */
	if (events_open(g_dir, &cfg)) {
		fprintf(stderr, "cannot open the audit trail in %s\n", g_dir);
		return 1;
	}
	write_statements();
	write_starts();
	events_close();
	UNIT_RUN(test_who_once_per_session_and_segment);
	UNIT_RUN(test_session_start_with_and_without_login);
	return unit_report();
}
