/* Logging sink: text ("2026-11-26T14:00:00.123Z hoopd[12]: warn: ...") or JSON Lines. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

static const char *g_prog = "hoop";
static int g_json;
static enum hlog_level g_min = HLOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void hlog_setup(const char *progname, int json, enum hlog_level min)
{
	g_prog = progname;
	g_json = json;
	g_min = min;
}

enum hlog_level hlog_min(void)
{
	return g_min;
}

int hlog_parse_level(const char *s, enum hlog_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum hlog_level)i;
			return 0;
		}
	}
	return -1;
}

void hlog_v(enum hlog_level lvl, const char *session, const char *peer, const char *fmt,
	    va_list ap)
{
	char msg[2048], ts[40];
	struct timeval tv;
	struct tm tm;

	if (lvl < g_min)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (long)(tv.tv_usec / 1000));
	if (g_json) {
		struct jbuf j;

		jb_init(&j);
		jb_obj_open(&j);
		jb_kv_str(&j, "ts", ts);
		jb_kv_str(&j, "level", names[lvl]);
		jb_kv_str(&j, "prog", g_prog);
		jb_kv_int(&j, "pid", getpid());
		if (session)
			jb_kv_str(&j, "session", session);
		if (peer)
			jb_kv_str(&j, "peer", peer);
		jb_kv_str(&j, "msg", msg);
		jb_obj_close(&j);
		fprintf(stderr, "%s\n", jb_str(&j));
		jb_free(&j);
	} else if (session) {
		fprintf(stderr, "%s %s[%d]: %s: [%s %s] %s\n", ts, g_prog, getpid(), names[lvl],
			session, peer ? peer : "-", msg);
	} else {
		fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, g_prog, getpid(), names[lvl], msg);
	}
}

void hlog(enum hlog_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hlog_v(lvl, NULL, NULL, fmt, ap);
	va_end(ap);
}

void hlog_conn(enum hlog_level lvl, const char *session, const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hlog_v(lvl, session, peer, fmt, ap);
	va_end(ap);
}
