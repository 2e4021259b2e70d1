/*
 * Content detectors: identifiers found inside text values that no column rule masked. One
 * Hyperscan database (block mode, compiled once per engine) reports where candidates end; a
 * validator per expression re-finds the boundaries in the value and checks what a regular
 * expression cannot (SSN area/group/serial, Luhn, octets <= 255, calendar dates, column
 * context). Matches are replaced in place with characters that are safe in JSON strings, CSV
 * and COPY text; inside JSON, a match in a bare number turns the number into a string.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "mask_int.h"

#define MAX_TRIGGERS (1u << 22) /* per scan: past this the statement fails closed */

struct pat_def {
	const char *expr; /* NULL: the policy's mrn_pattern */
	enum mask_detector det;
	unsigned flags;
};

static const struct pat_def pats[PAT_COUNT] = {
    [PAT_SSN_DASH] = {"\\d{3}-\\d{2}-\\d{4}", DET_US_SSN, 0},
    [PAT_SSN_SPACE] = {"\\d{3} \\d{2} \\d{4}", DET_US_SSN, 0},
    [PAT_SSN_BARE] = {"\\d{9}", DET_US_SSN, 0},
    [PAT_EMAIL] = {"[A-Za-z0-9._%+\\-]@[A-Za-z0-9\\-]", DET_EMAIL, 0},
    [PAT_PHONE_PAREN] = {"\\(\\d{3}\\)[ .\\-]?\\d{3}[ .\\-]\\d{4}", DET_PHONE, 0},
    [PAT_PHONE_SEP] = {"\\d{3}[ .\\-]\\d{3}[ .\\-]\\d{4}", DET_PHONE, 0},
    [PAT_PHONE_PLUS1] = {"\\+1[ .\\-]?\\(?\\d{3}\\)?[ .\\-]?\\d{3}[ .\\-]?\\d{4}", DET_PHONE, 0},
    [PAT_PHONE_E164] = {"\\+[1-9]\\d{7}", DET_PHONE, 0},
    [PAT_CARD] = {"\\d(?:[ \\-]?\\d){12}", DET_CREDIT_CARD, 0},
    [PAT_MRN] = {NULL, DET_MRN, HS_FLAG_SOM_LEFTMOST},
    [PAT_DOB_ISO] = {"\\d{4}-\\d{2}-\\d{2}", DET_DOB, 0},
    [PAT_DOB_SLASH] = {"\\d{1,2}/\\d{1,2}/\\d{4}", DET_DOB, 0},
    [PAT_DOB_DOT] = {"\\d{1,2}\\.\\d{1,2}\\.\\d{4}", DET_DOB, 0},
    [PAT_DOB_COMPACT] = {"\\d{8}", DET_DOB, 0},
    [PAT_IPV4] = {"\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}", DET_IPV4, 0},
};

/* One database of the patterns whose detectors are on, numeric (needs_digits) or not. */
static int compile_db(struct mask_engine *me, int numeric, hs_database_t **db, char *err,
		      size_t errn)
{
	const char *exprs[PAT_COUNT];
	unsigned flags[PAT_COUNT], ids[PAT_COUNT];
	unsigned n = 0;
	hs_compile_error_t *ce = NULL;

	for (int i = 0; i < PAT_COUNT; i++) {
		int is_num = i != PAT_EMAIL && i != PAT_MRN;

		if (is_num != numeric || !(me->mp.detectors & (1u << pats[i].det)))
			continue;
		exprs[n] = pats[i].expr ? pats[i].expr : me->mp.mrn_pattern;
		flags[n] = pats[i].flags;
		ids[n] = (unsigned)i;
		n++;
	}
	*db = NULL;
	if (!n)
		return 0;
	if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_BLOCK, NULL, db, &ce) != HS_SUCCESS) {
		int at = ce ? ce->expression : -1;

		if (at >= 0 && ids[at] == PAT_MRN)
			snprintf(err, errn, "masking: mrn_pattern \"%s\": %s", me->mp.mrn_pattern,
				 ce->message);
		else
			snprintf(err, errn, "masking: detectors: %s",
				 ce ? ce->message : "Hyperscan failed");
		hs_free_compile_error(ce);
		*db = NULL;
		return -1;
	}
	return 0;
}

/*
 * A literal every match of the MRN pattern starts with: its leading letters, digits and "-_:#/"
 * before any other regex syntax, when the pattern has no alternation. A quantifier right after
 * makes the last of them optional, so it is dropped. Empty when nothing is certain.
 */
