/* hoopctl's shared pieces: the control-socket call and JSON field helpers (main.c). */
#ifndef HOOPCTL_H
#define HOOPCTL_H

#include <json-c/json.h>

/* Send one request line to hoopd; the parsed answer, or NULL with a message printed. */
struct json_object *ctl_call(const char *req);
/* 0 if the answer says ok; otherwise prints hoopd's error and returns 1. */
int ctl_check_ok(struct json_object *r);

int cmd_approvals(int argc, char **argv);
int cmd_decide(int argc, char **argv);

#endif
