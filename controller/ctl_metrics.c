/*
 * ctl_metrics.c - the controller's Prometheus metrics (text exposition
 * format 0.0.4), rendered from memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include <stdio.h>
#include <string.h>

static void
ctl_metrics_line(bursar_buf_t *b, const char *fmt, double v)
{
    char line[256];
    int n = snprintf(line, sizeof line, fmt, v);
    bursar_buf_add(b, line, (size_t)n);
}

void
ctl_metrics_write(ctl_t *c, bursar_buf_t *b)
{
    double now = ctl_now(c);
    pacer_roll(&c->pacer, now);
    ctl_metrics_line(b,
                     "# HELP bursar_shadow_price The shadow price of money "
                     "(mu).\n# TYPE bursar_shadow_price gauge\n"
                     "bursar_shadow_price %.17g\n",
                     c->policy.mu);
    ctl_metrics_line(b,
                     "# HELP bursar_budget_spent_usd Spend in the budget's "
                     "window.\n# TYPE bursar_budget_spent_usd gauge\n"
                     "bursar_budget_spent_usd %.17g\n",
                     c->pacer.spent_usd);
}
