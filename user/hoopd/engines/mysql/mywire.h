/*
 * MySQL/MariaDB client/server protocol framing (issue 17, docs/mysql.md): packets of a 3-byte
 * little-endian length and a 1-byte sequence id, a payload of 0xffffff bytes meaning "more
 * follows in the next packet"; the few packets hoopd writes itself (ERR, OK, COM_QUERY) and
 * the fields it reads. Pure functions over bytes: the engine (mysql.c), its unit test and the
 * framing fuzzer share them.
 */
#ifndef HOOP_MYWIRE_H
#define HOOP_MYWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MY_FRAME_MAX 0xffffffu /* a frame of this length continues in the next one */

/* Capability flags (include/mysql_com.h; MariaDB's extended ones travel separately). */
#define MY_CLIENT_LONG_PASSWORD 0x1u /* MariaDB: 0 in a server greeting means "MariaDB" */
#define MY_CLIENT_CONNECT_WITH_DB 0x8u
#define MY_CLIENT_COMPRESS 0x20u
#define MY_CLIENT_LOCAL_FILES 0x80u
#define MY_CLIENT_IGNORE_SPACE 0x100u
#define MY_CLIENT_PROTOCOL_41 0x200u
#define MY_CLIENT_SSL 0x800u
#define MY_CLIENT_SECURE_CONNECTION 0x8000u
#define MY_CLIENT_MULTI_STATEMENTS (1u << 16)
#define MY_CLIENT_PLUGIN_AUTH (1u << 19)
#define MY_CLIENT_CONNECT_ATTRS (1u << 20)
#define MY_CLIENT_PLUGIN_AUTH_LENENC (1u << 21)
#define MY_CLIENT_SESSION_TRACK (1u << 23)
#define MY_CLIENT_DEPRECATE_EOF (1u << 24)

/*
 * What hoopd lets the two sides agree on: everything else is cleared in the greeting the agent
 * sees and in the answer the server gets. Cleared: COMPRESS (hoopd would read compressed
 * packets), LOCAL_FILES (LOAD DATA LOCAL: the server asks the client for any file it names),
 * IGNORE_SPACE (function names become reserved words: the classifier reads the default),
 * SSL (not terminated by this engine yet), OPTIONAL_RESULTSET_METADATA, ZSTD,
 * QUERY_ATTRIBUTES, MULTI_FACTOR_AUTH, CAPABILITY_EXTENSION, SSL_VERIFY_SERVER_CERT,
 * REMEMBER_OPTIONS, and all of MariaDB's extended capabilities (progress reports, COM_MULTI,
 * bulk execute, extended type info, metadata caching).
 */
#define MY_CAPS_ALLOWED                                                                        \
	(0x1u | 0x2u | 0x4u | MY_CLIENT_CONNECT_WITH_DB | 0x10u | 0x40u | MY_CLIENT_PROTOCOL_41 | \
	 0x400u | 0x1000u | 0x2000u | 0x4000u | MY_CLIENT_SECURE_CONNECTION |                   \
	 MY_CLIENT_MULTI_STATEMENTS | (1u << 17) | (1u << 18) | MY_CLIENT_PLUGIN_AUTH |          \
	 MY_CLIENT_CONNECT_ATTRS | MY_CLIENT_PLUGIN_AUTH_LENENC | (1u << 22) |                   \
	 MY_CLIENT_SESSION_TRACK | MY_CLIENT_DEPRECATE_EOF)

/* Server status flags. */
#define MY_SERVER_MORE_RESULTS 0x0008u
#define MY_SERVER_SESSION_STATE_CHANGED 0x4000u
#define MY_SERVER_CURSOR_EXISTS 0x0040u /* a cursor was opened, or stays open after a fetch */
#define MY_SERVER_LAST_ROW_SENT 0x0080u /* a fetch read the cursor's last row: it is closed */

/* COM_STMT_EXECUTE's flags byte: the cursor types (include/mysql_com.h enum_cursor_type) */
#define MY_CURSOR_TYPE_READ_ONLY 0x01u
#define MY_CURSOR_TYPE_FOR_UPDATE 0x02u
#define MY_CURSOR_TYPE_SCROLLABLE 0x04u

/* Commands (the first byte of a command packet). */
enum my_cmd {
	MY_COM_SLEEP = 0x00,
	MY_COM_QUIT = 0x01,
	MY_COM_INIT_DB = 0x02,
	MY_COM_QUERY = 0x03,
	MY_COM_FIELD_LIST = 0x04,
	MY_COM_STATISTICS = 0x09,
	MY_COM_PROCESS_KILL = 0x0c,
	MY_COM_PING = 0x0e,
	MY_COM_CHANGE_USER = 0x11,
	MY_COM_STMT_PREPARE = 0x16,
	MY_COM_STMT_EXECUTE = 0x17,
	MY_COM_STMT_SEND_LONG_DATA = 0x18,
	MY_COM_STMT_CLOSE = 0x19,
	MY_COM_STMT_RESET = 0x1a,
	MY_COM_SET_OPTION = 0x1b,
	MY_COM_STMT_FETCH = 0x1c,
	MY_COM_RESET_CONNECTION = 0x1f,
};

