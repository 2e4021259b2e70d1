/* Growable byte buffer. Compacts before it grows, frees its memory when drained and large. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->off + b->len + n <= b->cap)
		return b->data + b->off + b->len;
	if (b->off && b->len + n <= b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return b->data + b->len;
	}
	{
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		if (b->off) {
			memmove(b->data, b->data + b->off, b->len);
			b->off = 0;
		}
		d = realloc(b->data, cap);
		if (!d) {
			errno = ENOMEM;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	return b->data + b->off + b->len;
}

void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	uint8_t *t = buf_reserve(b, n);

	if (!t)
		return -ENOMEM;
	memcpy(t, p, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->off = 0;
		b->len = 0;
		/* An idle connection should not keep a large result's memory. */
		if (b->cap > 256 * 1024) {
			free(b->data);
			b->data = NULL;
			b->cap = 0;
		}
		return;
	}
	b->off += n;
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

size_t buf_tailroom(const struct buf *b)
{
	return b->cap - b->off - b->len;
}
