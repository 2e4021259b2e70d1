/*
 * Arrays, element by element: PostgreSQL's text form ("[1:2]={a,"b c",NULL}", nested braces,
 * quotes and backslash escapes) and binary form (ndim, flags, element type, dimensions, then
 * length-prefixed elements) are decoded one element at a time, each element goes through a
 * callback (a column style or the detectors), and the array is rewritten with the same
 * dimensions. A malformed array is unmaskable, never passed through.
 */
#include <string.h>
#include <strings.h>

#include "mask_int.h"

#define ARRAY_MAXDIM 6 /* PostgreSQL's MAXDIM */

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* An element in array_out's spelling: quoted when empty, "NULL", or holding a special char. */
static int put_elem_text(const uint8_t *s, size_t n, struct buf *dst)
{
	int quote = n == 0 || (n == 4 && !strncasecmp((const char *)s, "NULL", 4));

	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == '{' || s[i] == '}' || s[i] == ',' || s[i] == '"' || s[i] == '\\' ||
			is_space(s[i]);
	if (!quote)
		return put(dst, s, n);
	if (put(dst, "\"", 1))
		return -1;
	for (size_t i = 0, a = 0; i <= n; i++) {
		if (i < n && s[i] != '"' && s[i] != '\\')
			continue;
		if (put(dst, s + a, i - a) || (i < n && put(dst, "\\", 1)))
			return -1;
		a = i;
	}
	return put(dst, "\"", 1);
}

/* Runs fn on one decoded element and writes what replaces the raw slice raw[0..rn). */
static int elem_out(mask_elem_fn fn, void *ctx, struct mask_tls *w, const uint8_t *raw, size_t rn,
		    struct buf *dst, int *changed)
{
	int r;

	w->el.len = 0;
	r = fn(ctx, w->eldec.data ? w->eldec.data : (const uint8_t *)"", w->eldec.len, &w->el);
	switch (r) {
	case MV_KEEP:
		return put(dst, raw, rn) ? -1 : 0;
	case MV_VALUE:
		*changed = 1;
		return put_elem_text(w->el.data ? w->el.data : (const uint8_t *)"", w->el.len, dst)
			   ? -1
			   : 0;
	case MV_NULL:
		*changed = 1;
		return put(dst, "NULL", 4) ? -1 : 0;
	default:
		return r;
	}
}

static int array_text(const uint8_t *v, size_t n, mask_elem_fn fn, void *ctx, struct mask_tls *w,
		      struct buf *dst, int *changed)
{
	size_t i = 0;
	int depth = 0, r;

	if (n && v[0] == '[') {
		/* dimension decoration "[lo:hi][lo:hi]=": copied as it is */
		while (i < n && v[i] != '=') {
			if (!mask_isdigit(v[i]) && v[i] != '[' && v[i] != ']' && v[i] != ':' &&
			    v[i] != '-' && v[i] != '+')
				return MV_UNMASKABLE;
			i++;
		}
		if (i >= n)
			return MV_UNMASKABLE;
		if (put(dst, v, ++i))
			return -1;
	}
	while (i < n && is_space(v[i]))
		i++;
	if (i >= n || v[i] != '{')
		return MV_UNMASKABLE;
	while (i < n) {
		uint8_t c = v[i];

		if (c == '{' || c == '}' || c == ',') {
			depth += c == '{' ? 1 : c == '}' ? -1 : 0;
			if (depth < 0 || depth > ARRAY_MAXDIM || put(dst, &c, 1))
				return depth < 0 || depth > ARRAY_MAXDIM ? MV_UNMASKABLE : -1;
			i++;
			if (!depth)
				break;
			continue;
		}
		if (is_space(c)) {
			i++;
			continue;
		}
		if (!depth)
			return MV_UNMASKABLE;
		w->eldec.len = 0;
		if (c == '"') {
			size_t a = i++;

			while (i < n && v[i] != '"') {
				if (v[i] == '\\' && ++i >= n)
					return MV_UNMASKABLE;
				if (put(&w->eldec, v + i, 1))
					return -1;
				i++;
			}
			if (i >= n)
				return MV_UNMASKABLE;
			i++;
			r = elem_out(fn, ctx, w, v + a, i - a, dst, changed);
		} else {
			size_t a = i, keep = 0;
			int escaped = 0;

			while (i < n && v[i] != ',' && v[i] != '}' && v[i] != '{' && v[i] != '"') {
				if (v[i] == '\\') {
					if (++i >= n)
						return MV_UNMASKABLE;
					escaped = 1;
					if (put(&w->eldec, v + i, 1))
						return -1;
					keep = w->eldec.len;
				} else {
					if (put(&w->eldec, v + i, 1))
						return -1;
					if (!is_space(v[i]))
						keep = w->eldec.len;
				}
				i++;
			}
			if (i < n && (v[i] == '{' || v[i] == '"'))
				return MV_UNMASKABLE;
			w->eldec.len = keep; /* unquoted elements lose trailing blanks */
			if (!escaped && keep == 4 &&
			    !strncasecmp((char *)w->eldec.data, "NULL", 4)) {
				if (put(dst, "NULL", 4))
					return -1;
				continue;
			}
			r = elem_out(fn, ctx, w, v + a, i - a, dst, changed);
		}
		if (r)
			return r;
	}
	while (i < n && is_space(v[i]))
		i++;
	return depth == 0 && i == n ? MV_VALUE : MV_UNMASKABLE;
}

