/* lm_internal.h - private parts of the decoder LM runtime (lm.h): the configuration parsed
 * from config.json, the weights, and the 16-bit matrix-vector kernels. lm_config_parse()
 * takes untrusted bytes and never crashes.
 *
 * Dimension legend (used by lm.c, lm_load.c, lm_gemv.c):
 *   T  rows in one forward call     P  positions already cached (past)
 *   C  hidden_size                  F  intermediate_size
 *   H  attention heads              G  key/value heads (grouped-query: H % G == 0)
 *   D  head_dim                     V  vocab_size
 *   S  max context of a ctx (KV cache length) */
#ifndef SHOEBOX_MODEL_LM_INTERNAL_H
#define SHOEBOX_MODEL_LM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "shoebox/lm.h"

struct sb_err;

/* LM_ARCH_PHI: Moondream 2's text model (moondream.c builds it; there is no config.json for it
 * here): per block one LayerNorm with bias, attention and MLP in parallel on its output
 * (x + attn + mlp), fused qkv sliced into q/k/v, rotary on the first rot_dim dims of each head,
 * fc1 -> gelu(tanh) -> fc2 with biases (in gate / down), final LayerNorm with bias, lm_head with
 * bias; the first prefix positions attend to each other bidirectionally. */
enum lm_arch { LM_ARCH_LLAMA, LM_ARCH_QWEN2, LM_ARCH_PHI };
enum lm_rope { LM_ROPE_DEFAULT, LM_ROPE_LINEAR, LM_ROPE_DYNAMIC, LM_ROPE_LLAMA3 };

struct lm_config {
    enum lm_arch arch;
    int hidden;       /* C */
    int intermediate; /* F */
    int layers;
    int heads;    /* H */
    int kv_heads; /* G: num_key_value_heads, default H */
    int head_dim; /* D: head_dim, default C / H */
    int vocab;    /* V */
    int max_pos;  /* max_position_embeddings */
    float rms_eps;
    float rope_theta;
    enum lm_rope rope;
    float rope_factor;         /* linear / dynamic / llama3 */
    float rope_low, rope_high; /* llama3: low_freq_factor, high_freq_factor */
    int rope_orig_max;         /* llama3: original_max_position_embeddings */
    bool tie_embeddings;       /* tie_word_embeddings */
    bool qkv_bias;             /* Qwen2 always; Llama with attention_bias */
    bool o_bias;               /* Llama attention_bias also biases o_proj */
    bool mlp_bias;             /* Llama mlp_bias */
    int32_t eos[LM_MAX_STOP];
    int n_eos;
    int32_t bos; /* -1 if none */
    /* LM_ARCH_PHI only (0 elsewhere) */
    int rot_dim; /* rotated dims per head (even, <= D); 0: all D */
    int prefix;  /* positions [0, prefix) attend bidirectionally; 0: fully causal */
};

/* Parses config.json bytes (the object under key when key is not NULL, e.g. "text_config")
 * with the defaults of transformers' LlamaConfig / Qwen2Config. SB_EFORMAT for malformed
 * JSON or out-of-range values, SB_EMODEL for an unsupported model_type, hidden_act or
 * rope_scaling. */
int lm_config_parse(const char *json, size_t len, const char *key, struct lm_config *c,
                    struct sb_err *err);
/* Applies generation_config.json's eos_token_id / bos_token_id when present. */
int lm_generation_config_parse(const char *json, size_t len, struct lm_config *c,
                               struct sb_err *err);

/* A weight matrix (n_out, n_in) row-major as nn.Linear stores it, in its file dtype. */
struct lm_mat {
    const void *w; /* (n_out, n_in) ST_F32 / ST_F16 / ST_BF16 */
    enum st_dtype dt;
    const float *b; /* (n_out) f32 bias or NULL */
    int n_out, n_in;
    /* bf16 precision (lm_model_set_precision): the packed bf16 copy the prefill's products of
     * more than LM_GEMV_MAX_T rows use (bf.packed, bf.b = b, bf.w NULL); bf.packed is NULL
     * otherwise (fp32, the lm_head and the embedding table: those only ever see one row). */
    struct clip_linear bf;
};

struct lm_layer {
    const float *attn_norm;   /* (C) input_layernorm */
    const float *attn_norm_b; /* (C) LM_ARCH_PHI: its LayerNorm bias */
    struct lm_mat q;          /* (H*D, C) */
    struct lm_mat k;          /* (G*D, C) */
    struct lm_mat v;          /* (G*D, C) */
    struct lm_mat o;          /* (C, H*D) */
    const float *mlp_norm;    /* (C) post_attention_layernorm */
    struct lm_mat gate;       /* (F, C) */
    struct lm_mat up;         /* (F, C) */
    struct lm_mat down;       /* (C, F) */
};

struct lm_model {
    struct lm_config cfg;
    struct lm_mat embed; /* (V, C) embed_tokens: a "matrix" whose rows are looked up */
    struct lm_layer *layers;
    const float *norm;         /* (C) final RMSNorm */
    const float *norm_b;       /* (C) LM_ARCH_PHI: final LayerNorm bias */
    struct lm_mat head;        /* (V, C) lm_head, or embed when tied */
    float *inv_freq;           /* (D/2) rotary inverse frequencies after static scaling */
    struct st_weights weights; /* the safetensors files, mapped read-only */
    void **owned; /* f32 copies of small vectors (norms, biases), freed with the model */
    size_t n_owned, cap_owned;
    struct clip_bf16 *bf16; /* bf16 precision: the backend holding the packed copies, or NULL */
    size_t bf16_bytes;      /* bytes of those copies (weights as bf16) */
};

