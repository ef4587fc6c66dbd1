/* Budget pacing: windows, the rate estimate (slots, clipping, prior), and
 * the pacer driven through the real policy code as the controller drives
 * it (allow_request + policy_choose + pacer_reserve/settle): a burst after
 * an idle hour, a day of sustained overload, a declared batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "tests/policies/near.h"

#include "policies/allow.h"
#include "policies/pacer.h"
#include "policies/policy.h"

#define DAY 86400.0

static void
test_window_alignment(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 50.0, DAY, 1.0, DAY * 3 + 500.0);
    assert_double_equal(p.window_start, DAY * 3, 1e-9);
    assert_int_equal(pacer_roll(&p, DAY * 4 - 1.0), 0);
    pacer_reserve(&p, 2.0, DAY * 3 + 600.0);
    pacer_settle(&p, 2.0, 1.5);
    assert_double_equal(p.spent_usd, 1.5, 1e-12);
    pacer_reserve(&p, 4.0, DAY * 3 + 700.0); /* open across the boundary */
    assert_int_equal(pacer_roll(&p, DAY * 6 + 7.0), 1);
    assert_double_equal(p.window_start, DAY * 6, 1e-9);
    assert_double_equal(p.spent_usd, 0.0, 1e-12);
    assert_double_equal(p.reserved_usd, 4.0, 1e-12);
    assert_double_equal(p.requests, 0.0, 1e-12);
    pacer_t q;
    pacer_init(&q, 0.0, 60.0, 1.0, 0.0);
    assert_true(isinf(pacer_target(&q, 1.0)));
    assert_true(isinf(pacer_remaining(&q)));
    /* At the very end at least one request is expected. */
    assert_double_equal(pacer_expected_remaining(&p, DAY * 7), 1.0, 0.0);
}

/* The prior before data, its fading, steady traffic learnt exactly, and
 * the clipping of a burst slot. Slots of a 1440 s window are 1 s. */
static void
test_rate_estimate(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 100.0, 1440.0, 0.5, 0.0);
    assert_double_equal(pacer_slot_s(&p), 1.0, 0.0);
    /* no data: the prior */
    assert_double_equal(pacer_rate(&p, 0.5), 0.5, 1e-12);
    assert_double_equal(pacer_target(&p, 0.0),
                        100.0 / (720.0 + 2.0 * sqrt(720.0)), 1e-12);
    /* two complete slots of 3 requests: (3 + 3 + 3 x 0.5) / 5 per slot */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 3; i++)
            pacer_reserve(&p, 0.0, s + 0.1 * i);
    assert_double_equal(pacer_rate(&p, 2.5), (6.0 + 1.5) / 5.0, 1e-12);
    /* a burst in the first slot: clipped against the prior's
     * pseudo-slots, med 0.5: at 0.5 + 3 sqrt(0.5) + 3 */
    pacer_init(&p, 100.0, 1440.0, 0.5, 0.0);
    for (int i = 0; i < 1000; i++)
        pacer_reserve(&p, 0.0, i * 1e-4);
    assert_double_equal(pacer_rate(&p, 1.5),
                        (0.5 + 3.0 * sqrt(0.5) + 3.0 + 4 * 0.5) / 5.0, 1e-12);
    /* steady 4 per slot for 100 slots: exactly 4/s, the prior gone */
    pacer_init(&p, 100.0, 1440.0, 0.5, 0.0);
    for (int s = 0; s < 100; s++)
        for (int i = 0; i < 4; i++)
            pacer_reserve(&p, 0.0, s + 0.2 * i);
    assert_double_equal(pacer_rate(&p, 100.5), 4.0, 1e-12);
    /* a burst of 1000 in slot 100: not counted while its slot fills, then
     * clipped at med + 3 sqrt(med) + 3 = 4 + 6 + 3 = 13 */
    for (int i = 0; i < 1000; i++)
        pacer_reserve(&p, 0.0, 100.0 + i * 1e-4);
    assert_double_equal(pacer_rate(&p, 100.9), 4.0, 1e-12);
    double r = pacer_rate(&p, 101.5);
    assert_double_equal(r, fmax((59 * 4.0 + 13.0) / 60.0, (16.0 + 13.0) / 5.0),
                        1e-12);
    /* idle: the recent mean falls at once, the horizon's over the hour */
    assert_double_equal(pacer_rate(&p, 120.5), (40 * 4.0 + 13.0) / 60.0, 1e-9);
    assert_double_equal(pacer_rate(&p, 200.5), 0.0, 0.0);
    /* a pacer migrated without a ring starts counting when resumed */
    p.rate_start = NAN;
    pacer_resume(&p, 300.0);
    assert_double_equal(p.rate_start, 300.0, 0.0);
    assert_double_equal(pacer_rate(&p, 301.5), 0.5 * 4 / 5 + 0.0, 1e-12);
    /* a ring that is not uniform, after an idle slot: each slot read at
     * its own place (slots 0-2 of 100 requests, slot 3 idle, one pseudo-
     * slot of the prior): (300 + 0.5) / 5 */
    pacer_init(&p, 100.0, 1440.0, 0.5, 0.0);
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 100; i++)
            pacer_reserve(&p, 0.0, s + 0.001 * i);
    assert_double_equal(pacer_rate(&p, 4.5), 300.5 / 5.0, 1e-12);
    /* the current slot's requests count as demand already here */
    double e0 = pacer_expected_remaining(&p, 4.7);
    for (int i = 0; i < 50; i++)
        pacer_reserve(&p, 0.0, 4.6);
    double e1 = pacer_expected_remaining(&p, 4.7);
    assert_true(e1 > e0 + 49.0);
    /* a new window length: realigned, the ring started again (its slots
     * were of the old length), requests counted again at once */
    pacer_set_window(&p, 24 * 1440.0, 10.0);
    assert_true(p.slot_last < 0.0 && p.rate_start == 10.0);
    pacer_reserve(&p, 0.0, 11.0);
    assert_true(p.slot_last >= 0.0);
    /* time far behind the ring (a clock set back): it starts again */
    pacer_init(&p, 100.0, 1440.0, 0.5, 0.0);
    pacer_reserve(&p, 0.0, 5000.0);
    pacer_reserve(&p, 0.0, 100.0);
    assert_double_equal(p.slot_last, 100.0, 0.0);
}

