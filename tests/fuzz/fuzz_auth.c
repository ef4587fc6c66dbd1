/*
 * fuzz_auth.c - the allow-list parser (auth_parse): bursard reads the
 * file at start and on reload. On success every client must be found
 * again by its key and by its name, and its roles must print.
 */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

#include "controller/auth.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_copy(data, size);
    auth_list_t l;
    char err[256], roles[32];
    if (auth_parse(buf, size, "fuzz.clients", &l, err, sizeof err) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            if (auth_find_key(&l, l.c[i].key) != &l.c[i] ||
                auth_find_name(&l, l.c[i].name) != &l.c[i]) {
                fprintf(stderr, "fuzz_auth: client %zu not found again\n", i);
                abort();
            }
            (void)auth_roles_text(l.c[i].roles, roles);
        }
    }
    auth_free(&l);
    free(buf);
    return 0;
}