/* Precision of the long products (prefill rows): FP32 (the default after loading: 16-bit
 * weights widened to f32, cblas_sgemm) or BF16 (the block's linears packed once into the
 * clip_bf16 backend, an extra bf16 copy of them beside the file's weights, which the one-row
 * gemv path keeps using; activations rounded to bf16, fp32 accumulation). AUTO is BF16 where
 * clip_cpu_native_bf16() and the build has oneDNN; BF16 without oneDNN stays FP32. Call once,
 * before any ctx is made. SB_ENOMEM, SB_EINTERNAL. */
int lm_model_set_precision(struct lm_model *m, enum clip_precision want, struct sb_err *err);
enum clip_precision lm_model_precision(const struct lm_model *m);
/* l packed into m's bf16 backend (l->bf), its weights widened through buf (room for
 * n_out * n_in floats); nothing for a matrix without weights. SB_ENOMEM, SB_EINTERNAL. */
int lm_pack_mat(struct lm_model *m, struct lm_mat *l, float *buf, struct sb_err *err);

/* Runner of bf16 products (lm_bf16.c) for one ctx: its pool, the backend's per-worker state and
 * a bf16 input buffer. Products share their rows out over the pool in chunks of multiples of
 * 16 rows, at most LM_BF16_ROWS, so a ctx makes at most LM_BF16_ROWS / 16 primitives per
 * weight shape and epilogue whatever its row counts; every buffer a product reads or writes
 * needs its rows rounded up to 16. */
#define LM_BF16_ROWS 256
struct lm_bf16_exec {
    struct clip_bf16_ctx *ctx;
    struct sb_pool *pool;
    int n_workers;
    uint16_t *in16;     /* (rows rounded to 16, width) */
    atomic_bool failed; /* a product failed (set by any worker) */
    struct sb_err err;  /* why, when known */
};
/* SB_ENOMEM, SB_EINTERNAL; x is then released. */
int lm_bf16_exec_init(struct lm_bf16_exec *x, struct clip_bf16 *b, struct sb_pool *pool,
                      size_t rows, size_t width, struct sb_err *err);
void lm_bf16_exec_release(struct lm_bf16_exec *x); /* also on a zeroed or released one */
/* out (T, n_out) = in (T, n_in) @ l^T + b, l packed: epi STORE / RESIDUAL (f32 out, RESIDUAL
 * adds to it) or ACT (bf16 out, act applied; an input for another product). The input is f32
 * in (each worker converts its rows into x->in16) or, when in is NULL, bf16 in16 (not x's
 * buffer). A failure sets x->failed (lm_bf16_status). Allocates nothing once the primitives
 * of a shape exist. */
void lm_bf16_linear(struct lm_bf16_exec *x, void *out, const float *in, const uint16_t *in16,
                    const struct clip_linear *l, int T, enum clip_epi epi, enum clip_act act);
/* SB_OK, or why a product failed since the last call ("<what>: ..."); clears the failure. */
int lm_bf16_status(struct lm_bf16_exec *x, const char *what, struct sb_err *err);

/* Loading pieces for builders of other layouts (moondream.c), from lm_load.c: memory the
 * model frees; a (d0) vector widened to f32; a linear name.weight (n_out, n_in) in place with
 * name.bias widened when bias. Names are full tensor names. SB_EMODEL naming a missing or
 * misshapen tensor, SB_ENOMEM. */
void *lm_own_alloc(struct lm_model *m, size_t bytes);
int lm_load_vector(struct lm_model *m, const char *name, int64_t d0, const float **out,
                   struct sb_err *err);
int lm_load_linear(struct lm_model *m, const char *name, int n_out, int n_in, bool bias,
                   struct lm_mat *l, struct sb_err *err);

/* ------------------------------------------------------------------------------------------ */
/* Kernels (lm_gemv.c) */

/* y(N) = W(N,K) x(K) for rows [n0, n1) of W, W in dt (f32/f16/bf16), widened in the inner
 * loop (AVX512 / AVX2+F16C chosen at run time, portable C otherwise). */
void lm_gemv_rows(float *y, const void *W, enum st_dtype dt, const float *x, int K, int n0, int n1);
/* The same for T input rows (x row t at x + t * ldx) into y[t]: each weight row is read once
 * for all of them, and row t's results are bit for bit what lm_gemv_rows() gives for it alone
 * (batched decoding must not change a caption). */
void lm_gemv_rows_n(float *const *y, const float *x, size_t ldx, int T, const void *W,
                    enum st_dtype dt, int K, int n0, int n1);
/* nn.LayerNorm of one row of C: o = (x - mean) / sqrt(var + eps) * w + b (o may not alias x). */
void lm_layernorm_row(float *o, const float *x, const float *w, const float *b, int C, float eps);
/* dst(rows, K) = rows [n0, n1) of W widened to f32. */
void lm_widen_rows(float *dst, const void *W, enum st_dtype dt, int K, int n0, int n1);
/* out[t][n0, n1) = beta * out[t][n0, n1) + in[t] . W[n] (no bias) for T rows of in (n_in wide;
 * out rows n_out wide), in one cblas_sgemm; 16-bit rows of W are widened into buf (room for
 * (n1 - n0) * n_in floats) first. */
void lm_sgemm_rows(const struct lm_mat *W, const float *in, int T, int n0, int n1, float beta,
                   float *out, float *buf);
/* The name of the kernel lm_gemv_rows() uses on this CPU (for the bench). */
const char *lm_gemv_kernel_name(void);
/* Tests: the kernels up to name ("portable", "avx2+f16c", "avx512f") only, process-wide;
 * false when this CPU has no such kernel. NULL: the best again. */
bool lm_gemv_limit(const char *name);

#endif
