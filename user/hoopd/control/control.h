/* control.c: the control socket hoopctl talks to; metrics.c: the Prometheus endpoint. */
#ifndef HOOPD_CONTROL_H
#define HOOPD_CONTROL_H

#include <stdint.h>

int control_init(void);
void control_close(void);
void control_tick(void);
/* The status answer (`hoopctl status`): conns_json, a JSON array of the connections (the
 * engine workers'), or NULL for this process's own. */
struct jbuf;
void control_status_json(struct jbuf *j, const char *conns_json);
/* The answer to a request deferred to the engine workers (workers.h's handle). */
void ctl_answer(uint64_t handle, const char *json);
int metrics_init(void);

#endif
