/*
 * test_status_page.c - the status page (controller/status.html) in a real
 * browser against the real bursard: headless Chromium driven by
 * tests/status/page.mjs (playwright-core), which reports what the page
 * shows as text and SVG geometry; this side runs the daemon and its
 * traffic and checks what the page shows against `bursar stats --json`
 * and `bursar stats` (the intervals as the CLI prints them).
 *
 * The daemon runs on a test clock that moves only by clock ops (a day's
 * window from 00:00 UTC, 15-minute samples), so the history the page
 * draws is exact: one sample at start and one per round of traffic. The
 * traffic is a day of a router's life, fixed by its seed: three models
 * in "chat", two in "code", the midday rush spending above the paced
 * line, a model whose provider fails three times in a row and cools down,
 * one arm over its latency objective, and decisions left open at the end
 * (reserved spend). The page is then read while bursard runs, and again
 * after bursard stopped: it must say the daemon is not answering.
 *
 * A screenshot is written to $BURSAR_STATUS_SHOT (ctest: the build tree;
 * scripts/status_screenshot.sh: docs/status.png).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/harness.h"

#define START      1767225600 /* 2026-01-01 00:00 UTC, a day's window */
#define STEP_S     900        /* a round of traffic, and metrics.sample_s */
#define ROUNDS     56         /* 00:00 to 14:00 */
#define FLAKY_FROM 54         /* the round whose legacy calls fail */
#define LOADED     40         /* the rounds before the page is opened */

static const char config[] =
    "{\"models\":{"
    "\"gpt-4o-mini\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.15,"
    "\"price_out_per_mtok\":0.6},"
    "\"gpt-4o\":{\"provider\":\"openai\",\"price_in_per_mtok\":2.5,"
    "\"price_out_per_mtok\":10},"
    "\"claude-sonnet\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":3,"
    "\"price_out_per_mtok\":15},"
    "\"legacy-llm\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"
    "\"price_out_per_mtok\":2}},"
    "\"buckets\":{"
    "\"chat\":{\"models\":[\"gpt-4o-mini\",\"gpt-4o\",\"claude-sonnet\"]},"
    "\"code\":{\"models\":[\"gpt-4o\",\"claude-sonnet\"],"
    "\"latency_slo_ms\":2500},"
    "\"legacy\":{\"models\":[\"legacy-llm\"]}},"
    "\"budget\":{\"limit_usd\":3,\"window_s\":86400},"
    "\"health\":{\"failures\":3,\"cooldown_s\":3600,\"max_cooldown_s\":7200},"
    "\"policy\":{\"name\":\"ts-budget\",\"seed\":7},"
    "\"latency\":{\"window_s\":86400,\"min_samples\":3},"
    "\"store\":{\"sync\":\"nometasync\"},"
    "\"metrics\":{\"listen\":\"127.0.0.1:0\",\"sample_s\":900,"
    "\"samples\":200}}";

/* ------------------------------------------------------------ traffic */

static uint64_t lcg = 12345;

