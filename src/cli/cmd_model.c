/* cmd_model.c - `shoebox model fetch REPO` and `shoebox model list`: Hugging Face model
 * folders under $XDG_DATA_HOME/shoebox/models (see shoebox/hub.h for the protocol). */
#include "cli.h"
#include "output.h"

#include "shoebox/err.h"
#include "shoebox/hub.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char model_usage[] =
    "usage: shoebox model fetch REPO [--revision REV] [--dir DIR]\n"
    "       shoebox model list [--dir MODELS_DIR] [--json]\n\n"
    "  fetch  download a model folder from the Hugging Face hub (config, tokenizer and\n"
    "         safetensors weights only), resumable, verified by size and SHA-256\n"
    "  list   the model folders installed, their size and whether they are complete\n\n"
    "Run 'shoebox model fetch --help' or 'shoebox model list --help' for the options.\n";

static const char fetch_usage[] =
    "usage: shoebox model fetch REPO [--revision REV] [--dir DIR] [--json]\n\n"
    "Downloads the files a CLIP / SigLIP / VLM folder needs from the Hugging Face hub:\n"
    "config and tokenizer files and model.safetensors (or its index and shards); never\n"
    "PyTorch .bin, TensorFlow, Flax or ONNX files. Each file goes to FILE.part first; an\n"
    "interrupted fetch resumes where it stopped when run again. Sizes and the hub's SHA-256\n"
    "are checked before a file is put in place. Prints the folder on stdout.\n\n"
    "  REPO            ORG/NAME, e.g. openai/clip-vit-base-patch32\n"
    "  --revision REV  branch, tag or commit (default main)\n"
    "  --dir DIR       the folder to fill (default\n"
    "                  $XDG_DATA_HOME/shoebox/models/ORG--NAME)\n"
    "  --json          print {\"repo\",\"revision\",\"commit\",\"path\",...} instead\n\n"
    "environment:\n"
    "  SHOEBOX_HF_ENDPOINT  hub URL (default https://huggingface.co)\n"
    "  HF_TOKEN             access token for gated or private repos\n";

static const char list_usage[] =
    "usage: shoebox model list [--dir MODELS_DIR] [--json]\n\n"
    "Lists the model folders in MODELS_DIR (default $XDG_DATA_HOME/shoebox/models): the\n"
    "repo, the size on disk, whether every file is complete, and whether shoebox can load\n"
    "it (config.json and safetensors weights present).\n";

static void fmt_bytes(double v, char *buf, size_t cap)
{
    static const char *const units[] = { "B", "KB", "MB", "GB", "TB" };
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%.0f B", v);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
}

/* ------------------------------------------------------------------------------------------ */
/* Progress: bytes, with rate and ETA, on a TTY only                                           */

struct byte_progress {
    bool tty, drawn;
    double start, last;
    int64_t done0; /* bytes already there when the transfer started (not counted in the rate) */
    bool have_done0;
};

