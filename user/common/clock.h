/* Wall-clock time for timestamps, deadlines and durations. */
#ifndef HOOP_CLOCK_H
#define HOOP_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t now_ms(void);

#endif
