/* Growable byte buffer. Compacts before it grows, frees its memory when drained and large;
 * buf_trim gives an empty one's memory back, to a small cache of first-size blocks. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FIRST 4096	/* a buffer's first size */
#define CACHED 256	/* first-size blocks kept for reuse: 1 MiB at most */

static void *g_cache[CACHED];
static int g_ncache;

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->off + b->len + n <= b->cap)
		return b->data + b->off + b->len;
	if (!b->data && n <= FIRST && g_ncache) {
		b->data = g_cache[--g_ncache];
		b->cap = FIRST;
		b->off = b->len = 0;
		return b->data;
	}
	if (b->off && b->len + n <= b->cap) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return b->data + b->len;
	}
	{
		size_t cap = b->cap ? b->cap : FIRST;
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

void buf_trim(struct buf *b)
{
	if (b->len || !b->data)
		return;
	if (b->cap == FIRST && g_ncache < CACHED)
		g_cache[g_ncache++] = b->data;
	else
		free(b->data);
	b->data = NULL;
	b->cap = b->off = 0;
}

size_t buf_tailroom(const struct buf *b)
{
	return b->cap - b->off - b->len;
}
