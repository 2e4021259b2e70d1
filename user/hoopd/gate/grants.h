/*
 * Fingerprint grants: an approver's `hoopctl approve --scope fingerprint` lets statements of the
 * same key (grantkey.h) from agents of the same owner run without asking again, for a while.
 * The store sits below the verdict: verdict.c asks whether a grant covers a held statement,
 * approvals.c adds one when an approver grants it. Neither needs the other for that.
 * The loop thread's only.
 */
#ifndef HOOP_GRANTS_H
#define HOOP_GRANTS_H

#include <stddef.h>
#include <stdint.h>

#include "grantkey.h"

/* Does a grant of owner cover this text now? 1 or 0. No owner is never covered (a grant would
 * then cover every agent without one). */
int grants_covers(const char *owner, const char *text, size_t len);
/* Grant key (grantkey_for's) to owner for for_ms milliseconds. 0 or -ENOMEM. */
int grants_add(const char *key, const char *owner, int64_t for_ms);
/* Drop expired grants (on the daemon's tick). */
void grants_expire(void);

#endif
