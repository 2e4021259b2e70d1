/* Timestamps as the audit trail's records carry them (isotime.h). */
#include "isotime.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* The part to the second is formatted once a second (per thread): this runs for every record. */
void ts_iso_us(char out[TS_ISO_US_LEN])
{
	static _Thread_local time_t last = (time_t)-1;
	static _Thread_local char head[24]; /* "2026-11-26T14:38:51." */
	struct timeval tv;
	long us;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != last) {
		struct tm tm;

		gmtime_r(&tv.tv_sec, &tm);
		snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last = tv.tv_sec;
	}
	memcpy(out, head, 20);
	us = (long)tv.tv_usec;
	for (int i = 25; i >= 20; i--, us /= 10)
		out[i] = (char)('0' + us % 10);
	out[26] = 'Z';
	out[27] = '\0';
}