static double
unif(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

typedef struct model_sim {
    const char *name;
    double p_success, cost_usd, latency_ms;
} model_sim_t;

static const model_sim_t sims[] = {
    {"gpt-4o-mini", 0.72, 0.0009, 700},
    {"gpt-4o", 0.86, 0.011, 1700},
    {"claude-sonnet", 0.9, 0.016, 3100}, /* over code's 2500 ms */
    {"legacy-llm", 0.5, 0.002, 900},
};

static const model_sim_t *
sim_of(const char *model)
{
    for (size_t i = 0; i < sizeof sims / sizeof sims[0]; i++)
        if (strcmp(sims[i].name, model) == 0)
            return &sims[i];
    fail_msg("bursard chose an unknown model %s", model);
    return NULL;
}

/* Decisions of bucket b in round r (the share chart's intervals). */
static int with_decisions[3][ROUNDS];

static void
one(th_client_t *c, const char *bucket, int settle, int fail_provider)
{
    cJSON *r = th_ok(c, "{\"op\":\"choose\",\"bucket\":\"%s\"}", bucket);
    const model_sim_t *m = sim_of(th_str(r, "model"));
    char id[512];
    snprintf(id, sizeof id, "%s", th_str(r, "decision_id"));
    cJSON_Delete(r);
    if (fail_provider) {
        cJSON_Delete(th_ok(c,
                           "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                           "\"kind\":\"provider_error\",\"error\":\"HTTP "
                           "503\"}",
                           id));
        return;
    }
    double u = unif(), cost = m->cost_usd * (0.6 + 0.8 * unif());
    double lat = m->latency_ms * (0.7 + 0.6 * unif());
    if (!settle)
        return;
    cJSON_Delete(th_ok(c,
                       "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                       "\"kind\":\"outcome\",\"success\":%s,"
                       "\"cost_usd\":%.6f,\"latency_ms\":%.0f}",
                       id, u < m->p_success ? "true" : "false", cost, lat));
}

/* A day until 14:00, rounds from to to: each round its decisions, then
 * the clock 15 minutes on (the loop samples before it reads the next
 * request). */
static void
traffic(const char *endpoint, int from, int to)
{
    th_client_t *c = th_client_new(endpoint);
    for (int r = from; r < to; r++) {
        int hour = r / 4;
        int n = 1 + r % 3 + (hour >= 8 && hour < 12 ? 9 : hour >= 6 ? 4 : 0);
        for (int i = 0; i < n; i++) {
            int code = unif() < 0.3;
            with_decisions[code][r] = 1;
            one(c, code ? "code" : "chat", r < ROUNDS - 1 || i < n - 3, 0);
        }
        if (r == 4 || r == 30) { /* the legacy model works */
            one(c, "legacy", 1, 0);
            with_decisions[2][r] = 1;
        }
        if (r == FLAKY_FROM) { /* then fails three times: a cooldown */
            for (int i = 0; i < 3; i++)
                one(c, "legacy", 1, 1);
            with_decisions[2][r] = 1;
        }
        cJSON_Delete(th_ok(c, "{\"op\":\"clock\",\"advance_s\":%d}", STEP_S));
    }
    th_client_destroy(&c);
}

/* ------------------------------------------------------------ the page */

typedef struct browser {
    pid_t pid;
    int in, out; /* its stdin (we write), its stdout (we read) */
    char log[700];
    char buf[1 << 20];
    size_t len;
} browser_t;

static char *
file_tail(const char *path)
{
    static char t[4096];
    t[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return t;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > 4000 ? n - 4000 : 0, SEEK_SET);
    size_t got = fread(t, 1, sizeof t - 1, f);
    t[got] = '\0';
    fclose(f);
    return t;
}

/* The next JSON line page.mjs prints; fails on {"error"}, on exit, and
 * after 60 s. */
static cJSON *
browser_read(browser_t *b)
{
    for (;;) {
        char *nl = memchr(b->buf, '\n', b->len);
        if (nl) {
            *nl = '\0';
            cJSON *j = cJSON_Parse(b->buf);
            size_t used = (size_t)(nl - b->buf) + 1;
            if (!j)
                fail_msg("page.mjs printed a line that is not JSON: %s",
                         b->buf);
            memmove(b->buf, b->buf + used, b->len - used);
            b->len -= used;
            const cJSON *e = cJSON_GetObjectItem(j, "error");
            if (cJSON_IsString(e))
                fail_msg("the browser: %s\n(its log %s:\n%s)", e->valuestring,
                         b->log, file_tail(b->log));
            return j;
        }
        struct pollfd p = {b->out, POLLIN, 0};
        int pr = poll(&p, 1, 60000);
        if (pr == 0)
            fail_msg("page.mjs said nothing for 60 s; its log %s:\n%s", b->log,
                     file_tail(b->log));
        if (b->len + 1 >= sizeof b->buf)
            fail_msg("page.mjs printed a line over %zu bytes", sizeof b->buf);
        ssize_t n = read(b->out, b->buf + b->len, sizeof b->buf - 1 - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("page.mjs exited; its log %s:\n%s", b->log,
                     file_tail(b->log));
        b->len += (size_t)n;
    }
}

static cJSON *
browser_cmd(browser_t *b, const char *cmd)
{
    size_t n = strlen(cmd);
    if (write(b->in, cmd, n) != (ssize_t)n || write(b->in, "\n", 1) != 1)
        fail_msg("cannot write to page.mjs: %s", strerror(errno));
    return browser_read(b);
}

/* node page.mjs URL [mode]; its first line is read by the caller. */
static void
browser_open_mode(browser_t *b, const char *dir, const char *url,
                  const char *mode)
{
    const char *src = getenv("BURSAR_SOURCE_DIR");
    const char *mods = getenv("BURSAR_NODE_MODULES");
    if (!src || !mods)
        fail_msg("BURSAR_SOURCE_DIR and BURSAR_NODE_MODULES must be set "
                 "(ctest sets them: tests/status/CMakeLists.txt)");
    char script[600];
    snprintf(script, sizeof script, "%s/tests/status/page.mjs", src);
    if (system("command -v node >/dev/null 2>&1") != 0)
        fail_msg("node is missing: install Debian's nodejs (scripts/deps.sh "
                 "does)");
    snprintf(b->log, sizeof b->log, "%s/page.log", dir);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t parent = getpid();
    fflush(NULL);
    b->pid = fork();
    assert_true(b->pid >= 0);
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], 0);
        dup2(out[1], 1);
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        close(in[1]);
        close(out[0]);
        execlp("node", "node", script, url, mode, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    b->in = in[1];
    b->out = out[0];
    b->len = 0;
    signal(SIGPIPE, SIG_IGN);
}

/* node page.mjs URL, once the page drew live data (its first line). */
static cJSON *
browser_open(browser_t *b, const char *dir, const char *url)
{
    browser_open_mode(b, dir, url, NULL);
    return browser_read(b);
}

static void
browser_close(browser_t *b)
{
    cJSON *j = NULL;
    if (write(b->in, "quit\n", 5) == 5) {
        struct pollfd p = {b->out, POLLIN, 0};
        if (poll(&p, 1, 20000) > 0)
            j = NULL; /* EOF expected */
    }
    cJSON_Delete(j);
    close(b->in);
    close(b->out);
    int st;
    for (int i = 0; i < 200 && waitpid(b->pid, &st, WNOHANG) == 0; i++)
        th_sleep_ms(50);
    if (waitpid(b->pid, &st, WNOHANG) == 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &st, 0);
    }
}

