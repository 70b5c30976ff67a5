/* moondream_vision.c - Moondream 2's image path (moondream.h), as vikhyat/moondream's
 * moondream/torch/image_crops.py and vision.py compute it for the 2025 revisions:
 *   overlap_crop_image  select_tiling on the photo less its margins, the photo resized (PIL
 *                       LANCZOS) to tiling * window + 2 margins, crops of S x S every window
 *                       pixels (zero padded past the edge), plus the global crop (resized to S)
 *   vision_encoder      patches in (c, py, px) order -> patch_emb -> + pos_emb -> blocks
 *                       (LN1 -> fused qkv -> attention -> proj, residual; LN2 -> fc1 ->
 *                       gelu(tanh) -> fc2, residual) -> post_ln
 *   reconstruct_from_crops on the local patch grids (patch_size 1): each tile keeps its
 *                       margins only on the outer edges of the stitched grid
 *   vision_projection   adaptive_avg_pool2d of the stitched grid to G x G (the code pools to
 *                       enc_n_layers = 27, which equals G in the real model), concat
 *                       [global, pooled] per patch, proj_mlp fc1 -> gelu(tanh) -> fc2
 * Dimension legend: S crop side, p patch, G = S/p, N = G*G, C vision width, F vision MLP,
 * H heads, E = C/H, I proj inner size, Ct decoder width, m margin (patches).
 * Products widen 64 weight rows at a time into the worker's scratch and call cblas_sgemm on
 * them (weights stay in their file dtype). In bf16 precision (md_set_precision) they run on
 * packed bf16 copies instead (lm_bf16.c: row chunks over the pool, fp32 accumulation, the
 * residual adds and gelu fused, fc1's activations kept in bf16 for fc2); layer norms, the
 * attention and pooling stay fp32. Only md_image_rows allocates (per photo: the crops'
 * features and the stitched grid, whose sizes depend on the photo). */
#include "moondream.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MD_CHUNK 64 /* weight rows per work item */

struct md_vscratch {
    const struct md_model *m;
    struct sb_pool *pool;
    int n_workers;
    float *pix;    /* (3, S, S) one crop */
    float *x;      /* (N, C) residual stream */
    float *h;      /* (N, max(C, 3pp, 2C)) normed input / patches / [global, local] */
    float *qkv;    /* (N, 3C) */
    float *att;    /* (N, C) */
    float *mlp;    /* (N, max(F, I)) */
    float *global; /* (N, C) features of the global crop */
    float *wbuf;   /* (n_workers, MD_CHUNK * Kmax) widened weight rows */
    float *scores; /* (n_workers, N * N) */
    size_t wbuf_per_worker;
    /* bf16 precision (bf.ctx NULL in fp32); x, qkv, mlp16 and rows16 have Np = N rounded to
     * 16 rows, as the bf16 products want */
    struct lm_bf16_exec bf;
    uint16_t *mlp16; /* (Np, max(F, I)) fc1 / proj1 activations (in place of mlp) */
    float *rows16;   /* (Np, Ct) proj2's output before it is copied out */
};

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

static void gelu_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
}

/* out(T,N) (+)= in(T,K) @ W^T + b, then gelu when act; W (N,K) in its file dtype. */
struct lin_job {
    struct md_vscratch *s;
    float *out;
    const float *in;
    const struct lm_mat *W;
    int T;
    bool residual, act;
};

static void linear_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    const struct lm_mat *W = j->W;
    int N = W->n_out;
    for (size_t item = begin; item < end; item++) {
        int n0 = (int)item * MD_CHUNK;
        int n1 = n0 + MD_CHUNK < N ? n0 + MD_CHUNK : N;
        lm_sgemm_rows(W, j->in, j->T, n0, n1, j->residual ? 1.0f : 0.0f, j->out,
                      j->s->wbuf + (size_t)worker * j->s->wbuf_per_worker);
        for (int t = 0; t < j->T; t++) {
            float *o = j->out + (size_t)t * N;
            if (W->b)
                for (int n = n0; n < n1; n++)
                    o[n] += W->b[n];
            if (j->act)
                gelu_tanh(o + n0, (size_t)(n1 - n0));
        }
    }
}

