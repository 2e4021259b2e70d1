/* Timestamps as the audit trail's records carry them. */
#ifndef HOOP_ISOTIME_H
#define HOOP_ISOTIME_H

/* "2026-11-26T14:38:51.916898Z" and the NUL */
#define TS_ISO_US_LEN 28

/* Now, RFC 3339 UTC with microseconds: the "ts" of every record. */
void ts_iso_us(char out[TS_ISO_US_LEN]);

#endif
