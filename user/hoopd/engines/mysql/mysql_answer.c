/*
 * The MySQL engine's reading of the server's answers (mysql_int.h): the answer to the one
 * command in flight, packet by packet, into the agent's buffer (renumbered, rows through
 * masking) and into the records (each statement's outcome: rows, affected rows, errors).
 * An answer the command cannot have closes the session: nothing is forwarded that hoopd
 * did not understand.
 */
#include <stdio.h>
#include <string.h>

#include "mysql_int.h"
#include "log.h"
#include "record.h"

int my_ok_read(const struct my *m, const uint8_t *p, size_t len, int eof_form, uint16_t *status,
	       uint64_t *rows)
{
	if (my_ok_parse(p, len, eof_form, status, rows))
		return -1;
	/* the EOF form (0xfe, 5 bytes) has no tail */
	if ((m->caps & MY_CLIENT_SESSION_TRACK) && !(p[0] == 0xfe && len == 5) &&
	    my_ok_track_valid(p, len))
		return -1;
	return 0;
}

void my_resp_begin(struct my *m, int resp, uint64_t seq)
{
	m->resp = (enum my_resp)resp;
	m->rs = RS_FIRST;
	m->internal = 0;
	m->binary = 0;
	m->setopt = 0; /* out_seq: set from the command's packet (agent_data) */
	m->cursor_req = 0;
	m->first_seq = seq;
	m->nseq = 1;
	m->cur = 0;
	m->rows = m->bytes = 0;
	m->ncols = m->coli = 0;
	m->prep_skip = 0;
	m->prep_ok = 0;
	m->start_us = my_now_us();
}

int my_forward(struct my *m, const uint8_t *p, size_t len)
{
	if (m->internal || my_mask_withheld(m))
		return 0; /* hoopd's own query; or a result cut off with an ERR */
	return my_put_packet(&m->s->a.out, p, len, &m->out_seq);
}

/* The statement the current result is for. */
static uint64_t cur_seq(const struct my *m)
{
	int i = m->cur < m->nseq ? m->cur : m->nseq - 1;

	return m->first_seq ? m->first_seq + (uint64_t)(i > 0 ? i : 0) : 0;
}

static void record_complete(struct my *m, const char *tag)
{
	char *mj;
	struct ev_complete e = {.seq = cur_seq(m), .tag = tag, .rows = m->rows, .bytes = m->bytes,
				.duration_us = my_now_us() - m->start_us};

	if (m->internal || !e.seq)
		return;
	mj = my_mask_json(m);
	e.masked_json = mj;
	ev_complete(sess_agent(m->s), &e);
	free(mj);
}

static int server_error(struct my *m, const uint8_t *p, size_t len)
{
	unsigned err;
	char state[6], msg[512];
	const char *t;
	size_t tl;

	if (my_err_fields(p, len, &err, state, &t, &tl))
		return my_violation(m, "database", "malformed ERR packet");
	if (!m->internal) {
		struct ev_error e = {.seq = cur_seq(m), .severity = "ERROR", .sqlstate = state,
				     .message = msg};

		snprintf(msg, sizeof(msg), "%u: %.*s", err, (int)(tl < 400 ? tl : 400), t);
		ev_error(sess_agent(m->s), &e);
	}
	return my_mask_err(m, p, len);
}

/* The answer is done: the next command may come. */
static int done(struct my *m)
{
	if (m->resp == MR_SETTINGS) {
		int ok = m->rs == RS_FIRST && m->coli == (uint64_t)m->settings_cols && m->rows == 1;

		m->resp = MR_NONE;
		m->internal = 0;
		return my_settings_done(m, ok);
	}
	return my_resp_done(m);
}

/*
 * The server opened the cursor the COM_STMT_EXECUTE in flight asked for: the column
 * definitions' EOF (under CLIENT_DEPRECATE_EOF, an OK in the EOF's form in place of rows)
 * says so, and no rows follow. The statement keeps the result's masking plan for its fetches
 * (my_fetch, fetch_packet). A server that says it opened a cursor nobody asked for, after
 * rows, or with more results, is not followed.
 */
static int cursor_opened(struct my *m, const uint8_t *p, size_t len, uint16_t status)
{
	struct my_stmt *t = my_stmt_find(m, m->exec_stmt);

	if (!m->cursor_req || !t || m->rows || (status & MY_SERVER_MORE_RESULTS))
		return my_violation(m, "database", "a cursor the command did not ask for");
	record_complete(m, "CURSOR");
	if (my_forward(m, p, len))
		return -1;
	my_cursor_close(t);
	t->cursor = 1;
	t->cursor_seq = cur_seq(m);
	t->cursor_pol_gen = m->exec_pol_gen;
	t->cursor_rows = t->cursor_bytes = 0;
	t->cursor_mk = my_mask_detach(m);
	m->rs = RS_FIRST;
	return done(m);
}