/* ------------------------------------------------------------ checks */

/* A figure the page shows as text (after prefix, e.g. "$") is v to its
 * shown precision: the difference is at most half its last digit. */
static void
expect_shown(const char *what, const char *shown, const char *prefix, double v)
{
    if (!shown)
        fail_msg("%s: the page shows nothing", what);
    size_t pl = strlen(prefix);
    if (strncmp(shown, prefix, pl) != 0)
        fail_msg("%s: the page shows \"%s\", expected %s%g", what, shown,
                 prefix, v);
    const char *num = shown + pl;
    char *end;
    double got = strtod(num, &end);
    const char *dot = strchr(num, '.');
    int digits = dot ? (int)(end - dot - 1) : 0;
    double half = 0.5 * pow(10, -digits) + 1e-12;
    if (end == num || fabs(got - v) > half)
        fail_msg("%s: the page shows \"%s\"; bursar stats says %.10g", what,
                 shown, v);
}

static const char *
jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *
find(const cJSON *arr, const char *key, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *s = jstr(e, key);
        if (s && strcmp(s, name) == 0)
            return e;
    }
    fail_msg("no %s \"%s\" in %s", key, name, cJSON_PrintUnformatted(arr));
    return NULL;
}

static void
expect_text(const char *what, const char *shown, const char *want)
{
    if (!shown || strcmp(shown, want) != 0)
        fail_msg("%s: the page shows \"%s\", expected \"%s\"", what,
                 shown ? shown : "(nothing)", want);
}

