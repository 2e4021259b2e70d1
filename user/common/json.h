/* A small JSON writer into a growing buffer (escapes strings; no allocation per value).
 * Stands alone: used by logs, the control protocol and the metrics page. Reading JSON is
 * json-c's job (but for libpg_query's parse trees, which sqlfacts.c reads itself, for speed). */
#ifndef HOOP_JSON_H
#define HOOP_JSON_H

#include <stddef.h>
#include <stdint.h>

struct jbuf {
	char *s;
	size_t len, cap;
	int need_comma;
	int oom;
};

void jb_init(struct jbuf *j);
void jb_free(struct jbuf *j);
const char *jb_str(struct jbuf *j);
void jb_obj_open(struct jbuf *j);
void jb_obj_close(struct jbuf *j);
void jb_arr_open(struct jbuf *j);
void jb_arr_close(struct jbuf *j);
void jb_key(struct jbuf *j, const char *k);
void jb_str_val(struct jbuf *j, const char *v);
void jb_int_val(struct jbuf *j, int64_t v);
void jb_raw(struct jbuf *j, const char *raw);
void jb_kv_str(struct jbuf *j, const char *k, const char *v);
void jb_kv_int(struct jbuf *j, const char *k, int64_t v);
void jb_kv_uint(struct jbuf *j, const char *k, uint64_t v);
void jb_kv_bool(struct jbuf *j, const char *k, int v);

#endif
