/* gate.c - is there text in this photo? A cheap test run before Tesseract (see ocr.h).
 *
 * Printed text is made of strokes: along a row through a word, a strong edge is followed a
 * few pixels later by one of the opposite sign (dark-light-dark), many times per letter
 * height, and the same holds down the columns (bars of E, t, z). Text lines put such cells
 * side by side. So: a greyscale copy with long edge <= 800 px (area average; and again at
 * 400 px for big letters), per 12x12 cell
 * the count of opposite-signed edge pairs at most 7 px apart in rows and in columns, a cell
 * is "stroky" when both counts are high, and the score is the number of stroky cells that lie
 * in a horizontal or vertical run of >= 3 (a word, or a turned word). Foliage, gravel and
 * fences also score (a false pass costs one Tesseract run); smooth skies, faces, walls and
 * bokeh do not (those are the photos skipped). Measured in bench/ocr/run.sh. */
#include "internal.h"

#include "shoebox/ocr.h"

#include "shoebox/image.h"

#include <stdlib.h>
#include <string.h>

#define GATE_LONG   800 /* long edge of the analysed copy */
#define GATE_CELL   12  /* cell side, px */
#define GATE_EDGE   32  /* |grey step| that counts as a stroke edge */
#define GATE_STROKE 7   /* most px between the two edges of one stroke */
#define GATE_PAIRS  8   /* pairs in rows for a stroky cell (and half as many in columns) */
#define GATE_RUN    3   /* adjacent stroky cells that make a line */

/* Area-averaged greyscale copy, downscaled by an integer step. */
static unsigned char *small_grey(const struct image *rgb, int glong, int *gw, int *gh)
{
    int lng = rgb->w > rgb->h ? rgb->w : rgb->h;
    int s = (lng + glong - 1) / glong;
    if (s < 1)
        s = 1;
    int w = rgb->w / s, h = rgb->h / s;
    if (w < 1 || h < 1)
        return NULL;
    unsigned char *g = malloc((size_t)w * (size_t)h);
    if (!g)
        return NULL;
    unsigned area = (unsigned)(s * s);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            unsigned sum = 0;
            for (int dy = 0; dy < s; dy++) {
                const unsigned char *p =
                    rgb->px + ((size_t)(y * s + dy) * (size_t)rgb->w + (size_t)x * s) * 3;
                for (int dx = 0; dx < s; dx++, p += 3)
                    sum += (p[0] * 299u + p[1] * 587u + p[2] * 114u) / 1000u;
            }
            g[(size_t)y * w + x] = (unsigned char)(sum / area);
        }
    }
    *gw = w;
    *gh = h;
    return g;
}

/* Counts stroke pairs along one line of n pixels (stride apart) into cells[pos / GATE_CELL]. */
static void count_pairs(const unsigned char *p, int n, size_t stride, int *cells, int ncells)
{
    int last = -1000, last_sign = 0;
    for (int i = 0; i + 1 < n; i++) {
        int d = (int)p[(size_t)(i + 1) * stride] - (int)p[(size_t)i * stride];
        if (d < GATE_EDGE && d > -GATE_EDGE)
            continue;
        int sign = d > 0 ? 1 : -1;
        if (sign != last_sign && i - last <= GATE_STROKE) {
            int c = i / GATE_CELL;
            if (c < ncells)
                cells[c]++;
        }
        last = i;
        last_sign = sign;
    }
}

static int measure_at(const struct image *rgb, int glong, int *hcells, int *vcells)
{
    *hcells = *vcells = 0;
    int w = 0, h = 0;
    unsigned char *g = small_grey(rgb, glong, &w, &h);
    if (!g)
        return 0;
    int cw = w / GATE_CELL, ch = h / GATE_CELL;
    int score = 0;
    int *hp = NULL, *vp = NULL;
    unsigned char *stroky = NULL;
    if (cw < 1 || ch < 1)
        goto out; /* under 12 px: nothing legible */
    size_t ncell = (size_t)cw * (size_t)ch;
    hp = calloc(ncell, sizeof(int));
    vp = calloc(ncell, sizeof(int));
    stroky = calloc(ncell, 1);
    if (!hp || !vp || !stroky)
        goto out;
    for (int y = 0; y < ch * GATE_CELL; y++)
        count_pairs(g + (size_t)y * w, cw * GATE_CELL, 1, hp + (size_t)(y / GATE_CELL) * cw, cw);
    int *col = calloc((size_t)ch, sizeof(int));
    if (!col)
        goto out;
    for (int x = 0; x < cw * GATE_CELL; x++) {
        memset(col, 0, (size_t)ch * sizeof(int));
        count_pairs(g + x, ch * GATE_CELL, (size_t)w, col, ch);
        for (int cy = 0; cy < ch; cy++)
            vp[(size_t)cy * cw + x / GATE_CELL] += col[cy];
    }
    free(col);
    for (size_t i = 0; i < ncell; i++)
        stroky[i] = hp[i] >= GATE_PAIRS && vp[i] >= GATE_PAIRS / 2;
    /* cells in runs: bit 2 marks a counted cell so that a cell in both a row and a column
     * run counts once */
    for (int cy = 0; cy < ch; cy++) {
        for (int cx = 0; cx < cw;) {
            int run = 0;
            while (cx + run < cw && (stroky[(size_t)cy * cw + cx + run] & 1))
                run++;
            if (run >= GATE_RUN) {
                for (int k = 0; k < run; k++)
                    stroky[(size_t)cy * cw + cx + k] |= 2;
                *hcells += run;
            }
            cx += run ? run : 1;
        }
    }
    for (int cx = 0; cx < cw; cx++) {
        for (int cy = 0; cy < ch;) {
            int run = 0;
            while (cy + run < ch && (stroky[(size_t)(cy + run) * cw + cx] & 1))
                run++;
            if (run >= GATE_RUN) {
                for (int k = 0; k < run; k++)
                    stroky[(size_t)(cy + k) * cw + cx] |= 2;
                *vcells += run;
            }
            cy += run ? run : 1;
        }
    }
    for (size_t i = 0; i < ncell; i++)
        score += (stroky[i] & 2) ? 1 : 0;
out:
    free(stroky);
    free(hp);
    free(vp);
    free(g);
    return score;
}

/* Big letters (a poster filling the frame) have few strokes per cell at 800 px: measure at
 * 400 px too and keep the better. */
int ocr_gate_measure(const struct image *rgb, int *hcells, int *vcells)
{
    *hcells = *vcells = 0;
    if (!rgb || !rgb->px || rgb->w <= 0 || rgb->h <= 0)
        return 0;
    int h2 = 0, v2 = 0;
    int s1 = measure_at(rgb, GATE_LONG, hcells, vcells);
    int s2 = measure_at(rgb, GATE_LONG / 2, &h2, &v2);
    if (s2 > s1) {
        *hcells = h2;
        *vcells = v2;
        return s2;
    }
    return s1;
}

int ocr_gate_score(const struct image *rgb)
{
    int h, v;
    return ocr_gate_measure(rgb, &h, &v);
}

bool ocr_gate_pass(const struct image *rgb)
{
    return ocr_gate_score(rgb) >= OCR_GATE_MIN_SCORE;
}
