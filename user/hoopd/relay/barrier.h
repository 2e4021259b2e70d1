/*
 * The durability barrier the relay applies before forwarding: bytes queued toward a database
 * are described by records written before them, and with audit durability fsync they wait
 * until those records are on disk (docs/audit.md). A mark is taken when new bytes are queued;
 * they may go once the mark is passed.
 */
#ifndef HOOP_BARRIER_H
#define HOOP_BARRIER_H

#include <stdint.h>

#include "audit_store.h"

/* The mark for bytes queued now: every record written so far. */
static inline uint64_t barrier_mark(void)
{
	return audit_last_seq();
}

/* Are the records up to mark durable? */
static inline int barrier_passed(uint64_t mark)
{
	return audit_durable() >= mark;
}

#endif