static int array_binary(const struct mtype *at, const uint8_t *v, size_t n, mask_elem_fn fn,
			void *ctx, struct mask_tls *w, struct buf *dst, int *changed)
{
	size_t start = dst->len, off, items = 1;
	int32_t ndim, flags;
	int hasnull;

	if (n < 12)
		return MV_UNMASKABLE;
	ndim = (int32_t)mask_be32(v);
	flags = (int32_t)mask_be32(v + 4);
	if (ndim < 0 || ndim > ARRAY_MAXDIM || (flags != 0 && flags != 1) ||
	    mask_be32(v + 8) != at->elem)
		return MV_UNMASKABLE;
	off = 12 + 8 * (size_t)ndim;
	if (n < off)
		return MV_UNMASKABLE;
	for (int d = 0; d < ndim; d++) {
		int32_t dim = (int32_t)mask_be32(v + 12 + 8 * d);

		if (dim < 0 || (dim && items > (n - off) / 4 / (size_t)dim))
			return MV_UNMASKABLE;
		items *= (size_t)dim;
	}
	if (ndim == 0)
		items = 0;
	if (put(dst, v, off))
		return -1;
	hasnull = flags;
	for (size_t k = 0; k < items; k++) {
		int32_t len;
		uint8_t lb[4];
		int r;

		if (n - off < 4)
			return MV_UNMASKABLE;
		len = (int32_t)mask_be32(v + off);
		off += 4;
		if (len == -1) {
			if (put(dst, v + off - 4, 4))
				return -1;
			continue;
		}
		if (len < 0 || (size_t)len > n - off)
			return MV_UNMASKABLE;
		w->el.len = 0;
		r = fn(ctx, v + off, (size_t)len, &w->el);
		if (r == MV_KEEP) {
			if (put(dst, v + off - 4, 4 + (size_t)len))
				return -1;
		} else if (r == MV_VALUE) {
			if (w->el.len > INT32_MAX)
				return MV_UNMASKABLE;
			mask_set_be32(lb, (uint32_t)w->el.len);
			if (put(dst, lb, 4) || put(dst, w->el.data, w->el.len))
				return -1;
			*changed = 1;
		} else if (r == MV_NULL) {
			mask_set_be32(lb, UINT32_MAX);
			if (put(dst, lb, 4))
				return -1;
			hasnull = 1;
			*changed = 1;
		} else {
			return r;
		}
		off += (size_t)len;
	}
	if (off != n)
		return MV_UNMASKABLE;
	if (hasnull)
		mask_set_be32(buf_head(dst) + start + 4, 1);
	return MV_VALUE;
}

int mask_array_map(const struct mtype *at, int format, const uint8_t *v, size_t n, mask_elem_fn fn,
		   void *ctx, struct mask_tls *w, struct buf *dst)
{
	size_t start = dst->len;
	int changed = 0, r;

	if (format == 1)
		r = array_binary(at, v, n, fn, ctx, w, dst, &changed);
	else
		r = array_text(v, n, fn, ctx, w, dst, &changed);
	if (r == MV_VALUE && !changed)
		r = MV_KEEP;
	if (r != MV_VALUE)
		dst->len = start;
	return r;
}
