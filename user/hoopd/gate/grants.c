/* Fingerprint grants: a small list of (key, owner, expiry), looked up by the verdict. */
#include "grants.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct grant {
	char key[GRANTKEY_LEN + 1];
	char owner[256];
	int64_t expires; /* grants_now()'s milliseconds */
	struct grant *next;
};

static struct grant *g_grants;

static int64_t grants_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int grants_covers(const char *owner, const char *text, size_t len)
{
	char key[GRANTKEY_LEN + 1], why[192];
	int64_t now;

	/* grants are never made for these; checked again here so that no statement a grant may
	 * not cover can match one by its key (the key of `f(1)` is not that of `f('sql')`, but
	 * the same rule decides both sides) */
	if (!g_grants || !owner || !owner[0] || grantkey_for(text, len, key, why, sizeof(why)))
		return 0;
	now = grants_now();
	for (struct grant *g = g_grants; g; g = g->next)
		if (g->expires > now && !strcmp(g->key, key) && !strcmp(g->owner, owner))
			return 1;
	return 0;
}

int grants_add(const char *key, const char *owner, int64_t for_ms)
{
	struct grant *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	snprintf(g->key, sizeof(g->key), "%s", key);
	snprintf(g->owner, sizeof(g->owner), "%s", owner);
	g->expires = grants_now() + for_ms;
	g->next = g_grants;
	g_grants = g;
	return 0;
}

void grants_expire(void)
{
	int64_t now = grants_now();

	for (struct grant **pp = &g_grants; *pp;) {
		if ((*pp)->expires <= now) {
			struct grant *g = *pp;

			*pp = g->next;
			free(g);
		} else {
			pp = &(*pp)->next;
		}
	}
}
