/* A tiny unit-test harness. CHECK* macros record a failure with file:line and the running test's
 * name and keep going; UNIT_RUN runs one test function; unit_report prints the one summary line
 * tests/run.sh reads ("unit: N passed, M failed") and returns the exit code. N and M count tests
 * (test functions and data-file cases), not checks; a test marked with unit_known_bug is in
 * neither while it fails. Header only: include it in one file. */
#ifndef HOOP_UNIT_HARNESS_H
#define HOOP_UNIT_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct unit_state {
	const char *test;      /* running test, named in every failure line */
	char where[512];       /* optional finer place, e.g. the data file and line being checked */
	const char *known_bug; /* set by unit_known_bug for the running test */
	int test_failed;
	int passed, failed, known_bugs;
};

static struct unit_state unit_state;

static inline void unit_begin(const char *name)
{
	unit_state.test = name;
	unit_state.where[0] = '\0';
	unit_state.test_failed = 0;
	unit_state.known_bug = NULL;
}

/* Marks the running test as showing a reported, unfixed bug: its failures are printed but not
 * counted. Once the bug is fixed the test passes, and that counts as a failure until the marker
 * goes, so a marker never outlives its bug. */
static inline void unit_known_bug(const char *what)
{
	unit_state.known_bug = what;
}

static inline void unit_end(void)
{
	if (unit_state.known_bug && unit_state.test_failed) {
		fprintf(stderr, "known bug, not counted: %s: %s\n", unit_state.test,
			unit_state.known_bug);
		unit_state.known_bugs++;
	} else if (unit_state.known_bug) {
		fprintf(stderr, "FAIL %s: passes now; drop its known-bug marker (%s)\n",
			unit_state.test, unit_state.known_bug);
		unit_state.failed++;
	} else if (unit_state.test_failed) {
		unit_state.failed++;
	} else {
		unit_state.passed++;
	}
	unit_state.test = NULL;
	unit_state.known_bug = NULL;
	unit_state.where[0] = '\0';
}

/* Names the data being checked until the next call or the end of the test ("" clears it). */
static inline void unit_where(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void unit_where(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(unit_state.where, sizeof(unit_state.where), fmt, ap);
	va_end(ap);
}

static inline void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void unit_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s %s", file, line, unit_state.known_bug ? "known-bug" : "FAIL",
		unit_state.test ? unit_state.test : "?");
	if (unit_state.where[0])
		fprintf(stderr, " (%s)", unit_state.where);
	fputs(": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	unit_state.test_failed = 1;
}

/* Failure lines show strings with control bytes escaped, so "\n" and "\u000a" stay apart. */
static inline const char *unit_quote(const char *s, char *buf, size_t n)
{
	size_t o = 0;

	if (!s)
		return "(null)";
	for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < n; p++) {
		if (*p < 0x20 || *p >= 0x7f)
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			unit_fail(__FILE__, __LINE__, "CHECK(%s) is false", #cond);                \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
	do {                                                                                       \
		long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                      \
		if (unit_a_ != unit_b_)                                                            \
			unit_fail(__FILE__, __LINE__, "%s == %s: got %lld, want %lld", #a, #b,     \
				  unit_a_, unit_b_);                                               \
	} while (0)

#define CHECK_STREQ(a, b)                                                                          \
	do {                                                                                       \
		const char *unit_a_ = (a), *unit_b_ = (b);                                         \
		char unit_qa_[1024], unit_qb_[1024];                                               \
		if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_))                              \
			unit_fail(__FILE__, __LINE__, "%s == %s: got \"%s\", want \"%s\"", #a, #b, \
				  unit_quote(unit_a_, unit_qa_, sizeof(unit_qa_)),                 \
				  unit_quote(unit_b_, unit_qb_, sizeof(unit_qb_)));                \
	} while (0)

#define UNIT_RUN(fn)                                                                               \
	do {                                                                                       \
		unit_begin(#fn);                                                                   \
		fn();                                                                              \
		unit_end();                                                                        \
	} while (0)

/* Prints the summary line and returns the process exit code. */
static inline int unit_report(void)
{
	/* Failures went to stderr; flush so the summary is the last line whichever is captured. */
	if (unit_state.known_bugs)
		fprintf(stderr, "%d test(s) show known bugs (see above)\n", unit_state.known_bugs);
	fflush(stderr);
	printf("unit: %d passed, %d failed\n", unit_state.passed, unit_state.failed);
	fflush(stdout);
	/* Running nothing is a failure too: a broken test list must not pass. */
	return unit_state.failed || !unit_state.passed ? 1 : 0;
}

#endif
