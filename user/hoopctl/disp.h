/*
 * How hoopctl shows text an agent chose (statements, comm, exe, owner, labels, error text): every
 * byte that would act on a terminal instead of being shown (C0, DEL, C1, bidi overrides and
 * isolates, invalid UTF-8) is written as a visible escape, so what an approver reads is what the
 * bytes are. Every human-readable output of hoopctl goes through disp(); JSON output stays JSON.
 */
#ifndef HOOPCTL_DISP_H
#define HOOPCTL_DISP_H

#include <stddef.h>

/* Escape n bytes of s into out (at most outn bytes, NUL-terminated); returns the length the
 * whole escaped text needs, not counting the NUL (like snprintf). */
size_t disp_escape(const char *s, size_t n, char *out, size_t outn);
/* s escaped, in a buffer that stays valid for the next DISP_RING - 1 calls (enough for one
 * printf); "" for NULL. Never NULL: on allocation failure a fixed placeholder. */
#define DISP_RING 32
const char *disp(const char *s);
/* The same for n bytes that may hold NUL. */
const char *disp_n(const char *s, size_t n);
/* 1 if s (n bytes) would be shown unchanged by disp. */
int disp_is_plain(const char *s, size_t n);
/* The length of the longest prefix of s (at most max bytes) that does not end inside a UTF-8
 * sequence. */
size_t disp_cut(const char *s, size_t n, size_t max);

/* How much of a held statement an approver is shown: the rest is counted, and named by the
 * statement's SHA-256. */
#define DISP_SHOW_MAX_BYTES 2048
/* "  LABEL<text>" on one line, escaped (disp) and cut at DISP_SHOW_MAX_BYTES, saying how many
 * bytes were not shown: text an agent chose, as hoopctl approvals and central approvals show
 * it. */
void disp_show_text(const char *label, const char *t);

#endif
