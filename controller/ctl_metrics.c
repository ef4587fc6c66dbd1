/*
 * ctl_metrics.c - the controller's Prometheus metrics (text exposition
 * format 0.0.4, agents/expo.h), rendered from memory.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/ctl_int.h"

#include "agents/expo.h"

void
ctl_metrics_write(ctl_t *c, bursar_buf_t *b)
{
    double now = ctl_now(c);
    pacer_roll(&c->pacer, now);
    expo_family(b, "bursar_shadow_price", "gauge",
                "The shadow price of money (mu): quality given up per USD.");
    expo_sample(b, "bursar_shadow_price", c->policy.mu, 0);
    expo_family(b, "bursar_budget_spent_usd", "gauge",
                "Spend in the global budget's current window.");
    expo_sample(b, "bursar_budget_spent_usd", c->pacer.spent_usd, 0);
}