/* ---- the controller's path through policies/ ---------------------- */

enum { STRONG = 0, CHEAP = 1 };
#define C_STRONG 0.01
#define C_CHEAP  (C_STRONG / 20)

typedef struct run {
    policy_t pol;
    policy_bucket_t *b;
    pacer_t pc;
    gsl_rng *rng;
    double q[2];
    unsigned char mask[2];
} run_t;

/* Two arms of known quality (evidence 400) and cost; ts-budget. */
static void
run_init(run_t *r, double q_strong, double q_cheap, double limit,
         double expected, unsigned long seed)
{
    policy_params_t pp;
    policy_params_default(&pp);
    policy_init(&r->pol, &pp);
    r->b = policy_bucket_new(2, 0.0, 0.0);
    const double c[2] = {C_STRONG, C_CHEAP};
    r->q[STRONG] = q_strong;
    r->q[CHEAP] = q_cheap;
    for (size_t k = 0; k < 2; k++) {
        arm_init(&r->b->arms[k], 1.0, 1.0, c[k], 1000.0);
        r->b->arms[k].alpha += r->q[k] * 400.0;
        r->b->arms[k].beta += (1.0 - r->q[k]) * 400.0;
        r->b->model[k] = (int)k;
        r->mask[k] = 1;
    }
    pacer_init(&r->pc, limit, DAY, expected / DAY, 0.0);
    r->rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r->rng, seed);
}

static void
run_free(run_t *r)
{
    policy_bucket_destroy(&r->b);
    gsl_rng_free(r->rng);
}

/* One request at t (of batch bt, or NULL): chosen, reserved, served and
 * settled at once at its expected cost. req receives what the policy saw;
 * returns the cost. */
static double
run_one(run_t *r, double t, pacer_batch_t *bt, policy_request_t *req,
        unsigned *flags)
{
    allow_request(req, r->mask, &r->pc, NULL, t);
    if (bt) {
        pacer_batch_replan(&r->pc, bt, t);
        allow_batch(req, bt, NULL, t);
    }
    req->no_propensity = 1;
    policy_choice_t ch;
    assert_int_equal(policy_choose(&r->pol, r->b, req, r->rng, &ch, NULL, NULL),
                     0);
    if (bt)
        pacer_batch_reserve(&r->pc, bt, ch.expected_cost);
    else
        pacer_reserve(&r->pc, ch.expected_cost, t);
    double y = gsl_rng_uniform(r->rng) < r->q[ch.arm];
    policy_reward(r->b, ch.arm, y, t);
    pacer_settle(&r->pc, ch.expected_cost, ch.expected_cost);
    if (flags)
        *flags = ch.flags;
    return ch.expected_cost;
}

/* What the pacer before issue 13 targeted: the window's requests over the
 * time since counting began (floored at a minute), times the time left. */