static void mrn_prefix(struct mask_engine *me)
{
	const char *pat = me->mp.mrn_pattern;
	size_t k = 0;

	me->mrn_prefix_len = 0;
	if (strchr(pat, '|'))
		return;
	while (pat[k] && k < sizeof(me->mrn_prefix) - 1 &&
	       (mask_isalnum((unsigned char)pat[k]) || strchr("-_:#/", pat[k])))
		k++;
	if (k && pat[k] && strchr("?*{", pat[k]))
		k--;
	memcpy(me->mrn_prefix, pat, k);
	me->mrn_prefix[k] = '\0';
	me->mrn_prefix_len = k;
}

int mask_detect_compile(struct mask_engine *me, char *err, size_t errn)
{
	mrn_prefix(me);
	if (compile_db(me, 0, &me->db_lit, err, errn) || compile_db(me, 1, &me->db_num, err, errn))
		return -1;
	return 0;
}

/* ---- scanning ---- */

struct scan_ctx {
	struct mask_tls *w;
	size_t first; /* this scan's first trigger */
	int fail;
};

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
		    unsigned int flags, void *arg)
{
	struct scan_ctx *c = arg;
	struct mask_tls *w = c->w;
	int64_t l = w->last[id];

	(void)flags;
	/* A run of digits reports at every end; every validator either takes the whole run or
	 * needs a non-digit after the match, so consecutive ends keep only the last (MRN: their
	 * union). */
	if (l >= (int64_t)c->first && w->trig[l].to + 1 == to) {
		w->trig[l].to = (uint32_t)to;
		if (from < w->trig[l].from)
			w->trig[l].from = (uint32_t)from;
		return 0;
	}
	if (w->ntrig == w->captrig) {
		size_t cap = w->captrig ? 2 * w->captrig : 256;
		struct mask_trig *t;

		if (cap > MAX_TRIGGERS || !(t = realloc(w->trig, cap * sizeof(*t)))) {
			c->fail = 1;
			return 1;
		}
		w->trig = t;
		w->captrig = cap;
	}
	w->last[id] = (int64_t)w->ntrig;
	w->trig[w->ntrig++] = (struct mask_trig){id, (uint32_t)from, (uint32_t)to};
	return 0;
}

static int trig_cmp(const void *a, const void *b)
{
	const struct mask_trig *x = a, *y = b;

	return x->to < y->to ? -1 : x->to > y->to;
}

/*
 * Could p[0..n) hold a numeric identifier? Every match of the numeric patterns is made of
 * digits and the separators " -.()/+" only, and holds at least six digits, or four digits and
 * three dots (an IPv4 address). So only a run of those characters that has as many can hold
 * one; prose with a few small numbers skips the numeric database, whose automata wake at every
 * digit. Digits are found sixteen bytes at a time.
 */
static const uint8_t num_class[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, [' '] = 2, ['-'] = 2,
    ['.'] = 3, ['('] = 2, [')'] = 2, ['/'] = 2, ['+'] = 2,
};

size_t mask_next_digit(const uint8_t *p, size_t i, size_t n)
{
	if (i >= n)
		return n;
#ifdef __SSE2__
	const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);

	for (; i + 16 <= n; i += 16) {
		__m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(p + i)), zero);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(x, nine), x));

		if (m)
			return i + (size_t)__builtin_ctz(m);
	}
#endif
	for (; i < n; i++)
		if (mask_isdigit(p[i]))
			return i;
	return n;
}

int mask_detect_numeric_candidate(const uint8_t *p, size_t n, unsigned ctx)
{
	/* without a birth-date context the shortest numeric identifier has eight digits (E.164) */
	int need = ctx & 1u << DET_DOB ? 6 : 8;

	for (size_t i = mask_next_digit(p, 0, n); i < n; i = mask_next_digit(p, i, n)) {
		int digits = 0, dots = 0;

		for (; i < n && num_class[p[i]]; i++) {
			digits += num_class[p[i]] == 1;
			dots += num_class[p[i]] == 3;
		}
		if (digits >= need || (digits >= 4 && dots >= 3))
			return 1;
	}
	return 0;
}

