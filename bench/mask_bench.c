/*
 * Microbenchmark of mask_datarow (make bench-mask): an engine with every detector on, about
 * 64 MB of realistic ten-column DataRows in text format (ids, names, dates, clinical notes
 * where about one row in forty carries an SSN, phone, email, MRN, card or IP address, amounts,
 * statuses, timestamps), masked row by row on one thread. Reports:
 *   - MB/s of DataRow bytes per core (thread CPU time, best of three passes), for detectors only
 *     and for detectors plus two column rules, against a plain copy of the same rows into the
 *     same kind of output buffer (the baseline, measured in the same run);
 *   - instructions per byte under valgrind --tool=callgrind on a smaller input (4 MB), the
 *     figure that does not move with the machine's load, against the copy's.
 * Usage: mask_bench [MB]   (the callgrind part is skipped when valgrind is not installed)
 *        mask_bench --inner mask|rules|copy MB   (what callgrind runs)
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "mask.h"
#include "pgrow.h"

extern char **environ;

#define NCOLS 10

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *pick(const char *const *a, size_t n)
{
	return a[rnd() % n];
}

#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

static const char *const first[] = {"James",	"Mary",	    "Robert",  "Patricia", "John",
				    "Jennifer", "Michael",  "Linda",   "David",	   "Elizabeth",
				    "William",	"Barbara",  "Richard", "Susan",	   "José",
				    "Zoë",	"Muhammad", "Wei",     "Aarav",	   "Olga"};
static const char *const last[] = {"Smith",	"Johnson", "Williams", "Brown",	    "Jones",
				   "Garcia",	"Miller",  "Davis",    "Rodriguez", "Martinez",
				   "Hernández", "Lopez",   "Gonzalez", "Wilson",    "Anderson",
				   "Nguyen",	"Müller",  "O'Brien",  "Kowalski",  "Tanaka"};
static const char *const cities[] = {"Boston", "Chicago", "Houston", "Phoenix",	 "Seattle",
				     "Denver", "Atlanta", "Miami",   "Portland", "Austin"};
static const char *const status[] = {"active", "discharged", "scheduled", "pending", "closed"};
static const char *const words[] = {
    "patient",	 "reports",    "mild",	    "pain",	 "in",	      "the",	"left",
    "knee",	 "after",      "walking",   "follow-up", "scheduled", "with",	"Dr.",
    "no",	 "known",      "allergies", "blood",	 "pressure",  "within", "normal",
    "limits",	 "review",     "labs",	    "next",	 "week",      "and",	"continue",
    "current",	 "medication", "dose",	    "of",	 "mg",	      "daily",	"denies",
    "fever",	 "chills",     "or",	    "nausea",	 "x-ray",     "shows",	"no",
    "fracture",	 "advised",    "rest",	    "ice",	 "elevation", "return", "if",
    "symptoms",	 "worsen",     "history",   "of",	 "type",      "2",	"diabetes",
    "A1c",	 "improved",   "to",	    "6.8%",	 "since",     "last",	"visit",
    "discussed", "diet",       "exercise",  "plan",	 "refill",    "sent",	"pharmacy",
};

/* an identifier in a note: what the detectors exist for */
static int put_identifier(char *o, size_t on)
{
	switch (rnd() % 6) {
	case 0:
		return snprintf(o, on, "SSN %03d-%02d-%04d", (int)(rnd() % 665 + 1),
				(int)(rnd() % 99 + 1), (int)(rnd() % 9999 + 1));
	case 1:
		return snprintf(o, on, "call (%03d) %03d-%04d", (int)(rnd() % 800 + 200),
				(int)(rnd() % 800 + 200), (int)(rnd() % 10000));
	case 2:
		return snprintf(o, on, "email %s.%s@example.com", PICK(first), "doe");
	case 3:
		return snprintf(o, on, "MRN-%08d", (int)(rnd() % 100000000));
	case 4:
		return snprintf(o, on, "card 4111 1111 1111 1111");
	default:
		return snprintf(o, on, "from 10.%d.%d.%d", (int)(rnd() % 256), (int)(rnd() % 256),
				(int)(rnd() % 256));
	}
}

