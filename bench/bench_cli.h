/*
 * bench_cli.h - what every benchmark answers before it runs: --version,
 * and --help for those without an option parser of their own.
 */
#ifndef BURSAR_BENCH_BENCH_CLI_H
#define BURSAR_BENCH_BENCH_CLI_H

#include <stdio.h>
#include <string.h>

#ifndef BURSAR_VERSION
#define BURSAR_VERSION "unknown"
#endif

/* Returns 0 after answering --version (or --help/-h when usage is not
 * NULL), else -1: the benchmark runs. */
static inline int
bench_cli(int argc, char **argv, const char *usage)
{
    const char *name =
        strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", name, BURSAR_VERSION);
            return 0;
        }
        if (usage &&
            (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            fputs(usage, stdout);
            return 0;
        }
    }
    return -1;
}

#endif
