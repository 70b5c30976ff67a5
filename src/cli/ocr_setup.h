/* ocr_setup.h - `index --ocr`: the OCR stage's options, remembered setting and engine. */
#ifndef SHOEBOX_CLI_OCR_SETUP_H
#define SHOEBOX_CLI_OCR_SETUP_H

#include "cli.h"

#include <stdbool.h>

struct catalog;
struct crawl_plugin;
struct ocr_engine;

struct cli_ocr {
    int want;         /* 1 --ocr, 0 --no-ocr, -1 as the catalog's "ocr" setting says */
    const char *lang; /* --ocr-lang, or NULL: the setting "ocr_lang", else eng */
    bool no_gate;     /* --ocr-no-gate: read every photo (for measuring the gate) */
    struct ocr_engine *engine;
};

/* Handles argv[*i] when it is an OCR option of index (advancing *i past a value); returns 1
 * when it was one, 0 when not, or -1 (message printed) for a bad value. */
int cli_ocr_option(struct cli_ocr *o, int argc, char **argv, int *i);
/* Resolves the options against the catalog's settings, stores them back, and when OCR is on
 * makes the engine and fills *pl. Returns 0 with *enabled set, or an exit code. */
int cli_ocr_setup(struct cli_ocr *o, struct cli_ctx *ctx, struct catalog *cat,
                  struct crawl_plugin *pl, bool *enabled);
/* One line on stderr about what the stage did this run (nothing when it was off). */
void cli_ocr_report(const struct cli_ocr *o, double secs);
void cli_ocr_release(struct cli_ocr *o);

#define CLI_OCR_HELP                                                                               \
    "  --ocr             also read the words in photos (Tesseract OCR; memes, signs,\n"            \
    "                    screenshots, documents); remembered for later runs\n"                     \
    "  --no-ocr          stop reading words (remembered)\n"                                        \
    "  --ocr-lang L      OCR languages, e.g. deu+eng (default eng; remembered); each needs\n"      \
    "                    its Debian package tesseract-ocr-LANG\n"                                  \
    "  --ocr-no-gate     run OCR on every photo, not only those that look like they have text\n"

#endif
