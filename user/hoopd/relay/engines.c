/*
 * Which engine speaks a target's protocol (hoop_bpf.h, enum hoop_protocol). A new engine is one
 * line here; a protocol without one is relayed as opaque TCP (its sessions recorded with their
 * bytes, its statements not judged).
 */
#include "engine.h"
#include "hoop_bpf.h"

static const struct engine_ops *const engines[] = {
	[HOOP_PROTO_POSTGRES] = &pg_engine,
	[HOOP_PROTO_MYSQL] = &mysql_engine,
	[HOOP_PROTO_TCP] = &tcp_engine,
};

const struct engine_ops *engine_for(int protocol)
{
	if (protocol >= 0 && (size_t)protocol < sizeof(engines) / sizeof(engines[0]) &&
	    engines[protocol])
		return engines[protocol];
	return &tcp_engine;
}
