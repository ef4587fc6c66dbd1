/* simtest.c - helpers shared by the sim tests (simtest.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim/scenario.h"
#include "tests/sim/simtest.h"

dataset_t *
simtest_scenario(const char *json)
{
    dataset_t *ds = dataset_new();
    serr_t e = {0, ""};
    if (scenario_load_buffer(ds, json, strlen(json), "t.json", 0, &e) != 0)
        fail_msg("%s", e.msg);
    dataset_finish(ds);
    return ds;
}

replay_result_t *
simtest_replay(const dataset_t *ds, const replay_config_t *c)
{
    replay_result_t *r = NULL;
    serr_t e = {0, ""};
    if (replay_run(ds, c, &r, &e) != 0)
        fail_msg("replay_run: %s", e.msg);
    return r;
}
