/* assert_double_equal for cmocka 1.1.5, which lacks it: prints both
 * values on failure. Include after <cmocka.h>. */
#ifndef BURSAR_TEST_NEAR_H
#define BURSAR_TEST_NEAR_H

#include <math.h>

#ifndef assert_double_equal
#define assert_double_equal(a, b, eps)                                         \
    do {                                                                       \
        double na_ = (a), nb_ = (b);                                           \
        if (!(fabs(na_ - nb_) <= (eps)))                                       \
            print_error("%s = %.12g, %s = %.12g, eps %g\n", #a, na_, #b, nb_,  \
                        (double)(eps));                                        \
        if (!(fabs(na_ - nb_) <= (eps)))                                       \
            _fail(__FILE__, __LINE__);                                         \
    } while (0)
#endif

#endif