/* The interval `bursar stats` prints on the line of model in bucket's
 * table: "[lo, hi]". */
static void
cli_interval(const char *text, const char *bucket, const char *model,
             double *lo, double *hi)
{
    char head[128];
    snprintf(head, sizeof head, "bucket %s:", bucket);
    const char *b = strstr(text, head);
    if (!b)
        fail_msg("bursar stats has no \"%s\":\n%s", head, text);
    const char *next = strstr(b + 1, "\nbucket ");
    for (const char *l = strchr(b, '\n'); l && (!next || l < next);
         l = strchr(l + 1, '\n')) {
        char name[64];
        double mean;
        if (sscanf(l + 1, "%63s %lf [%lf, %lf]", name, &mean, lo, hi) == 4 &&
            strcmp(name, model) == 0)
            return;
    }
    fail_msg("bursar stats has no interval for %s in %s:\n%s", model, bucket,
             text);
}

static void
check_budget(const cJSON *page, const cJSON *st)
{
    const cJSON *f = cJSON_GetObjectItem(page, "figures");
    const cJSON *b = cJSON_GetObjectItem(st, "budget");
    expect_shown("limit", jstr(f, "limit"), "$", th_num(b, "limit_usd"));
    expect_shown("spent", jstr(f, "spent"), "$", th_num(b, "spent_usd"));
    expect_shown("reserved", jstr(f, "reserved"), "$",
                 th_num(b, "reserved_usd"));
    expect_shown("remaining", jstr(f, "remaining"), "$",
                 th_num(b, "remaining_usd"));
    expect_shown("target per request", jstr(f, "target"), "$",
                 th_num(b, "target_usd"));
    expect_shown("mu", jstr(f, "mu"), "",
                 th_num(cJSON_GetObjectItem(st, "policy"), "mu"));
    char want[64];
    snprintf(want, sizeof want, "%.0f", th_num(st, "decisions"));
    expect_text("decisions", jstr(f, "decisions"), want);
    /* the traffic meant these: a budget over the even pace (so mu moved),
     * open decisions, a real remainder */
    assert_true(th_num(b, "reserved_usd") > 0);
    assert_true(th_num(b, "spent_usd") > 3.0 * 14 / 24);
    assert_true(th_num(cJSON_GetObjectItem(st, "policy"), "mu") > 0);
    expect_text("window", jstr(f, "window"),
                "2026-01-01 00:00 \u2013 2026-01-02 00:00");
    /* the chart: one point per sample, the plan and the pacer's line */
    const cJSON *sp = cJSON_GetObjectItem(page, "spend");
    if (th_num(sp, "points") != ROUNDS + 1 || th_num(sp, "dots") != ROUNDS + 1)
        fail_msg("the spend chart draws %g points (%g dots); the history "
                 "holds %d samples",
                 th_num(sp, "points"), th_num(sp, "dots"), ROUNDS + 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(sp, "plan")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(sp, "pacer")));
}

