/*
 * ctl_status.c - the status page's data (/status.json): the stats reply
 * and a history of samples kept in memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include <string.h>

char *
ctl_status_json(ctl_t *c)
{
    proto_request_t rq;
    memset(&rq, 0, sizeof rq);
    return ctl_op_stats(c, &rq);
}

void
ctl_status_tick(ctl_t *c)
{
    (void)c;
}
