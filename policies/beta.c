/*
 * beta.c - Beta quantiles and intervals (beta.h).
 */
#include "policies/beta.h"

#include <math.h>

#include <gsl/gsl_cdf.h>

/* GSL's inverse (gsl_cdf_beta_Pinv) does not converge on lopsided arms
 * (alpha 353, beta 5 at p = 0.025 gives NaN, and under GSL's default
 * handler an abort); then bisection on the CDF, which is monotone; where
 * the CDF fails too, the normal approximation, whose skewness is tiny
 * there (policies/policy.c, beta_cdf). */
double
beta_quantile(double p, double a, double b)
{
    if (!(a > 0 && b > 0 && isfinite(a) && isfinite(b)))
        return NAN;
    double x = gsl_cdf_beta_Pinv(p, a, b);
    if (isfinite(x) && x >= 0 && x <= 1 &&
        fabs(gsl_cdf_beta_P(x, a, b) - p) < 1e-6)
        return x;
    double lo = 0, hi = 1;
    int ok = 1;
    for (int i = 0; i < 200 && ok && hi - lo > 1e-12; i++) {
        double mid = 0.5 * (lo + hi), v = gsl_cdf_beta_P(mid, a, b);
        ok = isfinite(v);
        if (v < p)
            lo = mid;
        else
            hi = mid;
    }
    if (ok)
        return 0.5 * (lo + hi);
    double n = a + b, mean = a / n, sd = sqrt(a * b / (n * n * (n + 1.0)));
    return fmin(1.0, fmax(0.0, mean + sd * gsl_cdf_ugaussian_Pinv(p)));
}

int
beta_interval(double a, double b, double level, double *lo, double *hi)
{
    double tail = 0.5 * (1.0 - level);
    *lo = beta_quantile(tail, a, b);
    *hi = beta_quantile(1.0 - tail, a, b);
    if (isnan(*lo) || isnan(*hi)) {
        *lo = *hi = NAN;
        return -1;
    }
    return 0;
}
