/*
 * fuzz_jsonl.c - the simulator's full-information JSONL reader
 * (load_jsonl_buffer), then dataset_finish on what it read.
 */
#include "tests/fuzz/fuzz.h"

#include "sim/dataset.h"
#include "sim/load.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    serr_t e;
    dataset_t *ds = dataset_new();
    if (load_jsonl_buffer(ds, buf, size, "fuzz.jsonl", &e) == 0)
        dataset_finish(ds);
    dataset_destroy(&ds);
    free(buf);
    return 0;
}