static void
check_arms(const cJSON *page, const cJSON *st, const char *cli)
{
    const cJSON *pa = cJSON_GetObjectItem(page, "arms");
    const cJSON *bs = cJSON_GetObjectItem(st, "buckets");
    assert_int_equal(cJSON_GetArraySize(pa), cJSON_GetArraySize(bs));
    const cJSON *b;
    cJSON_ArrayForEach(b, bs)
    {
        const char *bn = th_str(b, "name");
        const cJSON *rows = cJSON_GetObjectItem(find(pa, "bucket", bn), "rows");
        const cJSON *arms = cJSON_GetObjectItem(b, "arms");
        assert_int_equal(cJSON_GetArraySize(rows), cJSON_GetArraySize(arms));
        const cJSON *a;
        cJSON_ArrayForEach(a, arms)
        {
            const char *m = th_str(a, "model");
            const cJSON *r = find(rows, "model", m);
            char what[160], want[64];
            snprintf(what, sizeof what, "%s/%s mean", bn, m);
            expect_shown(what, jstr(r, "mean"), "", th_num(a, "mean"));
            snprintf(what, sizeof what, "%s/%s pulls", bn, m);
            snprintf(want, sizeof want, "%.0f", th_num(a, "pulls"));
            expect_text(what, jstr(r, "pulls"), want);
            snprintf(what, sizeof what, "%s/%s share", bn, m);
            char share[32];
            snprintf(share, sizeof share, "%s", jstr(r, "share"));
            assert_non_null(strchr(share, '%'));
            *strchr(share, '%') = '\0';
            expect_shown(what, share, "", 100 * th_num(a, "share"));
            double lo, hi, plo, phi;
            cli_interval(cli, bn, m, &lo, &hi);
            if (sscanf(jstr(r, "interval"), "[%lf, %lf]", &plo, &phi) != 2 ||
                fabs(plo - lo) > 0.0011 || fabs(phi - hi) > 0.0011)
                fail_msg("%s/%s: the page shows the interval %s; bursar "
                         "stats prints [%.3f, %.3f]",
                         bn, m, jstr(r, "interval"), lo, hi);
            /* the dot at the mean (x = 4 + 102 v), inside its whiskers */
            double cx = th_num(r, "dot");
            const cJSON *w = cJSON_GetObjectItem(r, "whisker");
            double x1 = cJSON_GetArrayItem(w, 0)->valuedouble;
            double x2 = cJSON_GetArrayItem(w, 1)->valuedouble;
            if (fabs(cx - (4 + 102 * th_num(a, "mean"))) > 0.01 ||
                !(x1 <= cx && cx <= x2) || fabs(x1 - (4 + 102 * plo)) > 0.2 ||
                fabs(x2 - (4 + 102 * phi)) > 0.2)
                fail_msg("%s/%s: dot at x %g, whiskers %g..%g; the mean %g, "
                         "the interval %s",
                         bn, m, cx, x1, x2, th_num(a, "mean"),
                         jstr(r, "interval"));
            /* the latency quantile against the objective */
            int breach = cJSON_IsTrue(cJSON_GetObjectItem(a, "slo_breach"));
            if (breach != cJSON_IsTrue(cJSON_GetObjectItem(r, "breach")))
                fail_msg("%s/%s: slo_breach %d, the page shows %s (%s)", bn, m,
                         breach, jstr(r, "latency"),
                         cJSON_IsTrue(cJSON_GetObjectItem(r, "breach"))
                             ? "in red"
                             : "plain");
            const cJSON *q = cJSON_GetObjectItem(a, "latency_q_ms");
            if (cJSON_IsNumber(q)) {
                snprintf(what, sizeof what, "%s/%s latency", bn, m);
                char lat[32];
                snprintf(lat, sizeof lat, "%s", jstr(r, "latency"));
                char *ms = strstr(lat, " ms");
                if (!ms)
                    fail_msg("%s: \"%s\"", what, jstr(r, "latency"));
                *ms = '\0';
                expect_shown(what, lat, "", q->valuedouble);
            }
        }
    }
    /* the traffic meant this: claude-sonnet over code's objective (a
     * day's latency window: once over, it stays) */
    int breach = 0;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(th_bucket(st, "code"), "arms"))
    {
        breach += cJSON_IsTrue(cJSON_GetObjectItem(b, "slo_breach"));
    }
    if (!breach)
        fail_msg("the traffic put no arm of code over its latency "
                 "objective: %s",
                 cJSON_PrintUnformatted(th_bucket(st, "code")));
}