/* A result set, an OK or an ERR of COM_QUERY / COM_STMT_EXECUTE (and hoopd's own query). */
static int result_packet(struct my *m, const uint8_t *p, size_t len)
{
	uint64_t n, affected = 0;
	uint16_t status;
	size_t off = 0;
	char tag[64];

	switch (m->rs) {
	case RS_FIRST:
		if (!len)
			return my_violation(m, "database", "empty packet where a result begins");
		if (p[0] == 0x00) {
			if (my_ok_read(m, p, len, 0, &status, &affected))
				return my_violation(m, "database", "malformed OK packet");
			snprintf(tag, sizeof(tag), "OK %llu", (unsigned long long)affected);
			m->rows = affected;
			record_complete(m, tag);
			if (my_forward(m, p, len))
				return -1;
			if (status & MY_SERVER_MORE_RESULTS) {
				m->cur++;
				m->rows = m->bytes = 0;
				return 0;
			}
			return done(m);
		}
		if (p[0] == 0xff) {
			if (server_error(m, p, len))
				return -1;
			m->rs = RS_FIRST;
			m->coli = 0;
			if (m->resp == MR_SETTINGS) {
				m->rows = 0; /* the settings query failed */
			}
			return done(m);
		}
		if (p[0] == 0xfb)
			return my_violation(m, "database",
					    "LOCAL INFILE request, which hoopd did not allow");
		if (my_lenenc(p, len, &off, &n) || off != len || !n || n > MY_MAX_COLS)
			return my_violation(m, "database", "malformed result set header");
		m->ncols = n;
		m->coli = 0;
		m->rows = m->bytes = 0;
		m->rs = RS_COLS;
		return my_forward(m, p, len);
	case RS_COLS:
		if (len && p[0] == 0xff) { /* the server gave up mid-result: the answer ends */
			if (server_error(m, p, len))
				return -1;
			m->rs = RS_FIRST;
			return done(m);
		}
		if (my_mask_coldef(m, p, len, m->coli))
			return -1;
		if (my_forward(m, p, len))
			return -1;
		if (++m->coli == m->ncols) {
			m->rs = m->deprecate_eof ? RS_ROWS : RS_COLEOF;
			if (m->deprecate_eof && my_mask_plan(m))
				return -1;
		}
		return 0;
	case RS_COLEOF:
		if (!my_is_eof(p, len, 0))
			return my_violation(m, "database", "no EOF after the column definitions");
		m->rs = RS_ROWS;
		if (my_mask_plan(m))
			return -1;
		if (m->binary && !my_ok_read(m, p, len, 1, &status, NULL) &&
		    (status & MY_SERVER_CURSOR_EXISTS))
			return cursor_opened(m, p, len, status);
		return my_forward(m, p, len);
	case RS_ROWS:
		if (len && p[0] == 0xff) {
			my_mask_result_end(m);
			if (server_error(m, p, len))
				return -1;
			m->rs = RS_FIRST;
			return done(m);
		}
		if (my_is_eof(p, len, m->deprecate_eof)) {
			if (my_ok_read(m, p, len, !m->deprecate_eof, &status, NULL))
				return my_violation(m, "database", "malformed end of rows");
			if (m->binary && (status & MY_SERVER_CURSOR_EXISTS))
				return m->deprecate_eof
					   ? cursor_opened(m, p, len, status)
					   : my_violation(m, "database", "a cursor after rows");
			snprintf(tag, sizeof(tag), "SELECT %llu", (unsigned long long)m->rows);
			record_complete(m, tag);
			my_mask_result_end(m);
			if (my_forward(m, p, len))
				return -1;
			m->rs = RS_FIRST;
			if (status & MY_SERVER_MORE_RESULTS) {
				m->cur++;
				return 0;
			}
			return done(m);
		}
		if (m->binary && (!len || p[0] != 0x00))
			return my_violation(m, "database", "malformed binary row");
		m->rows++;
		m->bytes += len;
		if (m->resp == MR_SETTINGS)
			return my_settings_row(m, p, len) ? my_violation(m, "database",
									  "malformed settings row")
							  : 0;
		return my_mask_row(m, p, len);
	}
	return -1;
}

/*
 * The answer to COM_STMT_FETCH: binary rows of the statement's cursor, masked by the plan its
 * execution made, then an EOF (its OK form under CLIENT_DEPRECATE_EOF) whose status says
 * whether the cursor stays open; or an ERR (the server closes the cursor). Each fetch is a
 * complete record of the statement record that opened the cursor: tag FETCH while it stays
 * open, SELECT and the rows of all its fetches once the last row was sent, WITHHELD when a
 * row could not be masked (the agent got an ERR in place of the rest; hoopd refuses further
 * fetches); rows, bytes and masked counts of this fetch alone.
 */
