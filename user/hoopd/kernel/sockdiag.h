/* sockdiag.c: connections of a cgroup opened before attach. */
#ifndef HOOPD_SOCKDIAG_H
#define HOOPD_SOCKDIAG_H

#include <stddef.h>

struct jbuf;

int sockdiag_existing(const char *cg_path, int reset, struct jbuf *j, int *count, char *err,
		      size_t errn);

#endif
