/*
 * allow.c - the allowed set and the request's budget (see allow.h).
 */
#include "policies/allow.h"

#include <math.h>

void
allow_params_default(allow_params_t *p)
{
    p->health.failures = ALLOW_DEF_FAILURES;
    p->health.cooldown_s = ALLOW_DEF_COOLDOWN_S;
    p->health.max_cooldown_s = ALLOW_DEF_MAX_COOLDOWN_S;
    p->latency.quantile = ALLOW_DEF_QUANTILE;
    p->latency.window_s = ALLOW_DEF_WINDOW_S;
    p->latency.min_samples = ALLOW_DEF_MIN_SAMPLES;
}

size_t
allow_mask(size_t n, const allow_arm_t *arms, const allow_params_t *p,
           double slo_ms, double now, unsigned char *mask,
           allow_counts_t *counts)
{
    allow_counts_t cnt = {0, 0, 0};
    size_t allowed = 0, slow = 0;
    for (size_t i = 0; i < n; i++) {
        const allow_arm_t *a = &arms[i];
        mask[i] = 0;
        if (a->excluded) {
            cnt.excluded++;
            continue;
        }
        if (a->health && !health_allows(a->health, &p->health, now)) {
            cnt.cooling++;
            continue;
        }
        mask[i] = 1;
        allowed++;
        if (slo_ms > 0 && a->lat) {
            double q = latency_quantile(a->lat, &p->latency, now, NULL);
            if (!isnan(q) && q > slo_ms) {
                mask[i] = 2; /* allowed unless a faster arm is */
                slow++;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (mask[i] != 2)
            continue;
        if (slow < allowed) {
            mask[i] = 0;
            cnt.slow++;
        } else {
            mask[i] = 1; /* all break it: the objective is ignored */
        }
    }
    allowed -= cnt.slow;
    if (counts)
        *counts = cnt;
    return allowed;
}

void
allow_request(policy_request_t *req, const unsigned char *mask, pacer_t *global,
              pacer_t *bucket, double now)
{
    policy_request_init(req, now);
    pacer_roll(global, now);
    double remaining = pacer_remaining(global);
    req->target_usd = pacer_target(global, now);
    if (bucket) {
        pacer_roll(bucket, now);
        req->bucket_target_usd = pacer_target(bucket, now);
        double r = pacer_remaining(bucket);
        if (r < remaining)
            remaining = r;
    }
    req->remaining_usd = remaining;
    req->allowed = mask;
}

double
allow_tenant(policy_request_t *req, pacer_t *tenant, double mu_t, double now)
{
    pacer_roll(tenant, now);
    double r = pacer_remaining(tenant);
    if (r < req->remaining_usd)
        req->remaining_usd = r;
    double target = pacer_target(tenant, now);
    req->extra_lambda = 0.0;
    if (mu_t > 0.0 && target > 0.0 && isfinite(target))
        req->extra_lambda = mu_t / target;
    return target;
}

void
allow_batch(policy_request_t *req, const pacer_batch_t *batch,
            const pacer_t *bucket, double now)
{
    double left = pacer_batch_left(batch);
    if (isinf(left))
        return;
    double t = pacer_batch_target(batch);
    if (bucket) {
        double bt = pacer_target(bucket, now);
        if (bt < t)
            t = bt;
        double r = pacer_remaining(bucket);
        if (r < left)
            left = r;
    }
    req->target_usd = INFINITY;
    /* the LP needs a positive target: a share used up affords nothing */
    req->bucket_target_usd = t > 0.0 ? t : 1e-300;
    req->remaining_usd = left;
}