/* bf16: act writes its bf16 output to s->mlp16 (out must be s->mlp), and s->mlp as an input
 * means s->mlp16. */
static void linear(struct md_vscratch *s, float *out, const float *in, const struct lm_mat *W,
                   int T, bool residual, bool act)
{
    if (s->bf.ctx && W->bf.packed) {
        if (act) {
            lm_bf16_linear(&s->bf, s->mlp16, in, NULL, &W->bf, T, CLIP_EPI_ACT, CLIP_ACT_GELU_TANH);
            return;
        }
        bool from16 = in == s->mlp;
        lm_bf16_linear(&s->bf, out, from16 ? NULL : in, from16 ? s->mlp16 : NULL, &W->bf, T,
                       residual ? CLIP_EPI_RESIDUAL : CLIP_EPI_STORE, CLIP_ACT_GELU);
        return;
    }
    struct lin_job j = { s, out, in, W, T, residual, act };
    sb_pool_for(s->pool, ((size_t)W->n_out + MD_CHUNK - 1) / MD_CHUNK, 1, linear_task, &j);
}

/* F.layer_norm per row of (T, C), eps 1e-5 (layers.py passes none). */
struct ln_job {
    float *out;
    const float *in, *w, *b;
    int C;
};

static void ln_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct ln_job *j = arg;
    (void)worker;
    for (size_t r = begin; r < end; r++)
        lm_layernorm_row(j->out + r * (size_t)j->C, j->in + r * (size_t)j->C, j->w, j->b, j->C,
                         1e-5f);
}

static void layernorm(struct md_vscratch *s, float *out, const float *in, const float *w,
                      const float *b, int T)
{
    struct ln_job j = { out, in, w, b, s->m->C };
    sb_pool_for(s->pool, (size_t)T, 8, ln_task, &j);
}

/* Full attention per head h over the fused qkv (N, 3C): q at column h*E, k at C + h*E, v at
 * 2C + h*E; att[:, h*E..] = softmax(q k^T / sqrt(E)) v. One task = one head. */
static void attention_task(void *arg, size_t begin, size_t end, int worker)
{
    struct md_vscratch *s = arg;
    const struct md_model *m = s->m;
    int N = m->N, C = m->C, E = C / m->H;
    float *sc = s->scores + (size_t)worker * (size_t)N * (size_t)N;
    for (size_t h = begin; h < end; h++) {
        size_t col = h * (size_t)E;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, E, 1.0f / sqrtf((float)E),
                    s->qkv + col, 3 * C, s->qkv + C + col, 3 * C, 0.0f, sc, N);
        for (int i = 0; i < N; i++) {
            float *r = sc + (size_t)i * N, mx = -INFINITY, sum = 0.0f;
            for (int t = 0; t < N; t++)
                mx = r[t] > mx ? r[t] : mx;
            for (int t = 0; t < N; t++) {
                r[t] = expf(r[t] - mx);
                sum += r[t];
            }
            for (int t = 0; t < N; t++)
                r[t] /= sum;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, E, N, 1.0f, sc, N,
                    s->qkv + 2 * C + col, 3 * C, 0.0f, s->att + col, C);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Tower */

/* vision_encoder on one crop pixels (3, S, S): out (N, C) after post_ln. */
static void encode_crop(struct md_vscratch *s, const float *pix, float *out)
{
    const struct md_model *m = s->m;
    int S = m->S, p = m->p, G = m->G, N = m->N, C = m->C, pp = 3 * p * p;
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            float *row = s->h + ((size_t)gy * G + gx) * pp;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < p; y++)
                    memcpy(row + ((size_t)c * p + y) * p,
                           pix + ((size_t)c * S + (size_t)gy * p + y) * S + (size_t)gx * p,
                           (size_t)p * sizeof(float));
        }
    memcpy(s->x, m->pos, (size_t)N * C * sizeof(float));
    linear(s, s->x, s->h, &m->patch, N, true, false);
    for (int l = 0; l < m->n_layers; l++) {
        const struct md_vit_layer *w = &m->layers[l];
        layernorm(s, s->h, s->x, w->ln1_w, w->ln1_b, N);
        linear(s, s->qkv, s->h, &w->qkv, N, false, false);
        sb_pool_for(s->pool, (size_t)m->H, 1, attention_task, s);
        linear(s, s->x, s->att, &w->proj, N, true, false);
        layernorm(s, s->h, s->x, w->ln2_w, w->ln2_b, N);
        linear(s, s->mlp, s->h, &w->fc1, N, false, true);
        linear(s, s->x, s->mlp, &w->fc2, N, true, false);
    }
    layernorm(s, out, s->x, m->post_w, m->post_b, N);
}

