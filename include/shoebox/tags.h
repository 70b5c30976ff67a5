/* tags.h - automatic keywords by zero-shot CLIP over a vocabulary of concepts.
 *
 * The recipe (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
 * Supervision", section 3.1.4, prompt ensembling):
 *   prompts of concept c: its own (vocabulary line "tag | prompt | prompt") or the templates
 *     TAGS_TEMPLATES applied to the tag ("a photo of a {}.", ...);
 *   t_c = normalize(mean_p normalize(text_embedding(prompt_p)))   (the ensemble)
 *   logit_c = logit_scale * <x, t_c>   for an image embedding x (L2-normalised)
 *   p = softmax(logit) over the whole vocabulary
 *   keep c when p_c >= min_prob * factor_c (factor_c: the line's " @F", default 1: a
 *     per-tag calibration that asks more confidence of broad or costly tags such as
 *     "screenshot"), best first, at most top_k.
 * The softmax makes concepts compete: a photo that matches nothing well spreads its mass over
 * hundreds of concepts and gets no tag, instead of 50 weak ones. logit_scale is CLIP's
 * trained temperature (100 in the released OpenAI and OpenCLIP checkpoints, where it is
 * clamped).
 *
 * The concept embeddings (n x dim floats) are computed once per model and vocabulary and
 * cached in the catalog (key "tagvocab:<model id>:<vocabulary hash>"). */
#ifndef SHOEBOX_TAGS_H
#define SHOEBOX_TAGS_H

#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct catalog;
struct clip_ctx;
struct crawl_plugin;

/* The object templates of the ensemble ("{}" is the tag). */
#define TAGS_NTEMPLATES 5
extern const char *const tags_templates[TAGS_NTEMPLATES];

/* The shipped English vocabulary: lines as described above (*n of them). */
const char *const *tags_builtin_vocab(size_t *n);

struct tagger_params {
    float logit_scale; /* softmax temperature: 100 */
    float min_prob;    /* keep tags with probability >= this (times the tag's factor): 0.05 */
    int top_k;         /* at most this many tags per photo: 6 */
};
struct tagger_params tagger_default_params(void);

struct tagger; /* opaque */

/* Parses the vocabulary lines[0..n) (blank lines and '#' comments skipped). A malformed line
 * (empty tag, bad factor, too many prompts) is SB_EINVAL naming it. *out is freed with
 * tagger_free(). p NULL: tagger_default_params(). */
int tagger_new(const char *const *lines, size_t n, const struct tagger_params *p,
               struct tagger **out, struct sb_err *err);
void tagger_free(struct tagger *t); /* NULL is a no-op */

size_t tagger_count(const struct tagger *t);
const char *tagger_tag(const struct tagger *t, size_t i); /* borrowed */
/* The prompts of concept i (templates applied); *n of them, borrowed. */
const char *const *tagger_prompts(const struct tagger *t, size_t i, size_t *n);
/* A hash of the vocabulary, templates and recipe version (16 hex digits); borrowed. */
const char *tagger_hash(const struct tagger *t);

/* Computes the concept embeddings with the text tower of c (dim floats each). */
int tagger_embed(struct tagger *t, struct clip_ctx *c, int dim, struct sb_err *err);
/* Takes the concept embeddings from cat's cache for model_id, else computes them with c and
 * stores them there (in its own transaction: call it outside one). */
int tagger_prepare(struct tagger *t, struct catalog *cat, struct clip_ctx *c, const char *model_id,
                   int dim, struct sb_err *err);
/* The concept embeddings (count x dim, row-major), NULL before tagger_embed/prepare. */
const float *tagger_embeddings(const struct tagger *t, int *dim);

/* probs[0..count) = softmax over the vocabulary for image embedding x (dim floats). */
int tagger_scores(const struct tagger *t, const float *x, int dim, float *probs,
                  struct sb_err *err);
/* The concepts kept by the thresholds, best first: writes up to max indices into idx and
 * returns how many. */
size_t tagger_pick(const struct tagger *t, const float *probs, size_t *idx, size_t max);

/* The crawl stage "tags:<model_id>" (needs_pixels false): tags each photo from its embedding
 * (the one computed in the same batch, else the stored one) and replaces its 'auto' tags,
 * never touching those of other sources. t must be prepared and outlive the crawl; store()
 * uses scratch inside t, so one crawl at a time per tagger. */
int tagger_plugin(struct tagger *t, const char *model_id, struct crawl_plugin *out,
                  struct sb_err *err);

#endif
