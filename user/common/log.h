/* One logging API for hoopd and hoopctl: levels, text or JSON lines on stderr. Lines about a
 * connection carry its session id and peer (hlog_conn). */
#ifndef HOOP_LOG_H
#define HOOP_LOG_H

#include <stdarg.h>

enum hlog_level { HLOG_DEBUG = 0, HLOG_INFO = 1, HLOG_WARN = 2, HLOG_ERROR = 3 };

void hlog_setup(const char *progname, int json, enum hlog_level min);
int hlog_parse_level(const char *s, enum hlog_level *out);
void hlog(enum hlog_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hlog_conn(enum hlog_level lvl, const char *session, const char *peer, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void hlog_v(enum hlog_level lvl, const char *session, const char *peer, const char *fmt,
	    va_list ap);
enum hlog_level hlog_min(void);

#define log_debug(...) hlog(HLOG_DEBUG, __VA_ARGS__)
#define log_info(...) hlog(HLOG_INFO, __VA_ARGS__)
#define log_warn(...) hlog(HLOG_WARN, __VA_ARGS__)
#define log_error(...) hlog(HLOG_ERROR, __VA_ARGS__)

#endif
