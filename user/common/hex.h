/* Lower-case hex encoding, the one spelling of bytes as text in the audit trail and events, and
 * the one hex digit reader (bytea, COPY escapes, JSON \u escapes). */
#ifndef HOOP_HEX_H
#define HOOP_HEX_H

#include <stddef.h>
#include <stdint.h>

/* out must hold 2 * n + 1 bytes; it is NUL-terminated. */
static inline void hex_encode(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The value of hex digit c (either case), or -1. */
static inline int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
