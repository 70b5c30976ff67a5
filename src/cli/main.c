/* main.c - the shoebox command line: global flags, the command table, exit codes.
 * Global flags may come before or after the command name. */
#include "cli.h"

#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#ifdef __GLIBC__
#include <cjson/cJSON.h>
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv, struct cli_ctx *ctx);
    const char *summary;
};

static const struct command commands[] = {
    { "index", cmd_index, "catalog, thumbnail and embed the photos under PATH..." },
    { "status", cmd_status, "counts of files, photos, duplicates and work per stage" },
    { "errors", cmd_errors, "the files that failed, and why" },
    { "search", cmd_search, "find photos by text, image, or both (TERM [+|- TERM]...)" },
    { "similar", cmd_similar, "photos most like FILE or ID" },
    { "dupes", cmd_dupes, "exact and near-duplicate groups (read-only)" },
    { "embed-image", cmd_embed_image, "print the embedding of image files (JSON lines)" },
    { "embed-text", cmd_embed_text, "print the embedding and tokens of texts (JSON lines)" },
    { "serve", cmd_serve, "the web UI and JSON API on http://127.0.0.1:8111" },
    { "model", cmd_model, "fetch a model from the Hugging Face hub; list installed models" },
    { "models", cmd_models, "the models with vectors in the catalog, and the one search uses" },
    { "lightroom", cmd_lightroom, "import a Lightroom catalog; rescue JPEGs from its previews" },
    { "tag", cmd_tag, "list, add or remove tags of photos (tag add|remove TAG FILE...)" },
    { "tags", cmd_tag, "same as tag; `tags FILE...` lists" },
    { "xmp", cmd_xmp, "write keywords and captions into XMP sidecars (xmp write PATH...)" },
    { "caption", cmd_caption,
      "one sentence per image with a captioning model (LLaVA, SmolVLM, Moondream)" },
    { "apple", cmd_apple, "import an Apple Photos library (apple import PATH.photoslibrary)" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shoebox [global options] COMMAND [options] [args]\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nglobal options (before or after the command):\n"
               "  --db PATH          catalog (default $SHOEBOX_DB or "
               "$XDG_DATA_HOME/shoebox/catalog.db)\n"
               "  --model DIR        Hugging Face model folder (default $SHOEBOX_MODEL)\n"
               "  --precision P      fp32, bf16 or auto (default auto)\n"
               "  --json             machine-readable output\n"
               "  -n N               number of results\n"
               "  --threads N        worker threads (default: one per core)\n"
               "  -v, --verbose      more messages on stderr\n"
               "  -h, --help         help (also: shoebox COMMAND --help)\n");
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("shoebox: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_print_json(const struct cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    if (!s) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    puts(s);
    cJSON_free(s);
    fflush(stdout);
    return CLI_EXIT_OK;
}

struct sb_pool *cli_pool(struct cli_ctx *ctx)
{
    if (ctx->pool)
        return ctx->pool;
    struct sb_err err;
    /* the calling thread works too (sb_pool_for, sb_pool_for_each), so threads - 1 workers use
     * every core */
    int n = ctx->threads > 1 ? ctx->threads - 1 : 1;
    if (sb_pool_new(n, &ctx->pool, &err) != SB_OK) {
        cli_error("%s", err.msg);
        return NULL;
    }
    return ctx->pool;
}

char *cli_data_path(const char *leaf)
{
    struct sb_buf b;
    sb_buf_init(&b);
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        sb_buf_printf(&b, "%s/shoebox/%s", xdg, leaf);
    else
        sb_buf_printf(&b, "%s/.local/share/shoebox/%s", home && *home ? home : ".", leaf);
    if (b.failed) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}

static char *default_db(void)
{
    const char *env = getenv("SHOEBOX_DB");
    if (env && *env)
        return sb_strdup(env);
    return cli_data_path("catalog.db");
}

const char *cli_flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (strcmp(argv[*i], flag) != 0)
        return NULL;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", flag);
        return "";
    }
    return argv[++*i];
}

/* oneDNN runs its products on OpenMP threads, and libgomp's default is to spin for ~300k
 * iterations after each parallel region. While indexing, those spinning threads take the
 * cores from the decode workers (measured: 40% more CPU time for the same index run). libgomp
 * reads its settings once, when it is loaded, before main(): so set a short spin and start
 * again through exec, unless the user chose a policy. If exec fails, carry on as we are. */
static void tame_openmp(char **argv)
{
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY"))
        return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    tame_openmp(argv);
#ifdef __GLIBC__
    /* Decoded photos are 2-40 MB buffers, one per photo per worker. Keep them on the heap and
     * the heap untrimmed, so that each photo reuses pages instead of mmapping and faulting in
     * fresh ones (measured: ~10% of indexing time went to page faults). */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
    struct cli_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.tty = isatty(2);
    ctx.threads = sb_cpu_count();
    char *db_default = default_db();
    ctx.db_path = db_default;
    const char *env_model = getenv("SHOEBOX_MODEL");
    ctx.model_dir = env_model && *env_model ? env_model : NULL;
    enum sb_log_level level = SB_LOG_WARN;
    int rc = CLI_EXIT_OK;

    /* Pull global flags out of argv wherever they are; keep the rest in order. After "--"
     * everything is an argument. */
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    bool want_help = false, dashdash = false;
    if (!rest) {
        cli_error("out of memory");
        free(db_default);
        return CLI_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        char *a = argv[i];
        if (dashdash) {
            rest[nrest++] = a;
        } else if (strcmp(a, "--") == 0) {
            dashdash = true;
            rest[nrest++] = a;
        } else if ((v = cli_flag_value(argc, argv, &i, "--db"))) {
            ctx.db_path = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--model"))) {
            ctx.model_dir = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--precision"))) {
            if (strcmp(v, "fp32") == 0)
                ctx.precision = CLI_PRECISION_FP32;
            else if (strcmp(v, "bf16") == 0)
                ctx.precision = CLI_PRECISION_BF16;
            else if (strcmp(v, "auto") == 0)
                ctx.precision = CLI_PRECISION_AUTO;
            else {
                cli_error("--precision must be fp32, bf16 or auto, not '%s'", v);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
        } else if (strcmp(a, "--json") == 0) {
            ctx.json = true;
        } else if ((v = cli_flag_value(argc, argv, &i, "-n"))) {
            struct sb_err err;
            if (sb_parse_i64(v, 1, 1000000000, &ctx.n, &err)) {
                cli_error("-n: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
        } else if ((v = cli_flag_value(argc, argv, &i, "--threads"))) {
            struct sb_err err;
            int64_t t;
            if (sb_parse_i64(v, 1, 1024, &t, &err)) {
                cli_error("--threads: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            ctx.threads = (int)t;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            level = level == SB_LOG_WARN ? SB_LOG_INFO : SB_LOG_DEBUG;
        } else if (nrest == 0 && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            want_help = true;
        } else {
            rest[nrest++] = a;
        }
    }
    sb_log_set(NULL, NULL, level);
    if (nrest == 0) {
        usage(want_help ? stdout : stderr);
        rc = want_help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    if (!ctx.db_path) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(rest[0], commands[i].name) == 0)
            cmd = &commands[i];
    }
    if (!cmd) {
        cli_error("unknown command '%s' (see shoebox --help)", rest[0]);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = cmd->fn(nrest, rest, &ctx);
out:
    sb_pool_free(ctx.pool);
    free(rest);
    free(db_default);
    return rc;
}
