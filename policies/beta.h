/*
 * beta.h - quantiles and central intervals of a Beta(a, b) distribution:
 * the posterior intervals `bursar stats` prints and the status page
 * draws (controller/bursar.c, controller/ctl_status.c).
 *
 * Pure: GSL's CDFs, no allocation. Callers turn GSL's error handler off
 * (gsl_set_error_handler_off), as every program of the project does: a
 * CDF that does not converge is a result here, not an abort.
 */
#ifndef BURSAR_POLICIES_BETA_H
#define BURSAR_POLICIES_BETA_H

/* The p-quantile (0 < p < 1) of Beta(a, b). GSL's inverse
 * (gsl_cdf_beta_Pinv) when it converges; else bisection on the CDF to
 * 1e-12; where the CDF fails too (a + b in the millions) the normal with
 * the Beta's mean and sd, clamped to [0, 1]. NaN only when a or b is not
 * a finite positive number. */
double beta_quantile(double p, double a, double b);

/* The central interval of probability level (0 < level < 1; 0.95: the
 * 2.5% and 97.5% quantiles) into *lo and *hi. Returns 0, or -1 (both NaN)
 * when a or b is not a finite positive number. */
int beta_interval(double a, double b, double level, double *lo, double *hi);

#endif
