/* MySQL/MariaDB packet framing and the packets hoopd writes (mywire.h). */
#include "mywire.h"
#include "myrow.h"

#include <string.h>

int my_packet(const uint8_t *p, size_t n, size_t max, size_t *total, size_t *plen,
	      uint8_t *seq, unsigned *frames, const char **why)
{
	size_t off = 0, pl = 0;
	unsigned f = 0;

	for (;;) {
		uint32_t len;

		if (n - off < 4)
			return MYW_MORE;
		len = my_le24(p + off);
		if (!f)
			*seq = p[3];
		else if (p[off + 3] != (uint8_t)(p[3] + f)) {
			*why = "continuation packet out of sequence";
			return MYW_BAD;
		}
		if (pl + len > max) {
			*why = "packet larger than hoopd accepts";
			return MYW_BAD;
		}
		if (n - off - 4 < len)
			return MYW_MORE;
		off += 4 + (size_t)len;
		pl += len;
		f++;
		if (len < MY_FRAME_MAX)
			break;
	}
	*total = off;
	*plen = pl;
	*frames = f;
	return MYW_OK;
}

void my_join(const uint8_t *p, size_t total, uint8_t *out)
{
	size_t off = 0;

	while (off + 4 <= total) {
		uint32_t len = my_le24(p + off);

		memcpy(out, p + off + 4, len);
		out += len;
		off += 4 + (size_t)len;
	}
}

int my_put_packet(struct buf *out, const void *payload, size_t len, uint8_t *seq)
{
	const uint8_t *q = payload;

	for (;;) {
		size_t n = len > MY_FRAME_MAX ? MY_FRAME_MAX : len;
		uint8_t h[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (*seq)++};

		if (buf_append(out, h, 4) || (n && buf_append(out, q, n)))
			return -1;
		q += n;
		len -= n;
		if (n < MY_FRAME_MAX)
			return 0;
	}
}

int my_put_err(struct buf *out, uint8_t seq, unsigned err, const char *sqlstate,
	       const char *message)
{
	uint8_t b[9 + 512];
	size_t m = strnlen(message, 512);

	b[0] = 0xff;
	b[1] = (uint8_t)err;
	b[2] = (uint8_t)(err >> 8);
	b[3] = '#';
	memcpy(b + 4, sqlstate && strlen(sqlstate) == 5 ? sqlstate : "HY000", 5);
	memcpy(b + 9, message, m);
	return my_put_packet(out, b, 9 + m, &seq);
}

int my_put_ok(struct buf *out, uint8_t seq, uint16_t status)
{
	uint8_t b[7] = {0, 0, 0, (uint8_t)status, (uint8_t)(status >> 8), 0, 0};

	return my_put_packet(out, b, sizeof(b), &seq);
}

int my_lenenc(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
	return my_lenenc_int(p, n, off, v); /* the row codecs' reader (myrow.c) */
}

int my_lenenc_str(const uint8_t *p, size_t n, size_t *off, const uint8_t **s, uint64_t *len)
{
	size_t o = *off;

	if (my_lenenc(p, n, &o, len) || *len > n - o)
		return -1;
	*s = p + o;
	*off = o + (size_t)*len;
	return 0;
}

int my_ok_parse(const uint8_t *p, size_t len, int eof_form, uint16_t *status, uint64_t *rows)
{
	size_t off = 1;
	uint64_t a, id;

	if (!len)
		return -1;
	if (eof_form) {
		/* EOF: 0xfe, warnings, status */
		if (p[0] != 0xfe || len != 5)
			return -1;
		if (rows)
			*rows = 0;
		*status = (uint16_t)my_le16(p + 3);
		return 0;
	}
	if ((p[0] != 0x00 && p[0] != 0xfe) || my_lenenc(p, len, &off, &a) ||
	    my_lenenc(p, len, &off, &id) || len - off < 4)
		return -1; /* status and warnings, then an optional message */
	if (rows)
		*rows = a;
	*status = (uint16_t)my_le16(p + off);
	return 0;
}

int my_ok_track_valid(const uint8_t *p, size_t len)
{
	size_t off = 1, end;
	uint64_t a, n;
	uint16_t status;

	if (my_lenenc(p, len, &off, &a) || my_lenenc(p, len, &off, &a) || len - off < 4)
		return -1;
	status = (uint16_t)my_le16(p + off);
	off += 4;
	if (off == len) /* no info, no changes */
		return status & MY_SERVER_SESSION_STATE_CHANGED ? -1 : 0;
	if (my_lenenc(p, len, &off, &n) || n > len - off)
		return -1; /* the info */
	off += (size_t)n;
	if (!(status & MY_SERVER_SESSION_STATE_CHANGED))
		return off == len ? 0 : -1;
	if (my_lenenc(p, len, &off, &n) || n != len - off)
		return -1; /* the changes, to the end */
	end = len;
	while (off < end) {
		off++; /* the type */
		if (off >= end || my_lenenc(p, end, &off, &n) || n > end - off)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int my_err_fields(const uint8_t *p, size_t len, unsigned *err, char sqlstate[6],
		  const char **msg, size_t *msglen)
{
	if (len < 3 || p[0] != 0xff)
		return -1;
	*err = my_le16(p + 1);
	if (p[3 < len ? 3 : 0] == '#' && len < 9)
		return -1; /* a SQLSTATE marker without its SQLSTATE */
	if (len >= 9 && p[3] == '#') {
		memcpy(sqlstate, p + 4, 5);
		sqlstate[5] = '\0';
		*msg = (const char *)p + 9;
		*msglen = len - 9;
	} else {
		memcpy(sqlstate, "HY000", 6);
		*msg = (const char *)p + 3;
		*msglen = len - 3;
	}
	return 0;
}

unsigned my_errno_for(const char *s, const char **my_sqlstate)
{
	static const struct {
		const char *pg;
		unsigned err;
		const char *state;
	} map[] = {
	    {"42501", MY_ER_SPECIFIC_ACCESS_DENIED, "42000"}, /* denied by the policy */
	    {"42601", MY_ER_PARSE_ERROR, "42000"},	       /* not parsed */
	    {"57014", MY_ER_QUERY_INTERRUPTED, "70100"},      /* cancelled, timed out */
	    {"57P01", MY_ER_SERVER_SHUTDOWN, "08S01"},	       /* hoopd stops */
	    {"54000", MY_ER_NET_PACKET_TOO_LARGE, "08S01"},   /* over a size limit */
	    {"53300", MY_ER_CON_COUNT_ERROR, "08004"},	       /* too many connections */
	    {"0A000", MY_ER_NOT_SUPPORTED_YET, "42000"},
	};

	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(s, map[i].pg)) {
			*my_sqlstate = map[i].state;
			return map[i].err;
		}
	*my_sqlstate = "HY000";
	return MY_ER_UNKNOWN_ERROR;
}
