/*
 * What a node reads from the fleet's central database about approvals (docs/fleet.md): the
 * payload of a hoop_decisions NOTIFY and a decided row of hoop.approvals, judged before anything
 * reaches hoopd. The central database is another party: a row is applied only when it is well
 * formed, names a request pending on this node, and carries that request's whole SHA-256.
 * No libpq here, so that the fuzz target (fuzz/fuzz_central_decision.c) links it alone.
 */
#ifndef HOOP_CDECISION_H
#define HOOP_CDECISION_H

#include <stddef.h>

#define CDEC_ID_MAX	15   /* hoopd's request ids: "a" and 8 hex digits today */
#define CDEC_ROLE_MAX	63   /* PostgreSQL's NAMEDATALEN - 1 */
#define CDEC_REASON_MAX 2048 /* hoop.decide refuses longer ones */
#define CDEC_SHA_HEX	64

/* One row of hoop.approvals as read (text columns; NULL is SQL NULL). */
struct cdec_row {
	const char *id, *state, *sha256, *decided_by, *reason;
};

/* A request pending on this node, as hoopd lists it (hoopctl approvals --json). */
struct cdec_pending {
	const char *id, *sha256;
};

enum cdec_verdict {
	CDEC_APPLY = 0,	   /* relay it to hoopd as out->decision by central:decided_by */
	CDEC_GONE = 1,	   /* no such request pending here: close the central row */
	CDEC_MISMATCH = 2, /* the row's sha256 is not the pending request's: close, refused */
	CDEC_MALFORMED = 3 /* not a decision this node can read: close, refused */
};

struct cdec_out {
	const char *decision; /* "approve" or "deny" (CDEC_APPLY) */
	char why[160];	      /* what the central row's outcome says otherwise */
};

/* Is a hoop_decisions payload about node (its exact name)? 1 or 0. */
int cdec_notify_for(const char *payload, const char *node);
/* Judge a decided row against the requests pending here (np of them). */
enum cdec_verdict cdec_judge(const struct cdec_row *r, const struct cdec_pending *p, size_t np,
			     struct cdec_out *out);

#endif
