/* The PostgreSQL engine's entry points beyond struct engine_ops (pg_engine in engine.h). */
#ifndef HOOP_PG_H
#define HOOP_PG_H

#include "session.h"
#include "verdict.h"

/* Refuse a held statement with sqlstate and message (timeout: 57014; shutdown: 57P01). */
int pg_fail_held(struct session *s, const char *sqlstate, const char *message);
/* A held statement was cancelled by the client: answer 57014 without the server. */
int pg_cancel_held(struct session *s);
/* Decide a held statement: run it (VERDICT_ALLOW) or refuse it with message. */
/* The text this session's engine recorded for prepared statement (cursor 0) or cursor (1)
 * name: what an EXECUTE or FETCH of it runs. NULL when there is no such name. */
const char *pg_named_text(struct session *s, int cursor, const char *name);
int pg_resume_held(struct session *s, enum verdict v, const char *message);

#endif
