/* cmd_apple.c - `shoebox apple import PATH.photoslibrary`. */
#include "cli.h"

#include "shoebox/apple.h"
#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <stdio.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: shoebox apple import PATH.photoslibrary\n\n"
               "Reads an Apple Photos library (macOS 10.15 or later) read-only: its databases\n"
               "are never locked or changed. For the originals in the library that shoebox has\n"
               "indexed (index the library folder first; matched by path or by content), it\n"
               "stores keywords and Apple's scene labels (tags, source 'apple'), albums,\n"
               "titles, descriptions and the text Apple read in the photo (searchable), the\n"
               "GPS position and capture time when the photo has none of its own, and the\n"
               "favourite and hidden flags. Importing again replaces what was stored before.\n"
               "  --json    a JSON summary on stdout\n");
}

static int cmd_import(int argc, char **argv, struct cli_ctx *ctx)
{
    struct apple_import_params p = { NULL };
    struct catalog *cat = NULL;
    struct sb_err err;
    sb_err_clear(&err);
    int rc = CLI_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("apple import: unknown option '%s'", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (!p.library) {
            p.library = argv[i];
        } else {
            cli_error("apple import: one library at a time");
            return CLI_EXIT_USAGE;
        }
    }
    if (!p.library) {
        help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (catalog_open(ctx->db_path, false, &cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    struct apple_import_stats st;
    if (apple_import(cat, &p, &st, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (st.search_error[0])
        cli_error("warning: search index skipped: %s", st.search_error);
    if (ctx->json) {
        printf("{\"assets\":%lld,\"on_disk\":%lld,\"matched\":%lld,\"matched_by_hash\":%lld,"
               "\"unmatched\":%lld,\"keywords\":%lld,\"albums\":%lld,\"labels\":%lld,"
               "\"texts\":%lld,\"dates\":%lld,\"photos_version\":%d,\"search_index\":%s}\n",
               (long long)st.assets, (long long)st.on_disk, (long long)st.matched,
               (long long)st.matched_by_hash, (long long)st.unmatched, (long long)st.keywords,
               (long long)st.albums, (long long)st.labels, (long long)st.texts, (long long)st.dates,
               st.photos_version, st.have_search ? "true" : "false");
    } else {
        printf("assets       %lld\n  on disk    %lld\nmatched      %lld\n  by content %lld\n"
               "unmatched    %lld\nkeywords     %lld\nalbums       %lld\nlabels       %lld\n"
               "texts        %lld\ndates        %lld\n",
               (long long)st.assets, (long long)st.on_disk, (long long)st.matched,
               (long long)st.matched_by_hash, (long long)st.unmatched, (long long)st.keywords,
               (long long)st.albums, (long long)st.labels, (long long)st.texts,
               (long long)st.dates);
    }
out:
    catalog_close(cat);
    return rc;
}

int cmd_apple(int argc, char **argv, struct cli_ctx *ctx)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "import") == 0)
        return cmd_import(argc - 1, argv + 1, ctx);
    cli_error("apple: unknown subcommand '%s' (import)", argv[1]);
    return CLI_EXIT_USAGE;
}
