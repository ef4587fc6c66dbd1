/*
 * health.c - the circuit breaker (see health.h).
 *
 * Doubling the cooldown on every failed probe is the exponential backoff
 * of the circuit-breaker pattern (Nygard, "Release It!", 2007): a model
 * that is down for hours is probed O(log hours) times, one request each.
 */
#include "policies/health.h"

#include <math.h>
#include <stddef.h>

health_state_t
health_state(const health_t *h, const health_params_t *p, double now)
{
    if (h->down)
        return HEALTH_DOWN;
    if (!h->cooling)
        return HEALTH_OK;
    if (now < h->until)
        return HEALTH_COOLDOWN;
    if (h->probe && now - h->probe_t <= p->cooldown_s)
        return HEALTH_PROBING;
    return HEALTH_HALF_OPEN;
}

const char *
health_state_name(health_state_t s)
{
    static const char *const names[] = {"ok", "cooldown", "probing",
                                        "half_open", "down"};
    return (unsigned)s < 5 ? names[s] : "?";
}

int
health_allows(const health_t *h, const health_params_t *p, double now)
{
    health_state_t s = health_state(h, p, now);
    return s == HEALTH_OK || s == HEALTH_HALF_OPEN;
}

double
health_cooldown(const health_params_t *p, unsigned level)
{
    double d = p->cooldown_s * ldexp(1.0, (int)(level > 30 ? 30 : level));
    return d < p->max_cooldown_s ? d : p->max_cooldown_s;
}

void
health_failure(health_t *h, const health_params_t *p, uint64_t decision,
               double now)
{
    h->errors_total++;
    h->failures++;
    if (h->cooling && h->probe == decision) {
        h->level++;
        h->until = now + health_cooldown(p, h->level);
        h->probe = 0;
    } else if (!h->cooling && h->failures >= p->failures) {
        h->cooling = 1;
        h->level = 0;
        h->until = now + health_cooldown(p, 0);
        h->probe = 0;
    }
}

void
health_success(health_t *h, uint64_t decision, double decision_t)
{
    h->failures = 0;
    if (h->cooling && (h->probe == decision || decision_t >= h->until)) {
        h->cooling = 0;
        h->level = 0;
        h->probe = 0;
    }
}

int
health_chosen(health_t *h, uint64_t decision, double now)
{
    if (h->down || !h->cooling || now < h->until)
        return 0;
    h->probe = decision;
    h->probe_t = now;
    return 1;
}

int
health_expired(health_t *h, uint64_t decision)
{
    if (!h->probe || h->probe != decision)
        return 0;
    h->probe = 0;
    return 1;
}