static double
old_target(double remaining, double requests, double elapsed, double left)
{
    double rate = requests / fmax(elapsed, 60.0);
    return remaining / fmax(1.0, rate * left);
}

/* Must show 1: 2,000 requests expected per day, a budget of 10,000
 * requests at the strongest price; after an idle hour, 1,000 requests
 * within one second. mu stays 0 and the target above the strongest
 * model's cost at every request of the burst and after it. */
static void
test_burst_after_idle_hour(void **state)
{
    (void)state;
    run_t r;
    run_init(&r, 0.9, 0.6, 10000 * C_STRONG, 2000, 11);
    const double t0 = 3600.0;
    for (int i = 0; i < 1000; i++) {
        double t = t0 + i * 1e-3;
        policy_request_t req;
        run_one(&r, t, NULL, &req, NULL);
        assert_true(req.target_usd > C_STRONG);
        assert_true(r.pol.mu == 0.0);
    }
    double worst = INFINITY;
    for (double t = t0 + 1.0; t < t0 + 7200.0; t += 10.0) {
        pacer_roll(&r.pc, t);
        worst = fmin(worst, pacer_target(&r.pc, t));
    }
    assert_true(r.pol.mu == 0.0);
    assert_true(worst > C_STRONG);
    /* the old estimate right after the burst, counting from the window's
     * start (the pacer up all day) or from the burst (a daemon started
     * with it, as scripts/demo.sh does) */
    double rem = pacer_remaining(&r.pc), left = DAY - t0 - 1.0;
    double old_day = old_target(rem, 1000, t0 + 1.0, left);
    double old_start = old_target(rem, 1000, 1.0, left);
    print_message("burst: spent %.2f of %.2f; target after it: new >= %.5f, "
                  "old %.5f (up all day) / %.6f (started with the burst); "
                  "strongest costs %.3f\n",
                  r.pc.spent_usd, r.pc.limit_usd, worst, old_day, old_start,
                  C_STRONG);
    assert_true(old_day < C_STRONG && old_start < C_STRONG);
    run_free(&r);
    /* a burst 50 times as big (five times what the whole budget buys at
     * the strongest price) in the same second after an idle hour: the
     * requests of the current slot count as demand already here
     * (pacer.h), so the price rises within the burst (mu > 0) and the
     * strongest model's share falls; the budget is spent by the burst
     * (nothing says it will end), then served cheapest, over_budget */
    run_t big;
    run_init(&big, 0.9, 0.6, 10000 * C_STRONG, 2000, 13);
    for (int i = 0; i < 50000; i++) {
        policy_request_t rq;
        run_one(&big, t0 + i * 2e-5, NULL, &rq, NULL);
    }
    double strong = big.b->arms[STRONG].pulls;
    print_message("a burst of 50000 after an idle hour: spent %.2f of %.2f, "
                  "%.0f to the strongest, mu %.3f\n",
                  big.pc.spent_usd, big.pc.limit_usd, strong, big.pol.mu);
    assert_true(big.pol.mu > 0.0);
    assert_true(strong < 10000); /* not the whole budget's worth at once */
    run_free(&big);
}

/* Must show 2: a whole day of Poisson traffic at 5 x what the budget
 * affords at the strongest price (50,000 requests for 10,000), the prior
 * saying 2,000 (as in must show 1: the traffic is 25 x what the owner
 * expected). Spend <= limit, never over_budget, every hour within 20% of
 * limit / 24 (the first hour, while the rate is learnt, is the highest:
 * 116.7%). */
static void
test_sustained_overload(void **state)
{
    (void)state;
    run_t r;
    const double limit = 10000 * C_STRONG, rate = 5 * 10000 / DAY;
    run_init(&r, 0.9, 0.6, limit, 2000, 12);
    double hour[24] = {0}, t = 0.0;
    unsigned over = 0;
    long n = 0;
    for (;;) {
        t += gsl_ran_exponential(r.rng, 1.0 / rate);
        if (t >= DAY)
            break;
        policy_request_t req;
        unsigned flags;
        hour[(int)(t / 3600.0)] += run_one(&r, t, NULL, &req, &flags);
        over += !!(flags & POLICY_F_UNAFFORDABLE);
        n++;
    }
    double plan = limit / 24, total = 0.0;
    for (int h = 0; h < 24; h++) {
        print_message("hour %2d: %.3f USD (%.1f%% of plan)\n", h, hour[h],
                      100.0 * hour[h] / plan);
        total += hour[h];
    }
    print_message("%ld requests, spent %.3f of %.3f, %u over budget, mu %.3f\n",
                  n, total, limit, over, r.pol.mu);
    assert_true(total <= limit + 1e-9);
    assert_int_equal(over, 0);
    for (int h = 0; h < 24; h++)
        assert_true(fabs(hour[h] - plan) <= 0.2 * plan);
    run_free(&r);
}

