/*
 * The opaque engine: bytes pass unchanged, each way. Targets of protocol tcp use it, and so do
 * protocols whose engines are not written yet (engines.c). It has no login: the relay records
 * its sessions (session_start at accept, session_end with the bytes each way) by itself.
 */
#include "engine.h"

static void *tcp_open(struct session *s)
{
	return s;
}

static void tcp_close(void *st, const char *why)
{
}

static int tcp_agent(void *st, struct buf *in)
{
	struct session *s = st;

	if (buf_append(&s->s.out, buf_head(in), in->len))
		return -1;
	buf_consume(in, in->len);
	return 0;
}

static int tcp_server(void *st, struct buf *in)
{
	struct session *s = st;

	if (buf_append(&s->a.out, buf_head(in), in->len))
		return -1;
	buf_consume(in, in->len);
	return 0;
}

const struct engine_ops tcp_engine = {
	.name = "tcp",
	.open = tcp_open,
	.close = tcp_close,
	.agent_data = tcp_agent,
	.server_data = tcp_server,
};
