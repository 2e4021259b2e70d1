/* Visible rendering of agent-chosen text for hoopctl's human-readable output (disp.h). */
#include "disp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of a well-formed UTF-8 sequence at s (n bytes left) and its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
		min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates and code points past U+10FFFF are not text */
	if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	*cp = c;
	return len;
}

/* Code points that change what a terminal shows instead of being shown: C1 controls, and the
 * bidirectional embeddings, overrides, isolates and marks that reorder the text around them. */
static int hidden_cp(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0x061c || c == 0x200e || c == 0x200f ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

size_t disp_escape(const char *in, size_t n, char *out, size_t outn)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, i = 0;
	char tmp[16];

#define PUT(str, l)                                                                                \
	do {                                                                                       \
		for (size_t k_ = 0; k_ < (l); k_++, o++)                                           \
			if (o + 1 < outn)                                                          \
				out[o] = (str)[k_];                                                \
	} while (0)
	while (i < n) {
		uint32_t cp;
		size_t l = utf8_seq(s + i, n - i, &cp);

		if (!l) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", s[i]);
			PUT(tmp, 4);
			i++;
			continue;
		}
		if (l == 1 && (cp < 0x20 || cp == 0x7f)) {
			const char *e = cp == '\n'   ? "\\n"
					: cp == '\r' ? "\\r"
					: cp == '\t' ? "\\t"
						     : NULL;

			if (e) {
				PUT(e, 2);
			} else {
				snprintf(tmp, sizeof(tmp), "\\x%02x", (unsigned)cp);
				PUT(tmp, 4);
			}
		} else if (hidden_cp(cp)) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)cp);
			PUT(tmp, 6);
		} else {
			PUT((const char *)s + i, l);
		}
		i += l;
	}
#undef PUT
	if (outn)
		out[o < outn ? o : outn - 1] = '\0';
	return o;
}

int disp_is_plain(const char *s, size_t n)
{
	return disp_escape(s, n, NULL, 0) == n;
}

size_t disp_cut(const char *in, size_t n, size_t max)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;

	if (n <= max)
		return n;
	while (i < max) {
		uint32_t cp;
		size_t l = utf8_seq(s + i, n - i, &cp);

		if (!l)
			l = 1;
		if (i + l > max)
			break;
		i += l;
	}
	return i;
}

static char *g_ring[DISP_RING];
static unsigned g_next;

const char *disp_n(const char *s, size_t n)
{
	size_t need;
	char *b;

	if (!s)
		return "";
	need = disp_escape(s, n, NULL, 0);
	b = malloc(need + 1);
	if (!b)
		return "(text not shown: out of memory)";
	disp_escape(s, n, b, need + 1);
	free(g_ring[g_next]);
	g_ring[g_next] = b;
	g_next = (g_next + 1) % DISP_RING;
	return b;
}

const char *disp(const char *s)
{
	return s ? disp_n(s, strlen(s)) : "";
}

void disp_show_text(const char *label, const char *t)
{
	size_t n = strlen(t), cut = disp_cut(t, n, DISP_SHOW_MAX_BYTES);

	printf("  %s%s", label, disp_n(t, cut));
	if (cut < n)
		printf(" \u2026 %zu more bytes (not shown; the sha256 covers them)", n - cut);
	printf("\n");
}