static void put_cell(struct buf *b, const char *s, size_t n)
{
	uint8_t l[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};

	buf_append(b, l, 4);
	buf_append(b, s, n);
}

struct rows {
	struct buf data; /* bodies, one after another */
	size_t *off, *len;
	size_t n, cap;
	size_t bytes;
};

static void gen_rows(struct rows *r, size_t target)
{
	char v[NCOLS][2048];
	size_t vl[NCOLS];
	uint64_t id = 1000;

	while (r->bytes < target) {
		size_t start = r->data.len, nw = 8 + rnd() % 50, o = 0;
		int with_id = rnd() % 40 == 0, at = with_id ? (int)(rnd() % nw) : -1;

		vl[0] = (size_t)snprintf(v[0], sizeof(v[0]), "%llu", (unsigned long long)id++);
		vl[1] = (size_t)snprintf(v[1], sizeof(v[1]), "%s", PICK(first));
		vl[2] = (size_t)snprintf(v[2], sizeof(v[2]), "%s", PICK(last));
		vl[3] = (size_t)snprintf(v[3], sizeof(v[3]), "20%02d-%02d-%02d", (int)(rnd() % 25),
					 (int)(rnd() % 12 + 1), (int)(rnd() % 28 + 1));
		vl[4] = (size_t)snprintf(v[4], sizeof(v[4]), "%s", PICK(cities));
		for (size_t w = 0; w < nw; w++) {
			if ((int)w == at)
				o += (size_t)put_identifier(v[5] + o, sizeof(v[5]) - o);
			else
				o +=
				    (size_t)snprintf(v[5] + o, sizeof(v[5]) - o, "%s", PICK(words));
			if (w + 1 < nw)
				v[5][o++] = ' ';
		}
		vl[5] = o;
		vl[6] = (size_t)snprintf(v[6], sizeof(v[6]), "%d.%02d", (int)(rnd() % 5000),
					 (int)(rnd() % 100));
		vl[7] = (size_t)snprintf(v[7], sizeof(v[7]), "%s", PICK(status));
		vl[8] = (size_t)snprintf(v[8], sizeof(v[8]), "2024-%02d-%02d %02d:%02d:%02d",
					 (int)(rnd() % 12 + 1), (int)(rnd() % 28 + 1),
					 (int)(rnd() % 24), (int)(rnd() % 60), (int)(rnd() % 60));
		vl[9] = (size_t)snprintf(v[9], sizeof(v[9]), "%s", rnd() % 2 ? "t" : "f");
		buf_append(&r->data, "\0\12", 2);
		for (int c = 0; c < NCOLS; c++)
			put_cell(&r->data, v[c], vl[c]);
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 4096;
			r->off = realloc(r->off, r->cap * sizeof(*r->off));
			r->len = realloc(r->len, r->cap * sizeof(*r->len));
		}
		r->off[r->n] = start;
		r->len[r->n++] = r->data.len - start;
		r->bytes += r->data.len - start;
	}
}

static const uint32_t col_types[NCOLS] = {20, 25, 25, 1082, 25, 25, 1700, 1043, 1114, 16};
static const char *const col_names[NCOLS] = {"id",	   "first_name", "last_name", "visit_date",
					     "city",	   "notes",	 "amount",    "status",
					     "updated_at", "opt_in"};

static void plan(struct mask_colplan *cp, int with_rules)
{
	memset(cp, 0, NCOLS * sizeof(*cp));
	for (int c = 0; c < NCOLS; c++) {
		cp[c].rule = MASK_RULE_NONE;
		cp[c].type_oid = col_types[c];
		cp[c].context = mask_context_from_name(col_names[c]);
		snprintf(cp[c].label, sizeof(cp[c].label), "patients.%s", col_names[c]);
	}
	if (with_rules) {
		cp[2].rule = 0; /* last_name: partial */
		cp[3].rule = 1; /* visit_date: hash */
	}
}

