/*
 * lp.h - the budget linear programs.
 *
 * One bucket (Ferreira, Simchi-Levi and Wang, 2018, "Online network revenue
 * management using Thompson sampling", Operations Research 66(6)): given a
 * value v_k and a cost c_k for each of n arms and a cost target T,
 *
 *     maximize  sum_k p_k v_k   s.t.  sum_k p_k c_k <= T,  sum_k p_k = 1,
 *                                     p_k >= 0.
 *
 * With one constraint besides the simplex, an optimal vertex mixes at most
 * two arms; lp_solve_bucket finds it by trying every pair of arms on either
 * side of the target, O(n^2) for the few dozen arms a bucket has.
 *
 * Several buckets sharing one budget (the hindsight "best static" policy):
 * bucket b receives a share w_b of the traffic and
 *
 *     maximize  sum_b w_b sum_k p_bk v_bk
 *     s.t.      sum_b w_b sum_k p_bk c_bk <= T,  each p_b on its simplex.
 *
 * This is a fractional multiple-choice knapsack. lp_solve_static starts each
 * bucket at the cheapest point of its hull and buys hull segments in
 * decreasing order of slope (value per dollar) until the budget is spent;
 * at most one segment is bought in part, so at most one bucket mixes two
 * arms. This greedy is exact for the LP relaxation (Sinha and Zoltners,
 * 1979, "The multiple-choice knapsack problem", Operations Research 27(3)).
 */
#ifndef BURSAR_LP_H
#define BURSAR_LP_H

#include <stddef.h>

/* Which arms may take part. NULL mask = all. */

/* Solves the one-bucket LP. Writes the optimal distribution to p[n]
 * (zero for excluded arms). Returns 0 when the target can be met, or
 * LP_INFEASIBLE when even the cheapest allowed arm costs more than the
 * target: p then puts all mass on the cheapest allowed arm (ties: the higher
 * value). Returns LP_EMPTY (p all zero) when no arm is allowed. */
int lp_solve_bucket(size_t n, const double *v, const double *c,
                    const unsigned char *allowed, double target, double *p);

#define LP_INFEASIBLE 1
#define LP_EMPTY      2

typedef struct lp_bucket {
    size_t n;        /* arms */
    const double *v; /* value per arm, n */
    const double *c; /* cost per arm, n */
    double w;        /* traffic share of the bucket (>= 0) */
    double *p;       /* out: distribution over the arms, n */
} lp_bucket_t;

/* Solves the shared-budget LP over nb buckets with target T per request.
 * Writes each bucket's p. Returns 0, or LP_INFEASIBLE when the cheapest
 * choice everywhere exceeds T (every bucket is then at its cheapest arm).
 * If value_out / cost_out are non-NULL they receive the objective
 * sum_b w_b sum_k p_bk v_bk and the spend per request. Allocates O(total
 * arms) scratch memory; returns -1 if that fails. */
int lp_solve_static(size_t nb, lp_bucket_t *b, double target, double *value_out,
                    double *cost_out);

#endif