/* vision_projection on the global features and the pooled local grid (N, C). */
static void project(struct md_vscratch *s, const float *local, float *rows)
{
    const struct md_model *m = s->m;
    int N = m->N, C = m->C;
    for (int n = 0; n < N; n++) {
        memcpy(s->h + (size_t)n * 2 * C, s->global + (size_t)n * C, (size_t)C * sizeof(float));
        memcpy(s->h + (size_t)n * 2 * C + C, local + (size_t)n * C, (size_t)C * sizeof(float));
    }
    linear(s, s->mlp, s->h, &m->proj1, N, false, true);
    if (!s->bf.ctx) {
        linear(s, rows, s->mlp, &m->proj2, N, false, false);
        return;
    }
    linear(s, s->rows16, s->mlp, &m->proj2, N, false, false);
    memcpy(rows, s->rows16, (size_t)N * (size_t)m->Ct * sizeof(float));
}

int md_pixel_rows(struct md_vscratch *s, const float *pixels, float *rows, struct sb_err *err)
{
    encode_crop(s, pixels, s->global);
    /* a 1 x 1 tiling: the local crop is the global one, stitching and pooling are identities */
    project(s, s->global, rows);
    return s->bf.ctx ? lm_bf16_status(&s->bf, "moondream vision", err) : SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Crops */

/* image_crops.select_tiling (h, w: the photo less its margins; crop: the window). */
static void select_tiling(int h, int w, int crop, int max_crops, int *th, int *tw)
{
    *th = *tw = 1;
    if (h <= crop || w <= crop)
        return;
    int min_h = (h + crop - 1) / crop, min_w = (w + crop - 1) / crop;
    if (min_h * min_w > max_crops) {
        double ratio = sqrt((double)max_crops / (double)(min_h * min_w));
        int a = (int)floor(min_h * ratio), b = (int)floor(min_w * ratio);
        *th = a > 1 ? a : 1;
        *tw = b > 1 ? b : 1;
        return;
    }
    int ht = (int)floor(sqrt((double)max_crops * h / w));
    int wt = (int)floor(sqrt((double)max_crops * w / h));
    ht = ht > min_h ? ht : min_h;
    wt = wt > min_w ? wt : min_w;
    if (ht * wt > max_crops) {
        if (wt > ht)
            wt = max_crops / ht;
        else
            ht = max_crops / wt;
    }
    *th = ht > 1 ? ht : 1;
    *tw = wt > 1 ? wt : 1;
}

/* Crop (x0, y0) S x S of img into s->pix, normalised, zero pixels past the edge. */
static void cut_crop(struct md_vscratch *s, const struct image *img, int x0, int y0)
{
    int S = s->m->S;
    size_t SS = (size_t)S * S;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sx = x0 + x, sy = y0 + y;
            bool in = sx < img->w && sy < img->h;
            const unsigned char *px = in ? img->px + ((size_t)sy * img->w + sx) * 3 : NULL;
            for (int c = 0; c < 3; c++) {
                float v = in ? (float)px[c] : 0.0f;
                s->pix[(size_t)c * SS + (size_t)y * S + x] = (v / 255.0f - 0.5f) / 0.5f;
            }
        }
}

