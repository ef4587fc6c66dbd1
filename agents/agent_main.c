/*
 * agent_main.c - bursar-agent, the reference worker.
 *
 *   bursar-agent --controller ENDPOINT [options] [TASKS.jsonl]
 *
 * Reads tasks as JSONL (the file, or standard input), routes each through
 * the controller, calls the providers (or a simulated scenario), validates,
 * reports, and writes one result per task as JSONL on standard output.
 * Progress and a summary go to standard error. docs/agents.md has it all.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autil.h"
#include "bursar.h"
#include "runreport.h"
#include "runner.h"

static void
usage(FILE *f)
{
    fprintf(
        f, "usage: bursar-agent --controller ENDPOINT [options] [TASKS.jsonl]\n"
           "  tasks: one JSON object per line: {\"id\":..,\"bucket\":..,\n"
           "         \"messages\":[..]} or \"prompt\":\"..\", optional "
           "\"validate\"\n"
           "options:\n"
           "  --config FILE            agent configuration (docs/agents.md)\n"
           "  --simulate SCENARIO      simulated providers (no API calls)\n"
           "  --spool PATH             feedback spool (default "
           "bursar-agent.spool)\n"
           "  --fallback-model NAME    model when the controller is away\n"
           "  --models FILE            provider details if the controller is\n"
           "                           away at start ({\"models\":{..}})\n"
           "  --concurrency N          tasks in flight (default 8)\n"
           "  --escalations N          after validation failures (default "
           "2)\n"
           "  --provider-timeout-ms N  per HTTP attempt (default 60000)\n"
           "  --attempts N             HTTP attempts per call (default 3)\n"
           "  --backoff-ms N           first retry backoff (default 250)\n"
           "  --retry-after-max-ms N   longest Retry-After honoured (30000)\n"
           "  --ctl-timeout-ms N       controller request timeout (1000)\n"
           "  --ctl-backoff-max-ms N   longest wait before probing an absent\n"
           "                           controller again (5000)\n"
           "  --drain-ms N             time to replay the spool at the end\n"
           "                           (default 10000)\n"
           "  --report                 a readable summary on stderr at the "
           "end\n"
           "  --quiet                  no progress lines\n");
}

/* The whole of path ("-": standard input), or NULL with errno set. */
static char *
slurp_path(const char *path)
{
    char *s = NULL;
    return bursar_read_file(path, &s, NULL) == 0 ? s : NULL;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
emit(void *ud, cJSON *res)
{
    if (ud)
        runreport_add(ud, res);
    char *s = cJSON_PrintUnformatted(res);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    cJSON_Delete(res);
}

static const char *
cfg_str(const cJSON *c, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long
cfg_num(const cJSON *c, const char *k, long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

/* Reads {"models":{name:{..}}} or {"models":[..]} or a bare object. */
static int
models_from_file(const char *path, bursar_model_t **out, size_t *n)
{
    char *s = slurp_path(path);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    if (!j)
        return -1;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "models");
    if (!ms)
        ms = j;
    size_t cnt = (size_t)cJSON_GetArraySize(ms);
    bursar_model_t *arr = calloc(cnt ? cnt : 1, sizeof(*arr));
    if (!arr)
        abort();
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        if (!cJSON_IsObject(m))
            continue;
        bursar_model_t *x = &arr[i++];
        const char *name = cJSON_IsObject(ms) ? m->string : cfg_str(m, "name");
        snprintf(x->name, sizeof(x->name), "%s", name ? name : "");
        const char *p = cfg_str(m, "provider");
        x->provider = p && strcmp(p, "anthropic") == 0
                          ? BURSAR_PROVIDER_ANTHROPIC
                          : BURSAR_PROVIDER_OPENAI;
        const char *v = cfg_str(m, "model");
        snprintf(x->model, sizeof(x->model), "%s", v ? v : x->name);
        v = cfg_str(m, "base_url");
        snprintf(x->base_url, sizeof(x->base_url), "%s", v ? v : "");
        v = cfg_str(m, "api_key_env");
        snprintf(x->api_key_env, sizeof(x->api_key_env), "%s", v ? v : "");
        const cJSON *pi =
            cJSON_GetObjectItemCaseSensitive(m, "price_in_per_mtok");
        const cJSON *po =
            cJSON_GetObjectItemCaseSensitive(m, "price_out_per_mtok");
        x->price_in_per_mtok = cJSON_IsNumber(pi) ? pi->valuedouble : 0;
        x->price_out_per_mtok = cJSON_IsNumber(po) ? po->valuedouble : 0;
    }
    cJSON_Delete(j);
    *out = arr;
    *n = i;
    return 0;
}

static void
progress(const runner_t *r, const bursar_t *b, int final)
{
    runner_stats_t st;
    bursar_stats_t bs;
    runner_stats(r, &st);
    bursar_stats(b, &bs);
    fprintf(stderr,
            "bursar-agent: %s%zu/%zu done, %zu valid, %zu escalations, "
            "%zu provider errors, %zu local decisions, %zu spooled, "
            "%zu replayed, $%.4f\n",
            final ? "finished: " : "", st.done, st.tasks, st.valid,
            st.escalations, st.provider_errors, st.local_decisions,
            bs.spooled - bs.local_feedback, bs.replayed, st.cost_usd);
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL, *config_path = NULL, *sim_path = NULL;
    const char *spool = NULL, *fallback = NULL, *models_path = NULL;
    const char *tasks_path = NULL;
    long concurrency = -1, escalations = -1, prov_timeout = -1;
    long attempts = -1, backoff = -1, ra_max = -1, ctl_timeout = -1;
    long ctl_backoff_max = -1;
    long drain_ms = 10000;
    int quiet = 0, want_report = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (++i, 1))
        if (OPT("--controller"))
            endpoint = v;
        else if (OPT("--config"))
            config_path = v;
        else if (OPT("--simulate"))
            sim_path = v;
        else if (OPT("--spool"))
            spool = v;
        else if (OPT("--fallback-model"))
            fallback = v;
        else if (OPT("--models"))
            models_path = v;
        else if (OPT("--concurrency"))
            concurrency = atol(v);
        else if (OPT("--escalations"))
            escalations = atol(v);
        else if (OPT("--provider-timeout-ms"))
            prov_timeout = atol(v);
        else if (OPT("--attempts"))
            attempts = atol(v);
        else if (OPT("--backoff-ms"))
            backoff = atol(v);
        else if (OPT("--retry-after-max-ms"))
            ra_max = atol(v);
        else if (OPT("--ctl-timeout-ms"))
            ctl_timeout = atol(v);
        else if (OPT("--ctl-backoff-max-ms"))
            ctl_backoff_max = atol(v);
        else if (OPT("--drain-ms"))
            drain_ms = atol(v);
        else if (strcmp(a, "--quiet") == 0)
            quiet = 1;
        else if (strcmp(a, "--report") == 0)
            want_report = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "bursar-agent: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!tasks_path)
            tasks_path = a;
        else {
            usage(stderr);
            return 2;
        }
#undef OPT
    }
    signal(SIGPIPE, SIG_IGN);

    cJSON *cfg = NULL;
    if (config_path) {
        char *s = slurp_path(config_path);
        cfg = s ? cJSON_Parse(s) : NULL;
        free(s);
        if (!cJSON_IsObject(cfg)) {
            fprintf(stderr, "bursar-agent: %s: cannot read a JSON object\n",
                    config_path);
            return 1;
        }
    }
    if (!endpoint)
        endpoint = cfg_str(cfg, "controller");
    if (!endpoint) {
        fprintf(stderr, "bursar-agent: --controller ENDPOINT is required\n");
        usage(stderr);
        cJSON_Delete(cfg);
        return 2;
    }
    if (!spool)
        spool = cfg_str(cfg, "spool");
    if (!spool)
        spool = "bursar-agent.spool";
    if (!fallback)
        fallback = cfg_str(cfg, "fallback_model");

    simprov_t *sim = NULL;
    if (sim_path) {
        char err[256];
        if (simprov_load(sim_path, &sim, err, sizeof(err)) != 0) {
            fprintf(stderr, "bursar-agent: scenario %s: %s\n", sim_path, err);
            cJSON_Delete(cfg);
            return 1;
        }
    }

    bursar_opts_t bo;
    bursar_opts_init(&bo);
    bo.endpoint = endpoint;
    bo.spool_path = spool;
    bo.timeout_ms =
        (int)(ctl_timeout > 0
                  ? ctl_timeout
                  : cfg_num(cfg, "controller_timeout_ms", bo.timeout_ms));
    bo.attempts = (int)cfg_num(cfg, "controller_attempts", bo.attempts);
    bo.backoff_max_ms =
        (int)(ctl_backoff_max > 0 ? ctl_backoff_max
                                  : cfg_num(cfg, "controller_backoff_max_ms",
                                            bo.backoff_max_ms));
    if (bo.backoff_ms > bo.backoff_max_ms)
        bo.backoff_ms = bo.backoff_max_ms;
    bursar_t *client = NULL;
    if (bursar_new(&client, &bo) != 0) {
        fprintf(stderr, "bursar-agent: cannot create the client for %s\n",
                endpoint);
        return 1;
    }

    /* Provider details: from the controller (waiting a little for it),
     * else from --models. */
    bursar_model_t *models = NULL;
    size_t n_models = 0;
    int mrc = BURSAR_EUNREACHABLE;
    double until = autil_now_mono() + 3.0;
    while ((mrc = bursar_models(client, &models, &n_models)) ==
               BURSAR_EUNREACHABLE &&
           autil_now_mono() < until)
        sleep_ms(200);
    if (mrc != BURSAR_OK) {
        if (models_path &&
            models_from_file(models_path, &models, &n_models) == 0) {
            fprintf(stderr,
                    "bursar-agent: controller: %s; provider details "
                    "from %s\n",
                    bursar_strerror(mrc), models_path);
        } else if (!sim) {
            fprintf(stderr,
                    "bursar-agent: cannot get the models from %s: %s %s\n",
                    endpoint, bursar_strerror(mrc), bursar_last_error(client));
            bursar_destroy(&client);
            cJSON_Delete(cfg);
            return 1;
        }
    }
    /* The fallback model, by default the controller's first model. Rebuild
     * the client so the fallback is known to it. */
    if (!fallback && n_models > 0)
        fallback = models[0].name;
    if (fallback) {
        bursar_destroy(&client);
        bo.fallback_model = fallback;
        if (bursar_new(&client, &bo) != 0)
            return 1;
    }

    char err[256];
    route_t *route = NULL;
    if (route_parse(cJSON_GetObjectItemCaseSensitive(cfg, "routing"), &route,
                    err, sizeof(err)) != 0) {
        fprintf(stderr, "bursar-agent: %s: %s\n", config_path, err);
        return 1;
    }

    runner_opts_t ro;
    runner_opts_init(&ro);
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(cfg, "provider");
    ro.prov.timeout_ms = cfg_num(pc, "timeout_ms", ro.prov.timeout_ms);
    ro.prov.connect_timeout_ms =
        cfg_num(pc, "connect_timeout_ms", ro.prov.connect_timeout_ms);
    ro.prov.max_attempts =
        (int)cfg_num(pc, "max_attempts", ro.prov.max_attempts);
    ro.prov.backoff_ms = (int)cfg_num(pc, "backoff_ms", ro.prov.backoff_ms);
    ro.prov.backoff_max_ms =
        (int)cfg_num(pc, "backoff_max_ms", ro.prov.backoff_max_ms);
    ro.prov.retry_after_max_ms =
        (int)cfg_num(pc, "retry_after_max_ms", ro.prov.retry_after_max_ms);
    ro.prov.max_tokens = (int)cfg_num(pc, "max_tokens", ro.prov.max_tokens);
    if (prov_timeout > 0)
        ro.prov.timeout_ms = prov_timeout;
    if (attempts > 0)
        ro.prov.max_attempts = (int)attempts;
    if (backoff >= 0)
        ro.prov.backoff_ms = (int)backoff;
    if (ra_max >= 0)
        ro.prov.retry_after_max_ms = (int)ra_max;
    ro.concurrency = (size_t)cfg_num(cfg, "concurrency", 8);
    if (concurrency > 0)
        ro.concurrency = (size_t)concurrency;
    ro.max_escalations = (int)cfg_num(cfg, "max_escalations", 2);
    if (escalations >= 0)
        ro.max_escalations = (int)escalations;
    ro.route = route;
    ro.validators = cJSON_GetObjectItemCaseSensitive(cfg, "validators");
    ro.sim = sim;
    ro.emit = emit;
    runreport_t *report = want_report ? runreport_new() : NULL;
    ro.emit_ud = report;

    runner_t *run = NULL;
    if (runner_new(&run, client, models, n_models, &ro) != 0) {
        fprintf(stderr, "bursar-agent: cannot initialise libcurl\n");
        return 1;
    }

    /* Tasks: the file, the scenario's generated tasks, or stdin. Read
     * whole before starting, so no provider call waits on input. */
    size_t idx = 0;
    if (!tasks_path && sim && simprov_task_count(sim) > 0) {
        for (size_t i = 0; i < simprov_task_count(sim); i++) {
            cJSON *t = cJSON_CreateObject();
            char id[32], prompt[96];
            const char *b = simprov_task_bucket(sim, i);
            snprintf(id, sizeof(id), "sim-%06zu", i + 1);
            snprintf(prompt, sizeof(prompt), "simulated %s task %zu", b, i + 1);
            cJSON_AddStringToObject(t, "id", id);
            cJSON_AddStringToObject(t, "bucket", b);
            cJSON_AddStringToObject(t, "prompt", prompt);
            runner_add(run, t, idx++);
        }
    } else {
        char *text = NULL;
        if (tasks_path && strcmp(tasks_path, "-") != 0) {
            text = slurp_path(tasks_path);
            if (!text) {
                fprintf(stderr, "bursar-agent: cannot read %s\n", tasks_path);
                return 1;
            }
        } else {
            text = slurp_path("-");
        }
        size_t lineno = 0;
        char *next = text;
        while (next && *next) {
            char *line = next;
            char *nl = strchr(line, '\n');
            if (nl) {
                *nl = '\0';
                next = nl + 1;
            } else {
                next = NULL;
            }
            lineno++;
            char *p = line;
            while (*p == ' ' || *p == '\t' || *p == '\r')
                p++;
            if (!*p)
                continue;
            cJSON *t = cJSON_Parse(p);
            if (!cJSON_IsObject(t)) {
                cJSON_Delete(t);
                cJSON *res = cJSON_CreateObject();
                cJSON_AddNullToObject(res, "id");
                char m[96];
                snprintf(m, sizeof(m), "line %zu: not a JSON object", lineno);
                cJSON_AddStringToObject(res, "error", m);
                cJSON_AddBoolToObject(res, "valid", 0);
                emit(NULL, res);
                continue;
            }
            runner_add(run, t, idx++);
        }
        free(text);
    }

    double last = autil_now_mono();
    while (runner_run(run, 200) > 0) {
        if (!quiet && autil_now_mono() - last >= 1.0) {
            progress(run, client, 0);
            last = autil_now_mono();
        }
    }

    /* Give spooled feedback its chance to reach the controller. */
    int rrc = bursar_replay(client, NULL);
    double drain_until = autil_now_mono() + drain_ms / 1000.0;
    while (rrc == BURSAR_EUNREACHABLE && autil_now_mono() < drain_until) {
        sleep_ms(200);
        rrc = bursar_replay(client, NULL);
    }
    if (!quiet || rrc != BURSAR_OK)
        progress(run, client, 1);
    if (rrc != BURSAR_OK)
        fprintf(stderr,
                "bursar-agent: the spool %s still holds feedback (%s); it "
                "is replayed by the next run\n",
                spool, bursar_strerror(rrc));
    bursar_stats_t bs;
    bursar_stats(client, &bs);
    if (!quiet)
        fprintf(stderr,
                "bursar-agent: controller requests %zu, timeouts %zu, "
                "replay dropped %zu, duplicates %zu, local feedback %zu\n",
                bs.requests, bs.timeouts, bs.replay_dropped, bs.duplicates,
                bs.local_feedback);

    if (report) {
        char *reply = NULL;
        cJSON *stats = NULL;
        if (bursar_request(client, "{\"op\":\"stats\"}", &reply) == BURSAR_OK)
            stats = cJSON_Parse(reply);
        free(reply);
        runreport_print(report, stderr, stats, sim, models, n_models);
        cJSON_Delete(stats);
        runreport_destroy(&report);
    }
    runner_destroy(&run);
    route_destroy(&route);
    bursar_models_free(&models);
    bursar_destroy(&client);
    simprov_destroy(&sim);
    cJSON_Delete(cfg);
    return 0;
}