static void draw_bytes(void *user, const char *stage, int64_t done, int64_t total)
{
    struct byte_progress *pr = user;
    if (!pr->tty)
        return;
    double now = sb_now();
    if (!pr->have_done0) {
        pr->have_done0 = true;
        pr->done0 = done;
        pr->start = now;
    }
    if (now - pr->last < 0.1 && done != total)
        return;
    pr->last = now;
    double el = now - pr->start;
    double rate = el > 0.2 ? (double)(done - pr->done0) / el : 0.0;
    char d[32], t[32], r[32], eta[32] = "--:--";
    fmt_bytes((double)done, d, sizeof(d));
    fmt_bytes((double)total, t, sizeof(t));
    fmt_bytes(rate, r, sizeof(r));
    if (total > 0 && rate > 0) {
        long s = (long)((double)(total - done) / rate + 0.5);
        if (s >= 3600)
            snprintf(eta, sizeof(eta), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
        else
            snprintf(eta, sizeof(eta), "%02ld:%02ld", s / 60, s % 60);
    }
    char bar[26];
    int width = 25, fill = total > 0 ? (int)((double)done / (double)total * width) : 0;
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r\033[K%-24.24s [%s] %s/%s  %s/s  ETA %s", stage, bar, d, t, r, eta);
    fflush(stderr);
    pr->drawn = true;
}

static void end_bytes(struct byte_progress *pr)
{
    if (pr->tty && pr->drawn)
        fputs("\r\033[K", stderr);
    pr->drawn = false;
}

/* ------------------------------------------------------------------------------------------ */

static int exit_for(int code)
{
    return code == SB_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

static int model_fetch(int argc, char **argv, struct cli_ctx *ctx)
{
    const char *repo = NULL, *revision = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(fetch_usage, stdout);
            return CLI_EXIT_OK;
        } else if ((v = cli_flag_value(argc, argv, &i, "--revision"))) {
            if (!*v)
                return CLI_EXIT_USAGE;
            revision = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--dir"))) {
            if (!*v)
                return CLI_EXIT_USAGE;
            dir = v;
        } else if (argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
            cli_error("model fetch: unknown option '%s' (see shoebox model fetch --help)", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (strcmp(argv[i], "--") == 0) {
            continue;
        } else if (repo) {
            cli_error("model fetch: one REPO at a time ('%s' and '%s')", repo, argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            repo = argv[i];
        }
    }
    if (!repo) {
        cli_error("model fetch: which repo? (e.g. shoebox model fetch "
                  "openai/clip-vit-base-patch32)");
        return CLI_EXIT_USAGE;
    }
    struct sb_err err;
    char folder[256];
    if (hub_repo_folder(repo, folder, sizeof(folder), &err)) {
        cli_error("model fetch: %s", err.msg);
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_OK;
    char *models = NULL, *path = NULL;
    if (!dir) {
        struct sb_buf b;
        sb_buf_init(&b);
        models = cli_data_path("models");
        if (models)
            sb_buf_printf(&b, "%s/%s", models, folder);
        if (!models || b.failed) {
            sb_buf_release(&b);
            cli_error("out of memory");
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        path = b.data;
        dir = path;
    }
    struct hub_params p = hub_default_params();
    const char *ep = getenv("SHOEBOX_HF_ENDPOINT");
    if (ep && *ep)
        p.endpoint = ep;
    if (revision)
        p.revision = revision;
    p.token = getenv("HF_TOKEN");
    struct byte_progress bp;
    memset(&bp, 0, sizeof(bp));
    bp.tty = ctx->tty;
    struct sb_progress prog = { .update = draw_bytes, .user = &bp };
    p.progress = &prog;
    struct hub_fetch_stats st;
    int hrc = hub_fetch(&p, repo, dir, &st, &err);
    end_bytes(&bp);
    if (hrc) {
        cli_error("%s", err.msg);
        rc = exit_for(hrc);
        goto out;
    }
    char got[32];
    fmt_bytes((double)st.bytes_received, got, sizeof(got));
    fprintf(stderr,
            "shoebox: '%s'%s%.12s: %zu files, %zu downloaded (%zu resumed, %s), %zu already "
            "there\n",
            repo, st.commit[0] ? " @ " : "", st.commit, st.files, st.downloaded, st.resumed, got,
            st.skipped);
    if (ctx->json) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "repo", repo);
            cJSON_AddStringToObject(o, "revision", p.revision);
            if (st.commit[0])
                cJSON_AddStringToObject(o, "commit", st.commit);
            else
                cJSON_AddNullToObject(o, "commit");
            cJSON_AddStringToObject(o, "path", dir);
            cJSON_AddNumberToObject(o, "files", (double)st.files);
            cJSON_AddNumberToObject(o, "downloaded", (double)st.downloaded);
            cJSON_AddNumberToObject(o, "resumed", (double)st.resumed);
            cJSON_AddNumberToObject(o, "skipped", (double)st.skipped);
            cJSON_AddNumberToObject(o, "bytes", (double)st.bytes_total);
        }
        rc = cli_print_json(o);
        cJSON_Delete(o);
    } else {
        puts(dir);
    }
out:
    free(path);
    free(models);
    return rc;
}

static cJSON *installed_json(const struct hub_installed *a, size_t n, const char *models)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root ? cJSON_AddArrayToObject(root, "models") : NULL;
    if (!list) {
        cJSON_Delete(root);
        return NULL;
    }
    char *d = sb_utf8_clean(models);
    cJSON_AddStringToObject(root, "dir", d ? d : "");
    free(d);
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(list, o)) {
            cJSON_Delete(o);
            cJSON_Delete(root);
            return NULL;
        }
        char *folder = sb_utf8_clean(a[i].folder), *path = sb_utf8_clean(a[i].path);
        cJSON_AddStringToObject(o, "folder", folder ? folder : "");
        cJSON_AddStringToObject(o, "path", path ? path : "");
        free(folder);
        free(path);
        if (a[i].repo)
            cJSON_AddStringToObject(o, "repo", a[i].repo);
        else
            cJSON_AddNullToObject(o, "repo");
        if (a[i].revision)
            cJSON_AddStringToObject(o, "revision", a[i].revision);
        else
            cJSON_AddNullToObject(o, "revision");
        if (a[i].commit)
            cJSON_AddStringToObject(o, "commit", a[i].commit);
        else
            cJSON_AddNullToObject(o, "commit");
        cJSON_AddNumberToObject(o, "bytes", (double)a[i].bytes);
        cJSON_AddNumberToObject(o, "files", (double)a[i].nfiles);
        cJSON_AddNumberToObject(o, "partial_files", (double)a[i].npart);
        cJSON_AddBoolToObject(o, "complete", a[i].complete);
        cJSON_AddBoolToObject(o, "loadable", a[i].loadable);
    }
    return root;
}

