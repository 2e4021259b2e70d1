/* A growable byte buffer with a read offset: append at the end, consume from the front.
 * Stands alone; used by the relay and the protocol engines. */
#ifndef HOOP_BUF_H
#define HOOP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t off; /* first unread byte */
	size_t len; /* unread bytes */
	size_t cap;
};

static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->off;
}

/* Room for n more bytes at the tail; returns the tail pointer or NULL (ENOMEM). */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n); /* n bytes were written at the tail */
int buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);
/* An empty buffer gives its memory back (idle connections should hold none); the next append
 * takes a block again, first-size ones from a small cache. Not thread-safe: one loop's buffers. */
void buf_trim(struct buf *b);
size_t buf_tailroom(const struct buf *b);

#endif
