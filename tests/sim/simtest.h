/* simtest.h - small helpers shared by the sim tests. */
#ifndef BURSAR_SIMTEST_H
#define BURSAR_SIMTEST_H

#include <math.h>

/* |a - b| <= eps, with both values in the failure message. */
#define assert_near(a, b, eps)                                                 \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (!(fabs(a_ - b_) <= (eps)))                                         \
            fail_msg("%s = %.10g, expected %.10g +- %g", #a, a_, b_,           \
                     (double)(eps));                                           \
    } while (0)

#endif
