/* output.c - terminal output helpers: progress bars, UTF-8-safe JSON strings. */
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shoebox/util.h"

#include <cjson/cJSON.h>

cJSON *cli_json_strings(char *const *strs, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        char *c = sb_utf8_clean(strs[i]);
        cJSON *item = c ? cJSON_CreateString(c) : NULL;
        free(c);
        if (!item) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, item);
    }
    return a;
}

static void fmt_duration(double s, char *buf, size_t cap)
{
    if (s < 0 || s > 1e7) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

void cli_progress_draw(struct cli_progress *pr, const char *stage, int64_t done, int64_t total)
{
    if (!pr->tty)
        return;
    double now = sb_now();
    if (pr->start == 0) {
        pr->start = now;
        pr->stage_start = now;
        pr->stage_done0 = done;
    }
    if (!pr->stage[0] || strcmp(pr->stage, stage) != 0) {
        snprintf(pr->stage, sizeof(pr->stage), "%s", stage);
        pr->stage_start = now;
        pr->stage_done0 = done;
    }
    if (now - pr->last < 0.1 && done != total)
        return;
    pr->last = now;
    double el = now - pr->stage_start;
    double rate = el > 0.2 ? (double)(done - pr->stage_done0) / el : 0.0;
    char eta[32] = "--:--";
    if (total > 0 && rate > 0)
        fmt_duration((double)(total - done) / rate, eta, sizeof(eta));
    char bar[31];
    int width = 30, fill = total > 0 ? (int)((double)done / (double)total * width) : 0;
    if (fill > width)
        fill = width;
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : (total > 0 ? '.' : ' ');
    bar[width] = '\0';
    if (total > 0)
        fprintf(stderr, "\r\033[K%-6s [%s] %lld/%lld  %.1f/s  ETA %s", stage, bar, (long long)done,
                (long long)total, rate, eta);
    else
        fprintf(stderr, "\r\033[K%-6s %lld  %.1f/s", stage, (long long)done, rate);
    fflush(stderr);
    pr->drawn = true;
}

void cli_progress_end(struct cli_progress *pr)
{
    if (pr->tty && pr->drawn)
        fputs("\r\033[K", stderr);
    pr->drawn = false;
}