/* Batches: the share formula, held aside, returned at completion. */
static void
test_batch_books(void **state)
{
    (void)state;
    pacer_t p;
    pacer_init(&p, 30.0, DAY, 2000 / DAY, 0.0);
    pacer_batch_t b;
    pacer_batch_open(&p, &b, 1000, 0.0);
    /* 30 x 1000 / (E + 1000), E = 2000 + 2 sqrt(2000) (the margin) */
    double e = 2000 + 2 * sqrt(2000), share = 30.0 * 1000 / (e + 1000);
    assert_double_equal(b.share_usd, share, 1e-9);
    assert_double_equal(pacer_remaining(&p), 30.0 - share, 1e-9);
    assert_double_equal(pacer_batch_target(&b), share / 1000, 1e-12);
    /* other traffic's target equals the batch's: the fair share */
    assert_double_equal(pacer_target(&p, 0.0), share / 1000, 1e-12);
    pacer_batch_reserve(&p, &b, 0.004);
    assert_double_equal(p.reserved_usd, 0.004, 1e-12);
    assert_double_equal(pacer_remaining(&p), 30.0 - share, 1e-9);
    assert_double_equal(pacer_batch_target(&b), (share - 0.004) / 999, 1e-12);
    assert_double_equal(p.held_usd, share - 0.004, 1e-9);
    /* closed: the unspent share returns */
    pacer_batch_close(&p, &b);
    assert_double_equal(p.held_usd, 0.0, 0.0);
    assert_double_equal(pacer_remaining(&p), 30.0 - 0.004, 1e-9);
    /* at the window's end the share returns; planned again in the next */
    pacer_batch_open(&p, &b, 100, 10.0);
    assert_true(p.held_usd > 0.0);
    assert_int_equal(pacer_roll(&p, DAY + 1.0), 1);
    assert_double_equal(p.held_usd, 0.0, 0.0);
    assert_int_equal(pacer_batch_replan(&p, &b, DAY + 1.0), 1);
    assert_true(p.held_usd > 0.0 && b.share_usd == p.held_usd);
    /* no budget: an unlimited share, nothing held */
    pacer_t q;
    pacer_init(&q, 0.0, DAY, 1.0, 0.0);
    pacer_batch_open(&q, &b, 10, 0.0);
    assert_true(isinf(pacer_batch_left(&b)) && q.held_usd == 0.0);
}

/* Must show 3: a batch of 1,000 declared with 2,000 more expected and a
 * budget that leaves it about 0.37 x the strongest price per request. With a
 * quality gain of 0.3 for the strongest it spends between 90% and 100% of
 * its share; with equal qualities it spends what the draws happen to
 * choose (printed), never more than the share. */
static double
batch_run(double q_strong, double q_cheap, unsigned long seed)
{
    run_t r;
    run_init(&r, q_strong, q_cheap, 1200 * C_STRONG, 2000, seed);
    pacer_batch_t bt;
    pacer_batch_open(&r.pc, &bt, 1000, 0.0);
    double share = bt.share_usd, spent = 0.0;
    /* with the margin: 2000 + 2 sqrt(2000) requests expected besides */
    double e = 2000 + 2 * sqrt(2000);
    assert_double_equal(share, r.pc.limit_usd * 1000 / (e + 1000), 1e-9);
    for (int i = 0; i < 1000; i++) {
        policy_request_t req;
        unsigned flags;
        spent += run_one(&r, i * 0.5, &bt, &req, &flags);
        assert_true(spent <= share + 1e-12);
    }
    pacer_batch_close(&r.pc, &bt);
    print_message("batch: quality %.2f vs %.2f: spent %.4f of its share "
                  "%.4f (%.1f%%)\n",
                  q_strong, q_cheap, spent, share, 100.0 * spent / share);
    run_free(&r);
    return spent / share;
}

static void
test_batch_share(void **state)
{
    (void)state;
    double f = batch_run(0.9, 0.6, 13);
    assert_true(f >= 0.9 && f <= 1.0 + 1e-12);
    f = batch_run(0.75, 0.75, 14);
    assert_true(f <= 1.0 + 1e-12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_alignment),
        cmocka_unit_test(test_rate_estimate),
        cmocka_unit_test(test_burst_after_idle_hour),
        cmocka_unit_test(test_sustained_overload),
        cmocka_unit_test(test_batch_books),
        cmocka_unit_test(test_batch_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
