/*
 * fuzz_scenario.c - the simulator's scenario reader (scenario_load_buffer)
 * and the generation that follows it.
 *
 * A valid scenario may ask for up to 5e7 outcomes (SCEN_MAX_CELLS, about
 * 2.5 GB), which is the reader's documented limit, not a bug: the harness
 * skips inputs whose "requests" times the number of models exceeds
 * FUZZ_MAX_CELLS, so that an iteration stays in milliseconds and in
 * libFuzzer's memory limit. Everything else goes to the reader as is.
 */
#include "tests/fuzz/fuzz.h"

#include <cjson/cJSON.h>

#include "sim/dataset.h"
#include "sim/scenario.h"

#define FUZZ_MAX_CELLS 20000.0

static int
too_big(const char *buf, size_t size)
{
    cJSON *root = cJSON_ParseWithLength(buf, size);
    if (!root)
        return 0;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "requests");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    double cells = cJSON_IsNumber(req) ? req->valuedouble : 0.0;
    cells *= cJSON_IsObject(models) ? cJSON_GetArraySize(models) : 1;
    cJSON_Delete(root);
    return !(cells <= FUZZ_MAX_CELLS); /* NaN too */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    if (!too_big(buf, size)) {
        serr_t e;
        dataset_t *ds = dataset_new();
        if (scenario_load_buffer(ds, buf, size, "fuzz.json", 0, &e) == 0)
            dataset_finish(ds);
        dataset_destroy(&ds);
    }
    free(buf);
    return 0;
}
