/* cli.h - what every subcommand gets from main(): global options and the shared pool.
 * Only src/cli knows about terminals and exit codes. */
#ifndef SHOEBOX_CLI_H
#define SHOEBOX_CLI_H

#include <stdbool.h>
#include <stdint.h>

struct sb_pool;

enum cli_precision { CLI_PRECISION_AUTO = 0, CLI_PRECISION_FP32, CLI_PRECISION_BF16 };

/* Exit codes. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

struct cli_ctx {
    const char *db_path;   /* --db, $SHOEBOX_DB, or $XDG_DATA_HOME/shoebox/catalog.db */
    const char *model_dir; /* --model, $SHOEBOX_MODEL, or NULL */
    enum cli_precision precision;
    bool json;            /* --json */
    int64_t n;            /* -n N (0: command default) */
    bool tty;             /* stderr is a terminal: draw progress */
    int threads;          /* worker threads (default: CPU count) */
    struct sb_pool *pool; /* created lazily by cli_pool() */
};

/* The pool shared by the whole process (created on first use). NULL on failure. */
struct sb_pool *cli_pool(struct cli_ctx *ctx);

/* "$XDG_DATA_HOME/shoebox/<leaf>" (default "~/.local/share/shoebox/<leaf>"). The caller frees
 * it; NULL when out of memory. */
char *cli_data_path(const char *leaf);

/* The value of an option at argv[*i]: "--flag VALUE" (advances *i) or "--flag=VALUE". NULL when
 * argv[*i] is not that flag; "" (after saying so on stderr) when the value is missing. */
const char *cli_flag_value(int argc, char **argv, int *i, const char *flag);

/* Prints root as one line of JSON on stdout (root stays the caller's). CLI_EXIT_OK, or
 * CLI_EXIT_FAIL after saying so when root is NULL or printing runs out of memory. */
struct cJSON;
int cli_print_json(const struct cJSON *root);

/* Prints "shoebox: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Subcommands: argv[0] is the command name; global flags were already removed. Each returns
 * an exit code and handles --help itself. */
int cmd_index(int argc, char **argv, struct cli_ctx *ctx);
int cmd_status(int argc, char **argv, struct cli_ctx *ctx);
int cmd_errors(int argc, char **argv, struct cli_ctx *ctx);
int cmd_embed_image(int argc, char **argv, struct cli_ctx *ctx);
int cmd_embed_text(int argc, char **argv, struct cli_ctx *ctx);
int cmd_search(int argc, char **argv, struct cli_ctx *ctx);
int cmd_similar(int argc, char **argv, struct cli_ctx *ctx);
int cmd_dupes(int argc, char **argv, struct cli_ctx *ctx);
int cmd_model(int argc, char **argv, struct cli_ctx *ctx);
int cmd_models(int argc, char **argv, struct cli_ctx *ctx);
int cmd_serve(int argc, char **argv, struct cli_ctx *ctx);
int cmd_lightroom(int argc, char **argv, struct cli_ctx *ctx);
int cmd_tag(int argc, char **argv, struct cli_ctx *ctx);
int cmd_xmp(int argc, char **argv, struct cli_ctx *ctx);
int cmd_apple(int argc, char **argv, struct cli_ctx *ctx);
int cmd_caption(int argc, char **argv, struct cli_ctx *ctx);

#endif
