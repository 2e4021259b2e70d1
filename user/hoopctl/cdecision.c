/* Judging what a node reads from the central database about approvals (cdecision.h). */
#include "cdecision.h"

#include <stdio.h>
#include <string.h>

int cdec_notify_for(const char *payload, const char *node)
{
	return payload && node && *node && strlen(payload) <= CDEC_ROLE_MAX &&
	       !strcmp(payload, node);
}

static int id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > CDEC_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

/* A whole SHA-256 in lower-case hex, as hoopd writes it. */
static int sha_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n != CDEC_SHA_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* A role name hoopd's control socket takes as central_by (control.c): printable, no quote or
 * backslash, at most 63 bytes. */
static int role_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > CDEC_ROLE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

enum cdec_verdict cdec_judge(const struct cdec_row *r, const struct cdec_pending *p, size_t np,
			     struct cdec_out *out)
{
	const struct cdec_pending *mine = NULL;
	int approve;

	out->decision = NULL;
	out->why[0] = '\0';
	if (!id_ok(r->id)) {
		snprintf(out->why, sizeof(out->why), "refused by the node: not a request id");
		return CDEC_MALFORMED;
	}
	if (!r->state || (strcmp(r->state, "approved") && strcmp(r->state, "denied"))) {
		snprintf(out->why, sizeof(out->why), "refused by the node: not a decision");
		return CDEC_MALFORMED;
	}
	approve = !strcmp(r->state, "approved");
	if (!role_ok(r->decided_by)) {
		snprintf(out->why, sizeof(out->why),
			 "refused by the node: decided_by is not a role name it relays");
		return CDEC_MALFORMED;
	}
	if (!sha_ok(r->sha256)) {
		snprintf(out->why, sizeof(out->why),
			 "refused by the node: the row's sha256 is not a SHA-256");
		return CDEC_MALFORMED;
	}
	if (r->reason && strlen(r->reason) > CDEC_REASON_MAX) {
		snprintf(out->why, sizeof(out->why),
			 "refused by the node: a reason over %d bytes", CDEC_REASON_MAX);
		return CDEC_MALFORMED;
	}
	for (size_t i = 0; i < np; i++)
		if (p[i].id && !strcmp(p[i].id, r->id)) {
			mine = &p[i];
			break;
		}
	if (!mine) {
		snprintf(out->why, sizeof(out->why),
			 "not applied: the request was no longer pending on the node (decided "
			 "there, timed out, cancelled, or hoopd restarted)");
		return CDEC_GONE;
	}
	/* The whole hash, not a prefix: the row was written from the node's own listing. */
	if (!mine->sha256 || strcmp(mine->sha256, r->sha256)) {
		snprintf(out->why, sizeof(out->why),
			 "refused by the node: the row's sha256 is not the held statement's");
		return CDEC_MISMATCH;
	}
	out->decision = approve ? "approve" : "deny";
	return CDEC_APPLY;
}
