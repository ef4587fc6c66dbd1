/*
 * arm.c - Beta posterior and cost estimate of one arm.
 */
#include "policies/arm.h"

static double
clamp01(double x)
{
    if (!(x > 0.0)) /* also NaN */
        return 0.0;
    return x > 1.0 ? 1.0 : x;
}

void
arm_init(arm_t *a, double alpha0, double beta0, double cost_prior,
         double cost_prior_w)
{
    a->alpha0 = alpha0 > 0.0 ? alpha0 : 1.0;
    a->beta0 = beta0 > 0.0 ? beta0 : 1.0;
    a->alpha = a->alpha0;
    a->beta = a->beta0;
    a->cost_sum = 0.0;
    a->cost_w = 0.0;
    a->cost_prior = cost_prior > 0.0 ? cost_prior : 0.0;
    a->cost_prior_w = cost_prior_w > 0.0 ? cost_prior_w : 0.0;
    a->pulls = 0;
    a->rewards = 0;
}

void
arm_reward(arm_t *a, double reward)
{
    double r = clamp01(reward);
    a->alpha += r;
    a->beta += 1.0 - r;
    a->rewards++;
}

void
arm_amend(arm_t *a, double old_r, double new_r, double weight)
{
    double d = (clamp01(new_r) - clamp01(old_r)) * clamp01(weight);
    a->alpha += d;
    a->beta -= d;
    if (a->alpha < a->alpha0)
        a->alpha = a->alpha0;
    if (a->beta < a->beta0)
        a->beta = a->beta0;
}

void
arm_cost(arm_t *a, double cost_usd)
{
    if (!(cost_usd >= 0.0))
        return;
    a->cost_sum += cost_usd;
    a->cost_w += 1.0;
}

void
arm_decay(arm_t *a, double f)
{
    a->alpha = a->alpha0 + (a->alpha - a->alpha0) * f;
    a->beta = a->beta0 + (a->beta - a->beta0) * f;
    a->cost_sum *= f;
    a->cost_w *= f;
}

double
arm_mean(const arm_t *a)
{
    return a->alpha / (a->alpha + a->beta);
}

double
arm_cost_mean(const arm_t *a)
{
    double w = a->cost_prior_w + a->cost_w;
    if (w <= 0.0)
        return a->cost_prior;
    return (a->cost_prior_w * a->cost_prior + a->cost_sum) / w;
}

double
arm_evidence(const arm_t *a)
{
    return (a->alpha - a->alpha0) + (a->beta - a->beta0);
}