static void
check_shares(const cJSON *page, const cJSON *st)
{
    static const char *const names[3] = {"chat", "code", "legacy"};
    const cJSON *ps = cJSON_GetObjectItem(page, "shares");
    for (int k = 0; k < 3; k++) {
        const cJSON *s = find(ps, "bucket", names[k]);
        int want = 0;
        for (int r = 0; r < ROUNDS; r++)
            want += with_decisions[k][r];
        if (th_num(s, "intervals") != want)
            fail_msg("%s: the share chart draws %g intervals; %d rounds had "
                     "decisions",
                     names[k], th_num(s, "intervals"), want);
        /* every decision was made between two samples of the history, so
         * the legend's share over it is the bucket's share of pulls */
        const cJSON *a;
        cJSON_ArrayForEach(a,
                           cJSON_GetObjectItem(th_bucket(st, names[k]), "arms"))
        {
            const char *m = th_str(a, "model");
            char what[128], share[32];
            snprintf(what, sizeof what, "%s legend %s", names[k], m);
            const char *shown = jstr(cJSON_GetObjectItem(s, "legend"), m);
            if (!shown || !strchr(shown, '%'))
                fail_msg("%s: \"%s\"", what, shown ? shown : "(nothing)");
            snprintf(share, sizeof share, "%s", shown);
            *strchr(share, '%') = '\0';
            expect_shown(what, share, "", 100 * th_num(a, "share"));
            /* an area piece per interval where the model had decisions */
            double rects = th_num(cJSON_GetObjectItem(s, "rects"), m);
            if (th_num(a, "pulls") > 0 ? !(rects >= 1 && rects <= want)
                                       : rects != 0)
                fail_msg("%s: %g area pieces for %g pulls", what, rects,
                         th_num(a, "pulls"));
        }
    }
}

static void
check_health(const cJSON *page, const cJSON *st)
{
    const cJSON *ph = cJSON_GetObjectItem(page, "health");
    const cJSON *hs = cJSON_GetObjectItem(st, "health");
    assert_int_equal(cJSON_GetArraySize(ph), cJSON_GetArraySize(hs));
    const cJSON *h;
    int cooling = 0;
    cJSON_ArrayForEach(h, hs)
    {
        const char *m = th_str(h, "model");
        const cJSON *r = find(ph, "model", m);
        char state[32], what[128], want[64];
        snprintf(state, sizeof state, "%s", th_str(h, "state"));
        char *u = strchr(state, '_');
        if (u)
            *u = '-';
        snprintf(what, sizeof what, "health of %s", m);
        expect_text(what, jstr(r, "state"), state);
        if (strcmp(jstr(r, "cls"), th_str(h, "state")) != 0)
            fail_msg("%s: row class \"%s\"", what, jstr(r, "cls"));
        snprintf(want, sizeof want, "%.0f", th_num(h, "consecutive_failures"));
        expect_text(what, jstr(r, "failures"), want);
        snprintf(want, sizeof want, "%.0f", th_num(h, "errors_total"));
        expect_text(what, jstr(r, "errors"), want);
        const cJSON *cu = cJSON_GetObjectItem(h, "cooldown_until");
        if (cJSON_IsNumber(cu)) {
            time_t t = (time_t)cu->valuedouble;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(want, sizeof want, "%H:%M:%S UTC (in ", &tm);
            if (!strstr(jstr(r, "cooldown"), want))
                fail_msg("%s: cooldown \"%s\", expected \"%s...\"", what,
                         jstr(r, "cooldown"), want);
            cooling++;
        } else {
            expect_text(what, jstr(r, "cooldown"), "\u2014");
        }
    }
    /* the traffic meant this: legacy-llm failed 3 times, cooling down */
    assert_int_equal(cooling, 1);
    expect_text("legacy-llm", jstr(find(ph, "model", "legacy-llm"), "state"),
                "cooldown");
}

static void
expect_no_errors(const cJSON *page)
{
    const cJSON *e = cJSON_GetObjectItem(page, "errors");
    if (cJSON_GetArraySize(e) != 0)
        fail_msg("the page logged errors: %s", cJSON_PrintUnformatted(e));
}

static int
log_port(const char *log)
{
    const char *t = file_tail(log);
    const char *p = strstr(t, "status page on ");
    p = p ? strstr(p, ", port ") : NULL;
    if (!p)
        fail_msg("bursard printed no metrics port in %s:\n%s", log, t);
    return atoi(p + 7);
}

