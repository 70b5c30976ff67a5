/* searchctx.h - what search, similar and dupes share: options, filters, the catalog, the
 * vector store and the model, loaded only as far as a query needs. */
#ifndef SHOEBOX_CLI_SEARCHCTX_H
#define SHOEBOX_CLI_SEARCHCTX_H

#include "cli.h"

#include "shoebox/catalog.h"
#include "shoebox/search.h"

#include <limits.h>

struct clip_model;
struct clip_ctx;

struct cli_search {
    struct cli_ctx *ctx;
    struct catalog *cat;
    struct vec_store *store;
    struct catalog_filter filter;
    bool filtered;
    float min_score;
    bool min_score_default;
    float threshold; /* dupes */
    bool sort_date, paths_only;
    bool text_only; /* --text: search the words in photos (OCR, captions) only, no model */
    char model_name[256];
    char model_dir[PATH_MAX];
    char cache_dir[PATH_MAX];
    struct clip_model *text_model, *vision_model;
    struct clip_ctx *text_ctx, *vision_ctx;
};

/* Parses the common options from argv[1..] (the rest go to *rest, in order), opens the catalog
 * read-only. Returns 0, -1 after printing help, or an exit code. */
int cli_search_init(struct cli_search *s, struct cli_ctx *ctx, int argc, char **argv,
                    const char *help, char ***rest, int *nrest);
/* Finds the model (--model, else the one `index` last used) and opens its vector store;
 * need_text loads the text tower. */
int cli_search_open_store(struct cli_search *s, bool need_text);
/* The vector of one term (dim floats, L2-normalised). For an image in the catalog or id:N,
 * *photo_id (may be NULL) is set to its photo id (0 otherwise). */
int cli_search_term_vector(struct cli_search *s, const struct search_term *t, float *out,
                           int64_t *photo_id);
/* A mask over the store's rows: present photos passing the filters. Caller frees. */
int cli_search_mask(struct cli_search *s, unsigned char **mask);
void cli_search_release(struct cli_search *s);

#endif
