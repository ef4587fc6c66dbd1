/* simtest.h - small helpers shared by the sim tests. */
#ifndef BURSAR_SIMTEST_H
#define BURSAR_SIMTEST_H

#include <math.h>

#include "sim/dataset.h"
#include "sim/replay.h"

/* A finished dataset drawn from a scenario's JSON text (the test fails on
 * a bad scenario). tests/sim/simtest.c; caller destroys. */
dataset_t *simtest_scenario(const char *json);

/* replay_run, the test failing with its message on an error. */
replay_result_t *simtest_replay(const dataset_t *ds, const replay_config_t *c);

/* |a - b| <= eps, with both values in the failure message. */
#define assert_near(a, b, eps)                                                 \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (!(fabs(a_ - b_) <= (eps)))                                         \
            fail_msg("%s = %.10g, expected %.10g +- %g", #a, a_, b_,           \
                     (double)(eps));                                           \
    } while (0)

#endif
