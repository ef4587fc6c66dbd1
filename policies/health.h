/*
 * health.h - a circuit breaker per model: provider errors take a model
 * out of the allowed set for a while.
 *
 *   closed    -> `failures` consecutive provider errors -> open (cooldown)
 *   open      -> once `until` has passed -> half-open: the next decision
 *                for the model is its probe, one at a time
 *   half-open -> the probe's outcome arrives -> closed (level reset)
 *             -> the probe reports a provider error -> open again with the
 *                cooldown doubled (cooldown_s * 2^level, at most
 *                max_cooldown_s)
 * A probe that neither succeeds nor fails within cooldown_s is given up
 * and another may be sent. An outcome of a decision made after `until`
 * closes the breaker too (the model answered after its cooldown).
 *
 * An operator may mark a model down by hand (`down`): it is then not
 * allowed, whatever the breaker says, and never half-opens, until it is
 * marked up; the breaker's own state goes on underneath.
 *
 * Pure: time and decision ids are passed in; no allocation. Provider
 * errors are not quality outcomes: they never touch an arm's posterior
 * (DESIGN.md, feedback semantics).
 */
#ifndef BURSAR_POLICIES_HEALTH_H
#define BURSAR_POLICIES_HEALTH_H

#include <stdint.h>

typedef struct health_params {
    unsigned failures;     /* consecutive provider errors that open it */
    double cooldown_s;     /* first cooldown, seconds */
    double max_cooldown_s; /* cap of the doubled cooldowns */
} health_params_t;

typedef struct health {
    uint32_t failures;     /* consecutive provider errors */
    uint32_t level;        /* backoff level: cooldown = base * 2^level */
    uint32_t cooling;      /* 1 while a cooldown has been entered */
    uint32_t down;         /* 1: marked down by an operator */
    double until;          /* cooldown end; half-open after it */
    uint64_t probe;        /* decision id of the probe in flight, or 0 */
    double probe_t;        /* when the probe was sent */
    uint64_t errors_total; /* provider errors ever */
} health_t;

typedef enum health_state {
    HEALTH_OK = 0,    /* closed: serving */
    HEALTH_COOLDOWN,  /* open: not allowed */
    HEALTH_PROBING,   /* half-open, its probe in flight: not allowed */
    HEALTH_HALF_OPEN, /* half-open: allowed, the next decision probes */
    HEALTH_DOWN       /* marked down by an operator: not allowed */
} health_state_t;

health_state_t health_state(const health_t *h, const health_params_t *p,
                            double now);
/* "ok", "cooldown", "probing", "half_open", "down". */
const char *health_state_name(health_state_t s);
/* 1 when the model may be chosen at now (ok or half-open). */
int health_allows(const health_t *h, const health_params_t *p, double now);
/* The cooldown at a backoff level. */
double health_cooldown(const health_params_t *p, unsigned level);

/* A provider error reported for decision `decision`. */
void health_failure(health_t *h, const health_params_t *p, uint64_t decision,
                    double now);
/* An outcome (any reward) of decision `decision`, made at decision_t. */
void health_success(health_t *h, uint64_t decision, double decision_t);
/* Called when decision `decision` chose the model at now: if the breaker
 * is half-open this decision becomes its probe. Returns 1 for a probe. */
int health_chosen(health_t *h, uint64_t decision, double now);
/* The decision expired without an outcome: a probe is given up. Returns 1
 * when h changed. */
int health_expired(health_t *h, uint64_t decision);

#endif