int md_image_rows(struct md_vscratch *s, const struct image *rgb, float *rows, int tiling[2],
                  struct sb_err *err)
{
    const struct md_model *m = s->m;
    if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
        return sb_fail(err, SB_EINVAL, "preprocess: empty image");
    int G = m->G, C = m->C, N = m->N, mg = m->margin, mpx = m->p * mg;
    int window = (G - 2 * mg) * m->p, th, tw;
    select_tiling(rgb->h - 2 * mpx, rgb->w - 2 * mpx, window, m->max_crops, &th, &tw);
    if (tiling) {
        tiling[0] = th;
        tiling[1] = tw;
    }
    int rc = md_global_crop(m, rgb, s->pix, err);
    if (rc)
        return rc;
    encode_crop(s, s->pix, s->global);
    int W = tw * window + 2 * mpx, H = th * window + 2 * mpx;
    int Gw = (G - 2 * mg) * tw + 2 * mg, Gh = (G - 2 * mg) * th + 2 * mg; /* stitched grid */
    struct image *big = NULL;
    const struct image *img = rgb;
    float *feat = malloc((size_t)N * C * sizeof(float));
    float *grid = malloc((size_t)Gw * Gh * C * sizeof(float));
    float *pooled = malloc((size_t)N * C * sizeof(float));
    if (!feat || !grid || !pooled) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for %d x %d crops", th, tw);
        goto out;
    }
    if (W != rgb->w || H != rgb->h) {
        big = image_resize(rgb, W, H, IMAGE_FILTER_LANCZOS);
        if (!big) {
            rc = sb_fail(err, SB_ENOMEM, "preprocess: resize to %dx%d failed", W, H);
            goto out;
        }
        img = big;
    }
    for (int i = 0; i < th; i++)
        for (int j = 0; j < tw; j++) {
            cut_crop(s, img, j * window, i * window);
            encode_crop(s, s->pix, feat);
            /* reconstruct_from_crops: margins kept on the outer edges only */
            int x0 = j == 0 ? 0 : mg, x1 = j == tw - 1 ? G : G - mg;
            int y0 = i == 0 ? 0 : mg, y1 = i == th - 1 ? G : G - mg;
            int oy = i * (G - 2 * mg), ox = j * (G - 2 * mg);
            for (int y = y0; y < y1; y++)
                memcpy(grid + ((size_t)(oy + y) * Gw + ox + x0) * C,
                       feat + ((size_t)y * G + x0) * C, (size_t)(x1 - x0) * C * sizeof(float));
        }
    /* adaptive_avg_pool2d (Gh, Gw) -> (G, G): bin [floor(o*In/G), ceil((o+1)*In/G)) */
    for (int oy = 0; oy < G; oy++) {
        int ya = oy * Gh / G, yb = ((oy + 1) * Gh + G - 1) / G;
        for (int ox = 0; ox < G; ox++) {
            int xa = ox * Gw / G, xb = ((ox + 1) * Gw + G - 1) / G;
            float *o = pooled + ((size_t)oy * G + ox) * C;
            memset(o, 0, (size_t)C * sizeof(float));
            for (int y = ya; y < yb; y++)
                for (int x = xa; x < xb; x++) {
                    const float *g = grid + ((size_t)y * Gw + x) * C;
                    for (int c = 0; c < C; c++)
                        o[c] += g[c];
                }
            float inv = 1.0f / (float)((yb - ya) * (xb - xa));
            for (int c = 0; c < C; c++)
                o[c] *= inv;
        }
    }
    project(s, pooled, rows);
    if (s->bf.ctx)
        rc = lm_bf16_status(&s->bf, "moondream vision", err);
out:
    image_free(big);
    free(feat);
    free(grid);
    free(pooled);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Scratch */