/* bursar stats --json (parsed) and bursar stats (into text). */
static cJSON *
cli_stats(const char *endpoint, char *text, size_t cap)
{
    static char js[1 << 20];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --controller %s stats --json",
             th_need("bursar"), endpoint);
    assert_int_equal(th_run(cmd, js, sizeof js), 0);
    snprintf(cmd, sizeof cmd, "%s --controller %s stats", th_need("bursar"),
             endpoint);
    assert_int_equal(th_run(cmd, text, cap), 0);
    cJSON *st = cJSON_Parse(js);
    assert_non_null(st);
    return st;
}

/* The page fetched the whole history once, then only what it had not
 * seen: ?since=N, N growing (the samples of the rounds after it opened). */
static void
expect_fetches(const cJSON *page)
{
    const cJSON *f = cJSON_GetObjectItem(page, "fetches"), *e;
    int n = 0, grew = 0;
    long last = -1;
    cJSON_ArrayForEach(e, f)
    {
        const char *q = cJSON_IsString(e) ? e->valuestring : "?";
        if (n++ == 0) {
            expect_text("the page's first fetch", q, "full");
            continue;
        }
        long k;
        if (sscanf(q, "since=%ld", &k) != 1 || k < last)
            fail_msg("the page's fetch %d asked for \"%s\" (after since=%ld): "
                     "%s",
                     n, q, last, cJSON_PrintUnformatted(f));
        grew += last >= 0 && k > last;
        last = k;
    }
    if (n < 3 || !grew || last != ROUNDS + 1)
        fail_msg("the page's fetches: %s; expected the whole history once, "
                 "then since=N up to since=%d",
                 cJSON_PrintUnformatted(f), ROUNDS + 1);
}

static void
test_status_page(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config);
    char clock[64];
    snprintf(clock, sizeof clock, "--test-clock=%d", START);
    th_start_args(&d, clock);
    int port = log_port(d.log);
    traffic(d.endpoint, 0, LOADED);

    char cmd[1024], url[128];
    browser_t *b = calloc(1, sizeof *b);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/?refresh=300", port);
    cJSON_Delete(browser_open(b, d.dir, url));
    /* the rest of the day while the page is open: it adds the samples it
     * has not seen (?since=N) to those of its first fetch */
    traffic(d.endpoint, LOADED, ROUNDS);
    static char cli_text[1 << 16];
    cJSON *st = cli_stats(d.endpoint, cli_text, sizeof cli_text);
    cJSON *page = browser_cmd(b, "snap");
    expect_fetches(page);
    /* the screenshot first: it shows what a failure below is about */
    const char *shot = getenv("BURSAR_STATUS_SHOT");
    if (shot && *shot) {
        snprintf(cmd, sizeof cmd, "shot %s", shot);
        cJSON *s = browser_cmd(b, cmd);
        double bytes = th_num(s, "bytes");
        if (!(bytes > 10000 && bytes < 200000))
            fail_msg("the screenshot %s has %g bytes (expected 10 to 200 kB)",
                     shot, bytes);
        cJSON_Delete(s);
    }

    expect_text("state", jstr(page, "state"), "live");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(page, "alert")));
    assert_true(strncmp(jstr(page, "updated"), "updated ", 8) == 0);
    check_budget(page, st);
    check_arms(page, st, cli_text);
    check_shares(page, st);
    check_health(page, st);
    expect_no_errors(page);

    /* bursard stops: the page says so and keeps the last figures */
    assert_int_equal(th_stop(&d), 0);
    cJSON *down = browser_cmd(b, "down");
    const char *al = jstr(down, "alert");
    if (!al || !strstr(al, "bursard is not answering") ||
        !strstr(al, "The figures below are from"))
        fail_msg("after bursard stopped the page's alert is \"%s\"",
                 al ? al : "(hidden)");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(down, "stale")));
    expect_text("spent, after the stop",
                jstr(cJSON_GetObjectItem(down, "figures"), "spent"),
                jstr(cJSON_GetObjectItem(page, "figures"), "spent"));
    browser_close(b);
    free(b);
    cJSON_Delete(down);
    cJSON_Delete(page);
    cJSON_Delete(st);
    th_cleanup(&d);
}

