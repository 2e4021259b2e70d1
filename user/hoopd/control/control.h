/* control.c: the control socket hoopctl talks to; metrics.c: the Prometheus endpoint. */
#ifndef HOOPD_CONTROL_H
#define HOOPD_CONTROL_H

int control_init(void);
void control_close(void);
void control_tick(void);
int metrics_init(void);

#endif
