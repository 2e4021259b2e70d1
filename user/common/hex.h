/* Lower-case hex encoding, the one spelling of bytes as text in the audit trail and events. */
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

#endif
