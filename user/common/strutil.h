/* Small string helpers for hot paths (a name copied, a pattern matched per statement). */
#ifndef HOOP_STRUTIL_H
#define HOOP_STRUTIL_H

#include <fnmatch.h>
#include <stddef.h>
#include <string.h>

/* Copy s into d (n bytes), truncating, always NUL-terminated when n > 0. */
static inline void str_copy(char *d, size_t n, const char *s)
{
	size_t l;

	if (!n)
		return;
	l = strnlen(s, n - 1);
	memcpy(d, s, l);
	d[l] = '\0';
}

/* fnmatch(pat, s, 0) == 0, with a plain comparison when pat has no wildcard or escape, and
 * "*" matching at once: policy patterns are mostly plain names. */
static inline int glob_match(const char *pat, const char *s)
{
	if (pat[0] == '*' && !pat[1])
		return 1;
	return strpbrk(pat, "*?[\\") ? !fnmatch(pat, s, 0) : !strcmp(pat, s);
}

#endif
