/*
 * evaluate.h - `bursar-sim evaluate`: off-policy evaluation of routing
 * policies on a logged decision stream (docs/ope.md).
 *
 *   bursar-sim evaluate --log FILE [--log FILE...] --policy P [--policy P]
 *                       [--policy-file JSON] [--json] [--plot FILE.svg]
 *                       [--seed N] [--boot B] [--explore-floor F]
 *                       [--budget-per-request USD] [--dominate-share S]
 *
 * Reads the logs (olog.h), evaluates each policy with every estimator
 * (ope.h) and prints a table, or one JSON object with --json. Returns the
 * process exit status: 0 ok, 1 bad input or a failed evaluation, 2 bad
 * options. Messages go to stderr.
 */
#ifndef BURSAR_EVALUATE_H
#define BURSAR_EVALUATE_H

/* argv[0] is "evaluate". */
int evaluate_main(int argc, char **argv);

#endif