static int scan_db(const hs_database_t *db, struct mask_tls *w, const uint8_t *p, size_t n,
		   size_t shift)
{
	struct scan_ctx c = {w, w->ntrig, 0};
	hs_error_t r;

	if (!n)
		return 0;
	if (n > UINT32_MAX - 1 - shift)
		return -1;
	for (int i = 0; i < PAT_COUNT; i++)
		w->last[i] = -1;
	r = hs_scan(db, (const char *)p, (unsigned int)n, 0, w->scratch, on_match, &c);
	if (c.fail || (r != HS_SUCCESS && r != HS_SCAN_TERMINATED)) {
		w->ntrig = c.first;
		return -1;
	}
	for (size_t i = c.first; shift && i < w->ntrig; i++) {
		w->trig[i].from += (uint32_t)shift;
		w->trig[i].to += (uint32_t)shift;
	}
	return 0;
}

/* Does p[0..n) hold lit[0..k)? Candidates by their first two bytes, sixteen at a time. */
static int find_prefix(const uint8_t *p, size_t n, const char *lit, size_t k)
{
	size_t i = 0;

	if (k > n)
		return 0;
	if (k == 1)
		return memchr(p, lit[0], n) != NULL;
#ifdef __SSE2__
	{
		const __m128i c0 = _mm_set1_epi8(lit[0]), c1 = _mm_set1_epi8(lit[1]);

		for (; i + 17 <= n; i += 16) {
			__m128i a = _mm_loadu_si128((const __m128i *)(p + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(p + i + 1));
			unsigned m = (unsigned)_mm_movemask_epi8(
			    _mm_and_si128(_mm_cmpeq_epi8(a, c0), _mm_cmpeq_epi8(b, c1)));

			while (m) {
				size_t j = i + (size_t)__builtin_ctz(m);

				if (j + k <= n && !memcmp(p + j, lit, k))
					return 1;
				m &= m - 1;
			}
		}
	}
#endif
	for (; i + k <= n; i++)
		if (p[i] == (uint8_t)lit[0] && !memcmp(p + i, lit, k))
			return 1;
	return 0;
}

int mask_detect_scan_lit(const struct mask_engine *me, struct mask_tls *w, const uint8_t *p,
			 size_t n)
{
	unsigned d = me->mp.detectors;

	if (!me->db_lit || !n)
		return 0;
	if (!((d & 1u << DET_EMAIL) && memchr(p, '@', n)) &&
	    !((d & 1u << DET_MRN) &&
	      (!me->mrn_prefix_len || find_prefix(p, n, me->mrn_prefix, me->mrn_prefix_len))))
		return 0;
	return scan_db(me->db_lit, w, p, n, 0);
}

int mask_detect_scan_num(const struct mask_engine *me, struct mask_tls *w, const uint8_t *p,
			 size_t n, unsigned ctx, size_t shift, size_t from)
{
	if (!me->db_num || from >= n || !mask_detect_numeric_candidate(p + from, n - from, ctx))
		return 0;
	return scan_db(me->db_num, w, p, n, shift);
}

void mask_detect_sort(struct mask_tls *w, size_t first)
{
	int sorted = 1;

	for (size_t i = first + 1; i < w->ntrig && sorted; i++)
		sorted = w->trig[i - 1].to <= w->trig[i].to;
	if (!sorted)
		qsort(w->trig + first, w->ntrig - first, sizeof(*w->trig), trig_cmp);
}

/* ---- validators: p[0..n) is the value, e the end of a candidate ---- */

static int dig(const uint8_t *p, size_t n, size_t i)
{
	return i < n && mask_isdigit(p[i]);
}

/* no digit right before s (s may be 0) and none at e */
static int bounded(const uint8_t *p, size_t n, size_t s, size_t e)
{
	return (s == 0 || !mask_isdigit(p[s - 1])) && !dig(p, n, e);
}

static int digits_at(const uint8_t *p, size_t n, size_t i, size_t k)
{
	for (size_t j = 0; j < k; j++)
		if (!dig(p, n, i + j))
			return 0;
	return 1;
}

static int num(const uint8_t *p, size_t k)
{
	int v = 0;

	for (size_t i = 0; i < k; i++)
		v = v * 10 + (p[i] - '0');
	return v;
}

int mask_ssn_valid(const uint8_t d[9])
{
	int area = num(d, 3), group = num(d + 3, 2), serial = num(d + 5, 4);

	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

static int add_span(struct mask_tls *w, size_t s, size_t e, enum mask_detector det)
{
	if (w->nspans == w->capspans) {
		size_t cap = w->capspans ? 2 * w->capspans : 32;
		struct mask_span *sp = realloc(w->spans, cap * sizeof(*sp));

		if (!sp)
			return -1;
		w->spans = sp;
		w->capspans = cap;
	}
	w->spans[w->nspans++] = (struct mask_span){(uint32_t)s, (uint32_t)e, (uint16_t)(1u << det)};
	return 0;
}

static int v_ssn(const uint8_t *p, size_t n, size_t e, int sep, size_t *s)
{
	uint8_t d[9];

	if (sep) {
		if (e < 11)
			return 0;
		*s = e - 11;
		if (p[*s + 3] != p[*s + 6])
			return 0; /* 123-45 6789 */
		memcpy(d, p + *s, 3);
		memcpy(d + 3, p + *s + 4, 2);
		memcpy(d + 5, p + *s + 7, 4);
	} else {
		if (e < 9)
			return 0;
		*s = e - 9;
		memcpy(d, p + *s, 9);
	}
	return bounded(p, n, *s, e) && mask_ssn_valid(d);
}

static int local_char(int c)
{
	return mask_isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/*
 * The local part runs left from the '@' over its characters; the domain ends after the last
 * top-level label of two or more letters, even when more text follows without a break
 * ("jane@example.com123-45-6789" is an email and an SSN).
 */
static int v_email(const uint8_t *p, size_t n, size_t e, size_t *s, size_t *end)
{
	size_t at, l, r, best = 0;

	if (e < 3)
		return 0;
	at = e - 2;
	for (l = at; l > 0 && local_char(p[l - 1]); l--)
		;
	for (r = at + 1; r < n && (mask_isalnum(p[r]) || p[r] == '-' || p[r] == '.'); r++)
		;
	for (size_t i = at + 2; i < r; i++) {
		size_t k = i + 1;

		if (p[i] != '.' || p[i - 1] == '.')
			continue;
		while (k < r && ((p[k] | 32) >= 'a' && (p[k] | 32) <= 'z'))
			k++;
		if (k - i - 1 >= 2)
			best = k;
	}
	if (l == at || !best)
		return 0;
	*s = l;
	*end = best;
	return 1;
}

static int phone_sep(int c)
{
	return c == ' ' || c == '.' || c == '-';
}

/* "+1 ", "1-", "+1" before a national number: masked with it */
static size_t phone_prefix(const uint8_t *p, size_t s)
{
	size_t t = s;

	if (t >= 1 && phone_sep(p[t - 1]))
		t--;
	if (t >= 1 && p[t - 1] == '1' && (t < 2 || !mask_isdigit(p[t - 2]))) {
		t--;
		if (t >= 1 && p[t - 1] == '+')
			t--;
		return t;
	}
	return s;
}

static int v_phone_paren(const uint8_t *p, size_t n, size_t e, size_t *s)
{
	for (size_t len = 14; len >= 13; len--) {
		size_t a;

		if (e < len)
			continue;
		a = e - len;
		if (p[a] == '(' && digits_at(p, n, a + 1, 3) && p[a + 4] == ')' &&
		    (len == 13 || phone_sep(p[a + 5])) && digits_at(p, n, e - 8, 3) &&
		    phone_sep(p[e - 5]) && digits_at(p, n, e - 4, 4) && !dig(p, n, e)) {
			*s = phone_prefix(p, a);
			return 1;
		}
	}
	return 0;
}

static int v_phone_sep(const uint8_t *p, size_t n, size_t e, size_t *s)
{
	if (e < 12)
		return 0;
	*s = e - 12;
	if (!bounded(p, n, *s, e))
		return 0;
	*s = phone_prefix(p, *s);
	return 1;
}

/* "+1" [sep] ["("] ddd [")"] [sep] ddd [sep] dddd, exactly p[s..e) */
static int plus1_shape(const uint8_t *p, size_t s, size_t e)
{
	size_t i = s + 2;

	if (i < e && phone_sep(p[i]))
		i++;
	if (i < e && p[i] == '(')
		i++;
	if (!digits_at(p, e, i, 3))
		return 0;
	i += 3;
	if (i < e && p[i] == ')')
		i++;
	if (i < e && phone_sep(p[i]))
		i++;
	if (!digits_at(p, e, i, 3))
		return 0;
	i += 3;
	if (i < e && phone_sep(p[i]))
		i++;
	return digits_at(p, e, i, 4) && i + 4 == e;
}

static int v_phone_plus1(const uint8_t *p, size_t n, size_t e, size_t *s)
{
	if (dig(p, n, e) || e < 12)
		return 0;
	for (size_t a = e - 12 + 1; a-- > 0 && e - a <= 20;)
		if (p[a] == '+' && p[a + 1] == '1' && plus1_shape(p, a, e)) {
			*s = a;
			return 1;
		}
	return 0;
}

static int v_e164(const uint8_t *p, size_t n, size_t e, size_t *s, size_t *end)
{
	size_t i = e, r = e;

	while (i > 0 && mask_isdigit(p[i - 1]))
		i--;
	if (i == 0 || p[i - 1] != '+' || p[i] == '0')
		return 0;
	while (dig(p, n, r))
		r++;
	if (r - i < 8 || r - i > 15)
		return 0;
	*s = i - 1;
	*end = r;
	return 1;
}

static int card_sep(int c)
{
	return c == ' ' || c == '-';
}

static int luhn(const uint8_t *d, size_t k)
{
	int sum = 0;

	for (size_t i = 0; i < k; i++) {
		int x = d[k - 1 - i];

		if (i & 1) {
			x *= 2;
			if (x > 9)
				x -= 9;
		}
		sum += x;
	}
	return sum % 10 == 0;
}

/*
 * Cards: the run of digit groups (single spaces or dashes between) around the candidate; from
 * every group on, the longest stretch of whole groups holding 13 to 19 digits that passes Luhn
 * is a card (overlapping ones merge). *done is where the run ends, so later candidates in it
 * are skipped.
 */
static int v_card(struct mask_tls *w, const uint8_t *p, size_t n, size_t e, size_t *done)
{
	size_t a = e - 1, b = e, g = 0;

	while (a > 0 &&
	       (mask_isdigit(p[a - 1]) || (card_sep(p[a - 1]) && a >= 2 && mask_isdigit(p[a - 2]))))
		a--;
	while (b < n && (mask_isdigit(p[b]) || (card_sep(p[b]) && dig(p, n, b + 1))))
		b++;
	*done = b;
	/* g: the start of a group; try the groups from it while they hold at most 19 digits */
	for (g = a; g < b;) {
		uint8_t d[20];
		size_t k = 0, q = g, best = 0, next;

		while (q < b && k <= 19) {
			while (q < b && mask_isdigit(p[q]) && k < 20)
				d[k++] = (uint8_t)(p[q++] - '0');
			if (q < b && mask_isdigit(p[q]))
				break; /* a group of 20 digits or more: no card here */
			if (k >= 13 && k <= 19 && luhn(d, k))
				best = q;
			q++; /* the separator */
		}
		/* every start is tried: an early false candidate must not hide a real card */
		if (best && add_span(w, g, best, DET_CREDIT_CARD))
			return -1;
		for (next = g; next < b && mask_isdigit(p[next]); next++)
			;
		g = next + 1;
	}
	return 0;
}

static int v_date_parts(int y, int m, int d)
{
	return y >= 1000 && y <= 2999 && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static int v_dob(int pat, const uint8_t *p, size_t n, size_t e, size_t *s)
{
	switch (pat) {
	case PAT_DOB_ISO:
		if (e < 10)
			return 0;
		*s = e - 10;
		return bounded(p, n, *s, e) &&
		       v_date_parts(num(p + *s, 4), num(p + *s + 5, 2), num(p + *s + 8, 2));
	case PAT_DOB_COMPACT:
		if (e < 8)
			return 0;
		*s = e - 8;
		return bounded(p, n, *s, e) &&
		       v_date_parts(num(p + *s, 4), num(p + *s + 4, 2), num(p + *s + 6, 2));
	default: {
		/* d[d]/d[d]/dddd or with dots: month/day either way round */
		uint8_t sep = pat == PAT_DOB_SLASH ? '/' : '.';
		size_t i, j;
		int a, b;

		if (e < 8 || p[e - 5] != sep)
			return 0;
		for (i = e - 5; i > 0 && mask_isdigit(p[i - 1]) && e - 5 - i < 2; i--)
			;
		if (i == e - 5 || i == 0 || p[i - 1] != sep)
			return 0;
		b = num(p + i, e - 5 - i);
		for (j = i - 1; j > 0 && mask_isdigit(p[j - 1]) && i - 1 - j < 2; j--)
			;
		if (j == i - 1)
			return 0;
		a = num(p + j, i - 1 - j);
		*s = j;
		if (!bounded(p, n, j, e) || (j > 0 && p[j - 1] == sep))
			return 0;
		return v_date_parts(num(p + e - 4, 4), a, b) ||
		       v_date_parts(num(p + e - 4, 4), b, a);
	}
	}
}

static int v_ipv4(const uint8_t *p, size_t n, size_t e, size_t *s)
{
	size_t i = e;

	if (dig(p, n, e) || (e < n && p[e] == '.' && dig(p, n, e + 1)))
		return 0;
	for (int g = 0; g < 4; g++) {
		size_t r = i;
		int v = 0;

		while (i > 0 && mask_isdigit(p[i - 1]) && r - i < 4)
			i--;
		if (i == r || r - i > 3)
			return 0;
		for (size_t k = i; k < r; k++)
			v = v * 10 + (p[k] - '0');
		if (v > 255)
			return 0;
		if (g < 3) {
			if (i == 0 || p[i - 1] != '.')
				return 0;
			i--;
		}
	}
	if (i > 0 &&
	    (mask_isdigit(p[i - 1]) || (p[i - 1] == '.' && i >= 2 && mask_isdigit(p[i - 2]))))
		return 0;
	*s = i;
	return 1;
}

/* ---- replacing ---- */

static int span_cmp(const void *a, const void *b)
{
	const struct mask_span *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s ? 1 : (x->e > y->e) - (x->e < y->e);
}

static int put(struct buf *b, const void *p, size_t n)
{
	return n && buf_append(b, p, n) ? -1 : 0;
}

/* In a JSON string: the end of the escape sequence that starts at v[i] ('\\'), else i + 1. */
static size_t json_step(const uint8_t *v, size_t n, size_t i)
{
	if (v[i] != '\\')
		return i + 1;
	if (i + 1 < n && v[i + 1] == 'u')
		return i + 6 < n ? i + 6 : n;
	return i + 2 < n ? i + 2 : n;
}

enum { REPL_PLAIN = 0, REPL_JSON_STRING, REPL_JSON_QUOTED };

/*
 * One match's replacement: partial keeps the last four digits of an SSN, phone or card (and
 * nothing of anything else), redact stars every letter and digit, hash and format_preserving
 * as for columns. Punctuation inside the match stays. In a JSON string escape sequences are
 * copied whole; in a number turned string, quotes, backslashes and controls become '*'.
 */
static int put_replacement(const struct mask_engine *me, enum mask_style st, unsigned dets,
			   int mode, const uint8_t *v, size_t n, struct buf *dst)
{
	size_t keep_from = n, on = 0;
	uint64_t seed = 0;
	uint8_t *o;

	if (st == MASK_HASH)
		return mask_put_hash_text(me, v, n, dst) ? -1 : 0;
	if (st == MASK_FORMAT_PRESERVING) {
		uint8_t h[32];

		mask_hmac(me, "fp:", 3, v, n, h);
		seed = mask_u64(h) ^ mask_u64(h + 8);
	}
	if (st == MASK_PARTIAL && (dets == 1u << DET_US_SSN || dets == 1u << DET_PHONE ||
				   dets == 1u << DET_CREDIT_CARD)) {
		int k = 0;

		for (size_t i = n; i-- > 0 && k < 4;)
			if (mask_isdigit(v[i])) {
				k++;
				keep_from = i;
			}
	}
	o = buf_reserve(dst, n ? n : 1);
	if (!o)
		return -1;
	for (size_t i = 0; i < n;) {
		uint8_t c = v[i];

		if (mode == REPL_JSON_STRING && c == '\\') {
			size_t j = json_step(v, n, i);

			memcpy(o + on, v + i, j - i);
			on += j - i;
			i = j;
			continue;
		}
		if (mask_isalnum(c) && st == MASK_FORMAT_PRESERVING) {
			uint64_t r = mask_mix(&seed);

			c = (uint8_t)(mask_isdigit(c) ? '0' + r % 10
				      : c >= 'a'      ? 'a' + r % 26
						      : 'A' + r % 26);
		} else if (mask_isalnum(c) && i < keep_from) {
			c = '*';
		} else if (mode == REPL_JSON_QUOTED && (c == '"' || c == '\\' || c < 0x20)) {
			c = '*';
		}
		o[on++] = c;
		i++;
	}
	buf_commit(dst, on);
	return 0;
}

static int json_number_char(int c)
{
	return mask_isdigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
}

/* The triggers t0..t1 that validate, as spans of v in w->spans: 0 or -1 (ENOMEM). */
static int detect_spans(struct mask_tls *w, unsigned ctx, const uint8_t *v, size_t n, size_t shift,
			size_t t0, size_t t1)
{
	size_t card_done = 0, e164_done = 0;

	w->nspans = 0;
	for (size_t k = t0; k < t1; k++) {
		const struct mask_trig *t = &w->trig[k];
		size_t e, s = 0, end;
		int ok = 0;

		if (t->to <= shift || t->to - shift > n)
			continue;
		e = t->to - shift;
		end = e;
		switch (t->pat) {
		case PAT_SSN_DASH:
		case PAT_SSN_SPACE:
			ok = v_ssn(v, n, e, 1, &s);
			break;
		case PAT_SSN_BARE:
			ok = (ctx & 1u << DET_US_SSN) && v_ssn(v, n, e, 0, &s);
			break;
		case PAT_EMAIL:
			ok = v_email(v, n, e, &s, &end);
			break;
		case PAT_PHONE_PAREN:
			ok = v_phone_paren(v, n, e, &s);
			break;
		case PAT_PHONE_SEP:
			ok = v_phone_sep(v, n, e, &s);
			break;
		case PAT_PHONE_PLUS1:
			ok = v_phone_plus1(v, n, e, &s);
			break;
		case PAT_PHONE_E164:
			if (e <= e164_done)
				break;
			ok = v_e164(v, n, e, &s, &end);
			if (ok)
				e164_done = end;
			break;
		case PAT_CARD:
			if (e <= card_done)
				break;
			if (v_card(w, v, n, e, &card_done))
				return -1;
			break;
		case PAT_MRN:
			s = t->from > shift ? t->from - shift : 0;
			ok = s < e;
			break;
		case PAT_DOB_ISO:
		case PAT_DOB_SLASH:
		case PAT_DOB_DOT:
		case PAT_DOB_COMPACT:
			ok = (ctx & 1u << DET_DOB) && v_dob((int)t->pat, v, n, e, &s);
			break;
		case PAT_IPV4:
			ok = v_ipv4(v, n, e, &s);
			break;
		}
		if (ok && add_span(w, s, end, pats[t->pat].det))
			return -1;
	}
	return 0;
}

/* Sorts and merges overlapping spans, counting each merged span once per detector in det. */
static void merge_spans(struct mask_tls *w, uint64_t det[DET_COUNT])
{
	size_t nm = 0;

	qsort(w->spans, w->nspans, sizeof(*w->spans), span_cmp);
	for (size_t i = 0; i < w->nspans; i++) {
		if (nm && w->spans[i].s < w->spans[nm - 1].e) {
			if (w->spans[i].e > w->spans[nm - 1].e)
				w->spans[nm - 1].e = w->spans[i].e;
			w->spans[nm - 1].dets |= w->spans[i].dets;
		} else {
			w->spans[nm++] = w->spans[i];
		}
	}
	w->nspans = nm;
	for (size_t i = 0; i < nm; i++)
		for (int d = 0; d < DET_COUNT; d++)
			if (det && (w->spans[i].dets & 1u << d))
				det[d]++;
}

/* v with every span of w replaced, appended to dst: MV_VALUE or -1 (dst as it was). */
static int replace_spans(const struct mask_engine *me, const struct mask_tls *w, int json,
			 const uint8_t *v, size_t n, struct buf *dst)
{
	size_t pos = 0, jpos = 0, nm = w->nspans;
	size_t start = dst->len;
	int in_str = 0;
	enum mask_style st = me->mp.detector_style;

	for (size_t i = 0; i < nm; i++) {
		size_t a = w->spans[i].s, b = w->spans[i].e;
		int mode = REPL_PLAIN;

		if (a < pos)
			continue; /* inside a JSON number already rewritten */
		if (json) {
			/* where the match starts: in a string (not inside an escape), or not */
			for (; jpos < a; jpos = in_str ? json_step(v, n, jpos) : jpos + 1)
				if (v[jpos] == '"')
					in_str = !in_str;
			if (in_str) {
				mode = REPL_JSON_STRING;
				a = jpos;
				for (; jpos < b && v[jpos] != '"'; jpos = json_step(v, n, jpos))
					;
				if (jpos > b)
					b = jpos; /* never cut an escape sequence */
				if (b > jpos)
					b = jpos; /* nor run past the closing quote */
			} else {
				/* a bare number (or keyword): it becomes a JSON string */
				mode = REPL_JSON_QUOTED;
				while (a > pos && json_number_char(v[a - 1]))
					a--;
				while (b < n && json_number_char(v[b]))
					b++;
				for (size_t q = a; q < b; q++)
					if (v[q] == '"') {
						b = q; /* stop at a string's opening quote */
						break;
					}
				jpos = b;
			}
			if (a >= b)
				continue;
		}
		if (put(dst, v + pos, a - pos) || (mode == REPL_JSON_QUOTED && put(dst, "\"", 1)) ||
		    put_replacement(me, st, w->spans[i].dets, mode, v + a, b - a, dst) ||
		    (mode == REPL_JSON_QUOTED && put(dst, "\"", 1))) {
			dst->len = start;
			return -1;
		}
		pos = b;
	}
	if (put(dst, v + pos, n - pos)) {
		dst->len = start;
		return -1;
	}
	return MV_VALUE;
}

static int apply_once(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, size_t shift, size_t t0, size_t t1,
		      struct buf *dst, uint64_t det[DET_COUNT])
{
	if (detect_spans(w, ctx, v, n, shift, t0, t1))
		return -1;
	if (!w->nspans)
		return MV_KEEP;
	merge_spans(w, det);
	if (me->mp.detector_style == MASK_NULL)
		return MV_NULL;
	return replace_spans(me, w, kind == MT_JSON || kind == MT_JSONB, v, n, dst);
}

/* One scan and one round of replacement of v (mask_detect_value without settle). */
static int value_once(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, struct buf *dst, uint64_t det[DET_COUNT])
{
	size_t t0 = w->ntrig;
	int r;

	if (mask_detect_scan_lit(me, w, v, n) || mask_detect_scan_num(me, w, v, n, ctx, 0, 0)) {
		w->ntrig = t0;
		return -1;
	}
	if (w->ntrig == t0)
		return MV_KEEP;
	mask_detect_sort(w, t0);
	r = apply_once(me, w, kind, ctx, v, n, 0, t0, w->ntrig, dst, det);
	w->ntrig = t0;
	return r;
}

/*
 * What redact and partial leave of a match can make a new one with what was around it: a
 * partially masked phone number "+*******6" before ".1.1.1" reads as an IPv4 address that was
 * none in the value. The replaced value (dst from start) is scanned again until nothing is
 * found, so that no value leaves with something the detectors would find in it. (The other
 * styles write values of the detected kind on purpose: format-preserving and hashed forms of
 * a phone number look like one, and stay as they are.) At most a few rounds: each one only
 * turns characters into '*'. 0, or -1 (out of memory; dst as it was).
 */
static int settle(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		  struct buf *dst, size_t start)
{
	enum mask_style st = me->mp.detector_style;

	if (st != MASK_REDACT && st != MASK_PARTIAL)
		return 0;
	for (int round = 0; round < 8; round++) {
		struct buf again = {0};
		int r = value_once(me, w, kind, ctx, dst->data + start, dst->len - start, &again,
				   NULL);

		if (r == MV_VALUE) {
			dst->len = start;
			r = put(dst, again.data, again.len) ? -1 : MV_VALUE;
		}
		buf_free(&again);
		if (r != MV_VALUE)
			return r == MV_KEEP ? 0 : -1;
	}
	return 0;
}

int mask_detect_apply(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, size_t shift, size_t t0, size_t t1,
		      struct buf *dst, uint64_t det[DET_COUNT])
{
	size_t start = dst->len;
	int r = apply_once(me, w, kind, ctx, v, n, shift, t0, t1, dst, det);

	if (r == MV_VALUE && settle(me, w, kind, ctx, dst, start)) {
		dst->len = start;
		return -1;
	}
	return r;
}

int mask_detect_value(const struct mask_engine *me, struct mask_tls *w, int kind, unsigned ctx,
		      const uint8_t *v, size_t n, struct buf *dst, uint64_t det[DET_COUNT])
{
	size_t start = dst->len;
	int r = value_once(me, w, kind, ctx, v, n, dst, det);

	if (r == MV_VALUE && settle(me, w, kind, ctx, dst, start)) {
		dst->len = start;
		return -1;
	}
	return r;
}