/* Output goes to one buffer, drained every megabyte, as a relay's send buffer would be. */
__attribute__((noinline)) static int bench_mask_rows(const struct mask_engine *me,
						     const struct mask_colplan *cp,
						     const struct rows *r, struct buf *out,
						     struct mask_counts *counts)
{
	for (size_t i = 0; i < r->n; i++) {
		if (mask_datarow(me, cp, NCOLS, r->data.data + r->off[i], r->len[i], out, counts))
			return -1;
		if (out->len > (1 << 20))
			out->len = 0;
	}
	return 0;
}

__attribute__((noinline)) static int bench_copy_rows(const struct rows *r, struct buf *out)
{
	for (size_t i = 0; i < r->n; i++) {
		uint8_t *o = buf_reserve(out, 5 + r->len[i]);
		size_t l = r->len[i] + 4;

		if (!o)
			return -1;
		o[0] = 'D';
		o[1] = (uint8_t)(l >> 24);
		o[2] = (uint8_t)(l >> 16);
		o[3] = (uint8_t)(l >> 8);
		o[4] = (uint8_t)l;
		memcpy(o + 5, r->data.data + r->off[i], r->len[i]);
		buf_commit(out, 5 + r->len[i]);
		if (out->len > (1 << 20))
			out->len = 0;
	}
	return 0;
}

static double cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static struct mask_engine *engine(void)
{
	static struct mask_policy mp;
	struct mask_engine *me = NULL;
	uint8_t key[32];
	char err[256];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	mp.enabled = 1;
	mp.detectors = (1u << DET_COUNT) - 1;
	mp.detector_style = MASK_PARTIAL;
	mp.unknown_style = MASK_REDACT;
	mp.nrules = 2;
	mp.rules[0].style = MASK_PARTIAL;
	mp.rules[0].keep_first = 1;
	mp.rules[1].style = MASK_HASH;
	if (mask_engine_new(&mp, key, &me, err, sizeof(err))) {
		fprintf(stderr, "mask_bench: %s\n", err);
		exit(1);
	}
	return me;
}

static int inner(const char *mode, size_t mb)
{
	struct rows r = {0};
	struct buf out = {0};
	struct mask_colplan cp[NCOLS];
	struct mask_counts counts = {0};
	struct mask_engine *me = engine();
	int rc;

	gen_rows(&r, mb << 20);
	plan(cp, !strcmp(mode, "rules"));
	/* the first row warms the thread's workspace outside the measured function */
	mask_datarow(me, cp, NCOLS, r.data.data, r.len[0], &out, &counts);
	out.len = 0;
	rc = strcmp(mode, "copy") ? bench_mask_rows(me, cp, &r, &out, &counts)
				  : bench_copy_rows(&r, &out);
	printf("bytes %zu\n", r.bytes);
	mask_engine_free(me);
	return rc ? 1 : 0;
}

/* Instructions in the toggled function under callgrind, or 0 when it cannot be measured. */
static double callgrind_ir(const char *mode, size_t mb)
{
	char outfile[] = "/tmp/mask_bench.callgrind.XXXXXX", fn[64], mbs[16], line[512];
	char toggle[80];
	int fd = mkstemp(outfile), st;
	pid_t pid;
	double ir = 0;
	FILE *f;
	posix_spawn_file_actions_t fa;

	if (fd < 0)
		return 0;
	close(fd);
	snprintf(fn, sizeof(fn), "--callgrind-out-file=%s", outfile);
	snprintf(toggle, sizeof(toggle), "--toggle-collect=%s",
		 strcmp(mode, "copy") ? "bench_mask_rows" : "bench_copy_rows");
	snprintf(mbs, sizeof(mbs), "%zu", mb);
	{
		char *argv[] = {
		    "valgrind",	      "--tool=callgrind", "--collect-atstart=no", toggle, fn,
		    "/proc/self/exe", "--inner",	  (char *)mode,		  mbs,	  NULL};

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
		/* /proc/self/exe in the child is valgrind: resolve ours first */
		{
			static char self[4096];
			ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

			if (n <= 0)
				return 0;
			self[n] = '\0';
			argv[5] = self;
		}
		if (posix_spawnp(&pid, "valgrind", &fa, NULL, argv, environ)) {
			posix_spawn_file_actions_destroy(&fa);
			unlink(outfile);
			return 0;
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		unlink(outfile);
		return 0;
	}
	f = fopen(outfile, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "totals:", 7) || (!ir && !strncmp(line, "summary:", 8)))
			ir = strtod(strchr(line, ':') + 1, NULL);
	if (f)
		fclose(f);
	unlink(outfile);
	return ir;
}

