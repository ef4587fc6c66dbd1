/*
 * auth.h - who may talk to bursard: the allow-list of CURVE clients and
 * their roles (docs/security.md).
 *
 * The allow-list is a text file, one client per line:
 *
 *     # public key (Z85, 40 chars)            name      roles
 *     Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID  worker-1  agent
 *     ...                                      feedbackd feedback
 *     ...                                      ops       operator,agent
 *
 * Names are 1-31 characters of [A-Za-z0-9_.-], unique; a key appears
 * once. Roles (a comma-separated list, no spaces):
 *   agent     choose, and feedback on its own decisions; ping, models
 *   feedback  feedback on any decision (a service recording users'
 *             corrections); ping, models
 *   operator  stats, export, models, ping, and the admin ops: adjust,
 *             reset, mark, show (controller/ctl_admin.c)
 * Empty lines and lines starting with '#' are comments. Any other line
 * that does not parse makes the whole file invalid (file:line: what).
 */
#ifndef BURSAR_CONTROLLER_AUTH_H
#define BURSAR_CONTROLLER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_NAME_MAX 32 /* incl. NUL */

enum {
    AUTH_AGENT = 1u,
    AUTH_FEEDBACK = 2u,
    AUTH_OPERATOR = 4u,
    AUTH_ALL = 7u /* an unauthenticated client on loopback, ipc or an
                     insecure endpoint: no CURVE configured */
};

typedef struct auth_client {
    uint8_t key[32];
    char name[AUTH_NAME_MAX];
    unsigned roles; /* AUTH_* */
} auth_client_t;

typedef struct auth_list {
    size_t n;
    auth_client_t *c;
} auth_list_t;

/* Parses the text of an allow-list (len bytes; file names it in
 * messages). Returns 0 and fills *out (free with auth_free), or -1 with
 * err = "FILE:LINE: what is wrong" (out left empty). */
int auth_parse(const char *text, size_t len, const char *file, auth_list_t *out,
               char *err, size_t err_len);
/* Reads and parses the file at path. */
int auth_load(const char *path, auth_list_t *out, char *err, size_t err_len);
void auth_free(auth_list_t *l);

/* The client with this public key, or NULL. O(log n): the list is kept
 * sorted by key. */
const auth_client_t *auth_find_key(const auth_list_t *l, const uint8_t key[32]);
/* The client of this name, or NULL. */
const auth_client_t *auth_find_name(const auth_list_t *l, const char *name);

/* "agent,operator" for a role mask (buf of 32 bytes). */
const char *auth_roles_text(unsigned roles, char buf[32]);

#endif