/* GET path on 127.0.0.1:port with an optional header line: the status
 * code (the answer's head and body into out). */
static int
http_get(int port, const char *path, const char *header, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("cannot connect to port %d: %s", port, strerror(errno));
    char rq[512];
    int n = snprintf(rq, sizeof rq,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s"
                     "Connection: close\r\n\r\n",
                     path, header ? header : "", header ? "\r\n" : "");
    assert_int_equal(write(fd, rq, (size_t)n), n);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fd);
    int st = 0;
    if (sscanf(out, "HTTP/1.%*d %d", &st) != 1)
        fail_msg("GET %s: not an HTTP answer: %.200s", path, out);
    return st;
}

static void
expect_status(int port, const char *path, const char *header, int want)
{
    static char out[1 << 20];
    int st = http_get(port, path, header, out, sizeof out);
    if (st != want)
        fail_msg("GET %s%s%s: %d, expected %d: %.300s", path,
                 header ? " with " : "", header ? header : "", st, want, out);
}

/* No console error but the 401s of status.json without the token. */
static void
expect_only_401s(const cJSON *page)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(page, "errors"))
    {
        if (!cJSON_IsString(e) || !strstr(e->valuestring, "401"))
            fail_msg(
                "the page logged errors: %s",
                cJSON_PrintUnformatted(cJSON_GetObjectItem(page, "errors")));
    }
}

/* With metrics.token_env: the page (it holds no data) and /healthz are
 * served without the token, status.json and /metrics are not. The page
 * without the token asks for it and shows nothing; typed into its form,
 * or given in the address' fragment (/#token=..., which the page then
 * takes out of the address), it draws. */
static void
test_status_token(void **state)
{
    (void)state;
    static const char token[] = "s3cret-Page-Token";
    setenv("BURSAR_TEST_STATUS_TOKEN", token, 1);
    char cfg[sizeof config + 64]; /* config's, with the token */
    snprintf(cfg, sizeof cfg,
             "%.*s,\"token_env\":\"BURSAR_TEST_STATUS_TOKEN\"}}",
             (int)(strlen(config) - 2), config);
    th_daemon_t d;
    th_setup(&d, cfg);
    th_start(&d);
    int port = log_port(d.log);
    traffic(d.endpoint, 0, 2);
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    expect_status(port, "/", NULL, 200);
    expect_status(port, "/healthz", NULL, 200);
    expect_status(port, "/status.json", NULL, 401);
    expect_status(port, "/status.json?since=0", NULL, 401);
    expect_status(port, "/metrics", NULL, 401);
    expect_status(port, "/status.json", auth, 200);
    expect_status(port, "/status.json?since=x", auth, 400);

    char url[256];
    browser_t *b = calloc(1, sizeof *b);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/?refresh=300", port);
    browser_open_mode(b, d.dir, url, "token");
    cJSON *p = browser_read(b);
    expect_text("state without the token", jstr(p, "state"), "token");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "auth")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "arms")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "health")), 0);
    expect_only_401s(p);
    cJSON_Delete(p);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "token %s", token);
    p = browser_cmd(b, cmd);
    expect_text("state with the token typed in", jstr(p, "state"), "live");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(p, "auth")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "arms")), 3);
    expect_only_401s(p);
    cJSON_Delete(p);
    browser_close(b);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/?refresh=300#token=%s", port,
             token);
    p = browser_open(b, d.dir, url);
    expect_text("state with #token=", jstr(p, "state"), "live");
    expect_text("the address' fragment", jstr(p, "hash"), "");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "arms")), 3);
    expect_no_errors(p);
    cJSON_Delete(p);
    browser_close(b);
    free(b);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
    unsetenv("BURSAR_TEST_STATUS_TOKEN");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_page),
        cmocka_unit_test(test_status_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
