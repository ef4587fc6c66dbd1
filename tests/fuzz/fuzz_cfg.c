/*
 * fuzz_cfg.c - the controller's configuration parser (cfg_parse). Every
 * problem it reports is a string it allocated: the list is cleared each
 * time, so LeakSanitizer sees any message or field that is not freed.
 */
#include "tests/fuzz/fuzz.h"

#include "controller/cfg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    cfg_t *cfg = NULL;
    cfg_problems_t pr = {0, NULL};
    cfg_parse(buf, size, &cfg, &pr);
    cfg_destroy(&cfg);
    cfg_problems_clear(&pr);
    free(buf);
    return 0;
}