static float *floats(size_t a, size_t b, bool *ok)
{
    size_t n;
    if (!sb_mul_size(a, b, &n) || !sb_mul_size(n, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = calloc(1, n ? n : 1);
    if (!p)
        *ok = false;
    return p;
}

int md_vscratch_new(const struct md_model *m, struct sb_pool *pool, struct md_vscratch **out,
                    struct sb_err *err)
{
    struct md_vscratch *s = calloc(1, sizeof(*s));
    if (!s)
        return sb_fail(err, SB_ENOMEM, "no memory for vision scratch");
    s->m = m;
    s->pool = pool;
    s->n_workers = pool ? sb_pool_size(pool) + 1 : 1;
    size_t N = (size_t)m->N, C = (size_t)m->C, pp = 3 * (size_t)m->p * (size_t)m->p;
    size_t Np = (N + 15) / 16 * 16;
    size_t hw = pp > 2 * C ? pp : 2 * C;
    size_t mw = (size_t)(m->F > m->inner ? m->F : m->inner);
    size_t kmax = hw > mw ? hw : mw;
    s->wbuf_per_worker = (size_t)MD_CHUNK * kmax;
    bool ok = true;
    s->pix = floats(3 * (size_t)m->S, (size_t)m->S, &ok);
    s->x = floats(Np, C, &ok);
    s->h = floats(N, hw, &ok);
    s->qkv = floats(Np, 3 * C, &ok);
    s->att = floats(N, C, &ok);
    s->mlp = floats(N, mw, &ok);
    s->global = floats(N, C, &ok);
    s->wbuf = floats((size_t)s->n_workers, s->wbuf_per_worker, &ok);
    s->scores = floats((size_t)s->n_workers, N * N, &ok);
    if (m->bf16 && ok) {
        s->mlp16 = calloc(Np * mw, sizeof(uint16_t));
        s->rows16 = floats(Np, (size_t)m->Ct, &ok);
        ok = ok && s->mlp16;
    }
    if (!ok) {
        md_vscratch_free(s);
        return sb_fail(err, SB_ENOMEM, "no memory for vision scratch");
    }
    if (m->bf16) {
        int rc = lm_bf16_exec_init(&s->bf, m->bf16, pool, Np, kmax, err);
        if (rc) {
            md_vscratch_free(s);
            return rc;
        }
    }
    *out = s;
    return SB_OK;
}

void md_vscratch_free(struct md_vscratch *s)
{
    if (!s)
        return;
    free(s->pix);
    free(s->x);
    free(s->h);
    free(s->qkv);
    free(s->att);
    free(s->mlp);
    free(s->global);
    free(s->wbuf);
    free(s->scores);
    free(s->mlp16);
    free(s->rows16);
    lm_bf16_exec_release(&s->bf);
    free(s);
}

/* ------------------------------------------------------------------------------------------ */
/* bf16 */

int md_set_precision(struct md_model *m, struct lm_model *lm, struct sb_err *err)
{
    if (!lm->bf16 || m->bf16)
        return SB_OK;
    struct lm_mat *all[4 * MD_MAX_LAYERS + 3];
    int n = 0;
    all[n++] = &m->patch;
    all[n++] = &m->proj1;
    all[n++] = &m->proj2;
    for (int l = 0; l < m->n_layers && l < MD_MAX_LAYERS; l++) {
        all[n++] = &m->layers[l].qkv;
        all[n++] = &m->layers[l].proj;
        all[n++] = &m->layers[l].fc1;
        all[n++] = &m->layers[l].fc2;
    }
    if (m->n_layers > MD_MAX_LAYERS)
        return sb_fail(err, SB_EMODEL, "moondream vision: more than %d blocks", MD_MAX_LAYERS);
    size_t most = 1;
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)all[i]->n_out * (size_t)all[i]->n_in;
        most = k > most ? k : most;
    }
    float *buf = malloc(most * sizeof(float));
    if (!buf)
        return sb_fail(err, SB_ENOMEM, "no memory to pack the vision tower in bf16");
    int rc = SB_OK;
    for (int i = 0; i < n && !rc; i++)
        rc = lm_pack_mat(lm, all[i], buf, err);
    free(buf);
    if (rc) {
        for (int i = 0; i < n; i++)
            all[i]->bf = (struct clip_linear){ 0 };
        return rc;
    }
    m->bf16 = lm->bf16;
    return SB_OK;
}