static int model_list(int argc, char **argv, struct cli_ctx *ctx)
{
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(list_usage, stdout);
            return CLI_EXIT_OK;
        } else if ((v = cli_flag_value(argc, argv, &i, "--dir"))) {
            if (!*v)
                return CLI_EXIT_USAGE;
            dir = v;
        } else {
            cli_error("model list: unexpected argument '%s'", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    char *models = NULL;
    if (!dir) {
        models = cli_data_path("models");
        if (!models) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
        dir = models;
    }
    struct hub_installed *a = NULL;
    size_t n = 0;
    struct sb_err err;
    int rc = CLI_EXIT_OK;
    if (hub_list_installed(dir, &a, &n, &err)) {
        cli_error("model list: %s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (ctx->json) {
        cJSON *root = installed_json(a, n, dir);
        rc = cli_print_json(root);
        cJSON_Delete(root);
        goto out;
    }
    if (n == 0) {
        fprintf(stderr,
                "shoebox: no models in '%s' (try: shoebox model fetch "
                "openai/clip-vit-base-patch32)\n",
                dir);
        goto out;
    }
    printf("%-44s %10s  %-10s %-8s %s\n", "repo", "size", "files", "loadable", "path");
    for (size_t i = 0; i < n; i++) {
        char size[32];
        fmt_bytes((double)a[i].bytes, size, sizeof(size));
        const char *state = a[i].complete ? "complete" : a[i].npart ? "partial" : "incomplete";
        if (!a[i].repo)
            state = "-";
        printf("%-44s %10s  %-10s %-8s %s\n", a[i].repo ? a[i].repo : a[i].folder, size, state,
               a[i].loadable ? "yes" : "no", a[i].path);
    }
out:
    hub_installed_free(a, n);
    free(models);
    return rc;
}

int cmd_model(int argc, char **argv, struct cli_ctx *ctx)
{
    if (argc < 2) {
        fputs(model_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(model_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "fetch") == 0)
        return model_fetch(argc - 1, argv + 1, ctx);
    if (strcmp(argv[1], "list") == 0)
        return model_list(argc - 1, argv + 1, ctx);
    cli_error("model: unknown subcommand '%s' (fetch or list; see shoebox model --help)", argv[1]);
    return CLI_EXIT_USAGE;
}