static int fetch_packet(struct my *m, const uint8_t *p, size_t len)
{
	struct my_stmt *t = my_stmt_find(m, m->exec_stmt);
	uint16_t status;
	char tag[64];
	int open, withheld;

	if (!t)
		return -1; /* not reached: no statement goes while its fetch is in flight */
	if (len && p[0] == 0xff) {
		if (server_error(m, p, len))
			return -1;
		my_cursor_close(t);
		return done(m);
	}
	if (my_is_eof(p, len, m->deprecate_eof)) {
		if (my_ok_read(m, p, len, !m->deprecate_eof, &status, NULL))
			return my_violation(m, "database", "malformed end of fetched rows");
		if (status & MY_SERVER_MORE_RESULTS)
			return my_violation(m, "database", "more results after fetched rows");
		withheld = my_mask_withheld(m);
		/* only a cursor the server says is open stays so for hoopd */
		open = (status & MY_SERVER_CURSOR_EXISTS) && !(status & MY_SERVER_LAST_ROW_SENT) &&
		       !withheld;
		t->cursor_rows += m->rows;
		t->cursor_bytes += m->bytes;
		if (withheld)
			snprintf(tag, sizeof(tag), "WITHHELD");
		else if (open)
			snprintf(tag, sizeof(tag), "FETCH");
		else
			snprintf(tag, sizeof(tag), "SELECT %llu",
				 (unsigned long long)t->cursor_rows);
		record_complete(m, tag);
		if (my_forward(m, p, len))
			return -1;
		if (open) {
			my_mask_counts_clear(m);
			t->cursor_mk = my_mask_detach(m);
		} else {
			my_cursor_close(t);
			t->cursor_withheld = withheld;
		}
		return done(m);
	}
	if (!len || p[0] != 0x00)
		return my_violation(m, "database", "malformed binary row");
	m->rows++;
	m->bytes += len;
	return my_mask_row(m, p, len);
}

int my_server_answer(struct my *m, const uint8_t *p, size_t len)
{
	char tag[32];

	switch (m->resp) {
	case MR_NONE:
		return my_violation(m, "database", "a packet with no command in flight");
	case MR_OK:
		if (len && p[0] == 0xff) {
			if (server_error(m, p, len))
				return -1;
		} else if (len && p[0] == 0x00) {
			uint64_t affected = 0;
			uint16_t st;

			if (my_ok_read(m, p, len, 0, &st, &affected))
				return my_violation(m, "database", "malformed OK packet");
			snprintf(tag, sizeof(tag), "OK %llu", (unsigned long long)affected);
			record_complete(m, tag);
			if (my_forward(m, p, len))
				return -1;
		} else {
			return my_violation(m, "database", "neither OK nor ERR where one belongs");
		}
		return done(m);
	case MR_ONE:
		if (len && p[0] == 0xff) {
			if (server_error(m, p, len))
				return -1;
			return done(m);
		}
		if (m->setopt && !my_is_eof(p, len, 0))
			return my_violation(m, "database", "COM_SET_OPTION answered with neither EOF "
							   "nor ERR");
		if (my_forward(m, p, len))
			return -1;
		return done(m);
	case MR_FIELDS:
		if (len && p[0] == 0xff) {
			if (server_error(m, p, len))
				return -1;
			return done(m);
		}
		if (my_is_eof(p, len, m->deprecate_eof)) {
			uint16_t st;

			if (my_ok_read(m, p, len, !m->deprecate_eof, &st, NULL))
				return my_violation(m, "database", "malformed end of COM_FIELD_LIST");
			record_complete(m, "SHOW");
			return my_forward(m, p, len) ? -1 : done(m);
		}
		return my_forward(m, p, len);
	case MR_PREPARE:
		if (m->prep_ok) {
			if (len && p[0] == 0xff) { /* in place of a definition: the answer ends */
				if (server_error(m, p, len))
					return -1;
				return done(m);
			}
			if (my_forward(m, p, len))
				return -1;
			return --m->prep_skip ? 0 : done(m);
		}
		if (len && p[0] == 0xff) {
			/* hoopd keeps no definition; an EXECUTE of "the last prepared" (id
			 * 0xffffffff, MariaDB) after a failed PREPARE is refused by hoopd */
			m->last_stmt = 0;
			if (server_error(m, p, len))
				return -1;
			return done(m);
		}
		if (len < 12 || p[0] != 0x00)
			return my_violation(m, "database", "malformed COM_STMT_PREPARE answer");
		{
			uint32_t id = my_le32(p + 1);
			uint16_t nc = (uint16_t)my_le16(p + 5), np = (uint16_t)my_le16(p + 7);

			if (my_prepared(m, id, nc, np))
				return -1;
			m->prep_skip = (uint32_t)np + (np && !m->deprecate_eof) + nc +
				       (nc && !m->deprecate_eof);
			m->prep_ok = 1;
			snprintf(tag, sizeof(tag), "PREPARE %u", id);
			record_complete(m, tag);
			if (my_forward(m, p, len))
				return -1;
			return m->prep_skip ? 0 : done(m);
		}
	case MR_RESULT:
	case MR_SETTINGS:
		return result_packet(m, p, len);
	case MR_FETCH:
		return fetch_packet(m, p, len);
	}
	return -1;
}
