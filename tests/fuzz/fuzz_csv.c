/*
 * fuzz_csv.c - the simulator's CSV reader (csv.h) and the two readers on
 * top of it: the RouterBench-style wide CSV (load_csv_buffer) and the
 * Open Bandit Dataset log (olog_load_obd_buffer).
 */
#include "tests/fuzz/fuzz.h"

#include "sim/csv.h"
#include "sim/dataset.h"
#include "sim/load.h"
#include "sim/olog.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    serr_t e;

    csv_t *c = csv_new(buf, size, "fuzz.csv");
    while (csv_next(c, &e) == 1) {
        size_t n = csv_n_fields(c);
        for (size_t i = 0; i <= n; i++) /* one past: "" by contract */
            (void)strlen(csv_field(c, i));
        (void)csv_line(c);
    }
    csv_destroy(&c);

    dataset_t *ds = dataset_new();
    if (load_csv_buffer(ds, buf, size, "fuzz.csv", &e) == 0)
        dataset_finish(ds);
    dataset_destroy(&ds);

    olog_t *lg = olog_new();
    olog_load_obd_buffer(lg, buf, size, "fuzz.csv", &e);
    olog_destroy(&lg);

    free(buf);
    return 0;
}
