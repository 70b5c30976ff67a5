/* output.h - terminal output helpers for the CLI. */
#ifndef SHOEBOX_CLI_OUTPUT_H
#define SHOEBOX_CLI_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;
/* A JSON array of the strings (cleaned to UTF-8); NULL when out of memory. */
struct cJSON *cli_json_strings(char *const *strs, int n);

/* A one-line progress bar with rate and ETA on stderr, drawn only when tty is set. */
struct cli_progress {
    bool tty;
    bool drawn;
    double start, last, stage_start;
    int64_t stage_done0;
    char stage[32];
};
void cli_progress_draw(struct cli_progress *pr, const char *stage, int64_t done, int64_t total);
void cli_progress_end(struct cli_progress *pr);

#endif