/* Error numbers hoopd answers with (include/mysqld_error.h). */
#define MY_ER_UNKNOWN_COM_ERROR 1047	    /* 08S01 */
#define MY_ER_PARSE_ERROR 1064		    /* 42000 */
#define MY_ER_UNKNOWN_ERROR 1105	    /* HY000 */
#define MY_ER_SPECIFIC_ACCESS_DENIED 1227   /* 42000 */
#define MY_ER_QUERY_INTERRUPTED 1317	    /* 70100 */
#define MY_ER_SERVER_SHUTDOWN 1053	    /* 08S01 */
#define MY_ER_NET_PACKET_TOO_LARGE 1153	    /* 08S01 */
#define MY_ER_HANDSHAKE_ERROR 1043	    /* 08S01 */
#define MY_ER_NOT_SUPPORTED_YET 1235	    /* 42000 */
#define MY_ER_CON_COUNT_ERROR 1040	    /* 08004 */
#define MY_ER_UNKNOWN_STMT_HANDLER 1243	    /* HY000 */
#define MY_ER_STMT_HAS_NO_OPEN_CURSOR 1421  /* HY000 */

static inline uint32_t my_le16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t my_le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline uint32_t my_le32(const uint8_t *p)
{
	return my_le16(p) | my_le16(p + 2) << 16;
}

/*
 * One logical packet at the head of p[0..n): its frames joined. MYW_MORE: not all of it is
 * there yet; MYW_BAD: over max bytes (why says); MYW_OK with *total (bytes of every frame, with
 * headers), *plen (the payload's length), *seq (the first frame's sequence id), *frames.
 * The payload is p + 4 when frames == 1; otherwise my_join copies it out.
 */
enum { MYW_OK = 0, MYW_MORE = 1, MYW_BAD = 2 };
int my_packet(const uint8_t *p, size_t n, size_t max, size_t *total, size_t *plen,
	      uint8_t *seq, unsigned *frames, const char **why);
/* Copy the payload of a whole logical packet (my_packet's) into out (plen bytes). */
void my_join(const uint8_t *p, size_t total, uint8_t *out);

/* Append payload as packets (split at 0xffffff) with sequence ids from *seq on; *seq moves. */
int my_put_packet(struct buf *out, const void *payload, size_t len, uint8_t *seq);
/* An ERR packet: 0xff, errno, '#', sqlstate, message. */
int my_put_err(struct buf *out, uint8_t seq, unsigned err, const char *sqlstate,
	       const char *message);
/* An OK packet with no rows affected and status. */
int my_put_ok(struct buf *out, uint8_t seq, uint16_t status);

/* A length-encoded integer at p[*off..n): 0 with *v and *off past it, -1 when it does not fit
 * or starts with 0xfb (NULL) or 0xff. */
int my_lenenc(const uint8_t *p, size_t n, size_t *off, uint64_t *v);
/* A length-encoded string: 0 with *s, *len; -1 as above or when it overruns. */
int my_lenenc_str(const uint8_t *p, size_t n, size_t *off, const uint8_t **s, uint64_t *len);

/* The packet is an EOF packet (or, with CLIENT_DEPRECATE_EOF, the OK packet that replaces it
 * at the end of rows): 0xfe and shorter than a row starting with an 8-byte length could be. */
static inline int my_is_eof(const uint8_t *p, size_t len, int deprecate_eof)
{
	return len > 0 && p[0] == 0xfe && (deprecate_eof ? len < MY_FRAME_MAX : len < 9);
}

/* An OK packet (0x00 or, at the end of rows, 0xfe: affected rows, last insert id, status,
 * warnings) or, with eof_form, an EOF packet (0xfe, warnings, status): 0 with *status (and
 * affected rows into *rows when not NULL), or -1 when it does not read as one. */
int my_ok_parse(const uint8_t *p, size_t len, int eof_form, uint16_t *status, uint64_t *rows);
/* With CLIENT_SESSION_TRACK agreed, an OK's tail (after status and warnings) is its info as a
 * length-encoded string and, when the status says SESSION_STATE_CHANGED, the session state
 * changes (entries of a type byte and a length-encoded value): 0 when p (an OK that
 * my_ok_parse read) is exactly that, -1 otherwise. */
int my_ok_track_valid(const uint8_t *p, size_t len);

/* An ERR packet's fields: errno, sqlstate ("HY000" when the packet has none) and message
 * (not NUL-terminated). 0, or -1 when malformed. */
int my_err_fields(const uint8_t *p, size_t len, unsigned *err, char sqlstate[6],
		  const char **msg, size_t *msglen);

/* The MySQL error number for a refusal hoopd words with a PostgreSQL-style SQLSTATE (the gate
 * and approvals speak those), and the SQLSTATE a MySQL client gets with it. */
unsigned my_errno_for(const char *pg_sqlstate, const char **my_sqlstate);

#endif