int main(int argc, char **argv)
{
	struct rows r = {0};
	struct buf out = {0};
	struct mask_colplan cp[NCOLS];
	struct mask_counts counts = {0};
	struct mask_engine *me;
	size_t mb = 64, cg_mb = 4, ided = 0;
	double best_copy = 1e9, best[2] = {1e9, 1e9};

	if (argc == 4 && !strcmp(argv[1], "--inner"))
		return inner(argv[2], (size_t)atol(argv[3]));
	if (argc > 1)
		mb = (size_t)atol(argv[1]);
	if (!mb)
		mb = 64;
	me = engine();
	gen_rows(&r, mb << 20);
	printf("mask_bench: %.1f MB of DataRows: %zu rows of %d columns, %.0f bytes a row; "
	       "every detector on, detector style partial\n",
	       (double)r.bytes / 1e6, r.n, NCOLS, (double)r.bytes / (double)r.n);
	for (int pass = 0; pass < 3; pass++) {
		double t = cpu_now();

		if (bench_copy_rows(&r, &out))
			return 1;
		t = cpu_now() - t;
		if (t < best_copy)
			best_copy = t;
		out.len = 0;
		for (int w = 0; w < 2; w++) {
			plan(cp, w);
			memset(counts.det, 0, sizeof(counts.det));
			t = cpu_now();
			if (bench_mask_rows(me, cp, &r, &out, &counts)) {
				fprintf(stderr, "mask_bench: mask_datarow failed\n");
				return 1;
			}
			t = cpu_now() - t;
			if (t < best[w])
				best[w] = t;
			out.len = 0;
		}
	}
	for (int d = 0; d < DET_COUNT; d++)
		ided += counts.det[d];
	printf("  copy (baseline)                  %8.0f MB/s per core\n",
	       (double)r.bytes / best_copy / 1e6);
	for (int w = 0; w < 2; w++)
		printf("  mask_datarow, %-18s %8.0f MB/s per core   %.2fx the copy's time\n",
		       w ? "detectors + rules" : "detectors only", (double)r.bytes / best[w] / 1e6,
		       best[w] / best_copy);
	printf("  identifiers masked in the last pass: %zu", ided);
	for (int d = 0; d < DET_COUNT; d++)
		if (counts.det[d])
			printf(" %s=%llu", mask_detector_name((enum mask_detector)d),
			       (unsigned long long)counts.det[d]);
	printf("\n");
	fflush(stdout);
	{
		double ir_mask = callgrind_ir("mask", cg_mb), ir_copy = callgrind_ir("copy", cg_mb);
		struct rows small = {0};

		rng = 0x9e3779b97f4a7c15ULL;
		gen_rows(&small, cg_mb << 20);
		if (ir_mask > 0 && ir_copy > 0)
			printf("  callgrind, %zu MB, detectors only: %.2f instructions/byte "
			       "(copy: %.3f; %.1fx)\n",
			       cg_mb, ir_mask / (double)small.bytes, ir_copy / (double)small.bytes,
			       ir_mask / ir_copy);
		else
			printf("  callgrind: not measured (valgrind missing or failed)\n");
		buf_free(&small.data);
		free(small.off);
		free(small.len);
	}
	buf_free(&r.data);
	buf_free(&out);
	free(r.off);
	free(r.len);
	mask_engine_free(me);
	mask_thread_release();
	return 0;
}
