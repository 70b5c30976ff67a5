/* crawl.c - indexing: scan, hash, then per-photo work (probe, thumbnails, embedding).
 *
 * Threads: the calling thread owns the catalog and does every write; pool workers only read
 * files and compute (hash, decode, thumbnails, preprocessing) into per-item result slots.
 * Each batch is one transaction, written after the workers are done with it. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/log.h"
#include "shoebox/pool.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define STAGE_PROBE    "probe"
#define STAGE_THUMB    "thumb"
#define MAX_FILE_BYTES ((size_t)2 << 30) /* a 2 GiB "photo" is not one */

struct crawl_params crawl_default_params(void)
{
    struct crawl_params p;
    memset(&p, 0, sizeof(p));
    p.max_pixels = 200u * 1000u * 1000u;
    p.thumb_small = 256;
    p.thumb_large = 1024;
    p.thumb_quality = 85;
    p.batch = 64;
    p.keep_bytes = (size_t)256 << 20;
    return p;
}

bool crawl_thumb_path(const char *thumb_dir, const unsigned char hash[16], int px, char *buf,
                      size_t cap)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    int n = snprintf(buf, cap, "%s/%.2s/%s-%d.jpg", thumb_dir, hex, hex, px);
    return n > 0 && (size_t)n < cap;
}

/* ---- hashing ---------------------------------------------------------------------------- */

static void hash_to_bytes(XXH128_hash_t h, unsigned char out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(h.high64 >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(h.low64 >> (56 - 8 * i));
    }
}

/* Bytes per read(2) while hashing: small enough that each piece is still in the L2 cache
 * when XXH3 reads it (measured on 3 MB JPEGs: 1 MB pieces cost 1.6 ms per file, 128 KB 0.9). */
enum { HASH_CHUNK = 128 << 10 };

/* Reads the first bytes into head (for sniffing) while hashing the whole file. */
static int hash_fd(int fd, const char *path, unsigned char *head, size_t head_cap, size_t *head_len,
                   unsigned char hash[16], int64_t *size, struct sb_err *err)
{
    enum { CHUNK = HASH_CHUNK };
    unsigned char *buf = malloc(CHUNK);
    XXH3_state_t *state = XXH3_createState();
    int rc = SB_OK;
    if (!buf || !state) {
        rc = sb_fail(err, SB_ENOMEM, "hash '%s': out of memory", path);
        goto out;
    }
    XXH3_128bits_reset(state);
    int64_t total = 0;
    if (head_len)
        *head_len = 0;
    for (;;) {
        size_t n = 0;
        rc = sb_read_some(fd, buf, CHUNK, &n, path, err);
        if (rc)
            goto out;
        if (n == 0)
            break;
        if (head && total < (int64_t)head_cap) {
            size_t take = head_cap - (size_t)total;
            if (take > (size_t)n)
                take = (size_t)n;
            memcpy(head + total, buf, take);
            *head_len = (size_t)total + take;
        }
        XXH3_128bits_update(state, buf, (size_t)n);
        total += (int64_t)n;
    }
    hash_to_bytes(XXH3_128bits_digest(state), hash);
    *size = total;
out:
    XXH3_freeState(state);
    free(buf);
    return rc;
}

int crawl_hash_file(const char *path, unsigned char hash[16], int64_t *size, struct sb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    int rc = hash_fd(fd, path, NULL, 0, NULL, hash, size, err);
    close(fd);
    return rc;
}

/* Reads the whole file (at most max bytes) into *out and hashes it on the way, one cache-warm
 * piece at a time, instead of hashing the buffer again after read(2) filled it. */
static int read_hash_fd(int fd, const char *path, size_t max, unsigned char **out, size_t *len,
                        unsigned char hash[16], struct sb_err *err)
{
    unsigned char *buf = NULL;
    XXH3_state_t *state = NULL;
    size_t want = 0;
    int rc = sb_fd_size(fd, path, max, &want, err);
    if (rc)
        goto out;
    buf = malloc(want + 1);
    state = XXH3_createState();
    if (!buf || !state) {
        rc = sb_fail(err, SB_ENOMEM, "read '%s': out of memory", path);
        goto out;
    }
    XXH3_128bits_reset(state);
    size_t got = 0;
    while (got < want) {
        size_t ask = want - got < HASH_CHUNK ? want - got : HASH_CHUNK;
        size_t n = 0;
        rc = sb_read_some(fd, buf + got, ask, &n, path, err);
        if (rc)
            goto out;
        if (n == 0)
            break; /* the file shrank under us: the hash will tell */
        XXH3_128bits_update(state, buf + got, (size_t)n);
        got += (size_t)n;
    }
    buf[got] = '\0';
    hash_to_bytes(XXH3_128bits_digest(state), hash);
    *out = buf;
    *len = got;
    buf = NULL;
out:
    XXH3_freeState(state);
    free(buf);
    return rc;
}

static int read_hash_file(const char *path, size_t max, unsigned char **out, size_t *len,
                          unsigned char hash[16], struct sb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    int rc = read_hash_fd(fd, path, max, out, len, hash, err);
    close(fd);
    return rc;
}

enum hash_outcome { HASH_OK, HASH_FAILED, HASH_IGNORED, HASH_GONE };

struct hash_item {
    const struct catalog_file *file;
    size_t keep_max; /* > 0: keep the bytes read (a file of at most this size) in buf */
    enum hash_outcome outcome;
    unsigned char hash[16];
    int64_t size;
    enum image_format format;
    unsigned char *buf; /* the whole file, as hashed; NULL when not kept */
    size_t len;
    struct sb_err err;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void hash_one(struct hash_item *it)
{
    const char *path = it->file->path;
    sb_err_clear(&it->err);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        /* deleted since the scan saw it: missing, not failed */
        it->outcome = e == ENOENT ? HASH_GONE : HASH_FAILED;
        sb_fail(&it->err, sb_code_from_errno(e), "open: %s", strerror(e));
        return;
    }
    /* Sniff before hashing: a 4 GB video is recognised as "not an image" from 64 bytes. */
    unsigned char head[64];
    ssize_t n;
    do {
        n = pread(fd, head, sizeof(head), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        it->outcome = HASH_FAILED;
        sb_fail(&it->err, sb_code_from_errno(e), "read: %s", strerror(e));
        goto out;
    }
    it->format = image_sniff(head, (size_t)n, base_name(path));
    if (it->format == IMAGE_FMT_UNKNOWN) {
        if (crawl_has_image_ext(base_name(path))) {
            it->outcome = HASH_FAILED;
            if (n == 0)
                sb_fail(&it->err, SB_ECORRUPT, "empty file");
            else
                sb_fail(&it->err, SB_EFORMAT, "not an image (unrecognised content)");
        } else {
            it->outcome = HASH_IGNORED;
        }
        goto out;
    }
    size_t sz = 0;
    if (it->keep_max && sb_fd_size(fd, path, it->keep_max, &sz, NULL) == SB_OK && sz > 0) {
        /* read it whole for the work stage, which then needs no second read */
        int rc = read_hash_fd(fd, path, it->keep_max, &it->buf, &it->len, it->hash, &it->err);
        if (rc != SB_OK && rc != SB_ETOOBIG) {
            it->outcome = HASH_FAILED;
            goto out;
        }
        unsigned char more;
        size_t m = 1;
        if (rc == SB_OK)
            rc = sb_read_some(fd, &more, 1, &m, path, NULL); /* 0: nothing past the size */
        if (rc == SB_OK && m == 0 && it->len == sz) {
            it->size = (int64_t)it->len;
            it->outcome = HASH_OK;
            goto out;
        }
        /* grown (past the budget too: ETOOBIG) or shrunk while read: hash it all again, as
         * a file that is not kept */
        sb_err_clear(&it->err);
        free(it->buf);
        it->buf = NULL;
        it->len = 0;
        if (lseek(fd, 0, SEEK_SET) != 0) {
            int e = errno;
            it->outcome = HASH_FAILED;
            sb_fail(&it->err, sb_code_from_errno(e), "seek: %s", strerror(e));
            goto out;
        }
    }
    if (hash_fd(fd, path, NULL, 0, NULL, it->hash, &it->size, &it->err) != SB_OK) {
        it->outcome = HASH_FAILED;
        goto out;
    }
    it->outcome = HASH_OK;
out:
    close(fd);
}

static void hash_range(void *arg, size_t begin, size_t end, int worker)
{
    (void)worker;
    struct hash_item *items = arg;
    for (size_t i = begin; i < end; i++)
        hash_one(&items[i]);
}

/* ---- per-photo work --------------------------------------------------------------------- */

/* Stage bits in catalog_work.stages_mask: probe and thumb first, then the embedding (when an
 * embedder is set), then the plugins; struct stage_bits says where each one is. */
enum { ST_PROBE = 0, ST_THUMB = 1 };

struct stage_bits {
    int embed;                     /* -1: no embedder */
    int plugin[CRAWL_MAX_PLUGINS]; /* bit of each plugin */
};

struct plugin_result {
    void *result;
    int rc;
    bool ran;
    struct sb_err err;
};

struct work_item {
    const struct catalog_work *w;
    unsigned char *buf; /* the file as hashed, when the hash stage kept it; work_one frees it */
    size_t len;
    /* results */
    bool changed; /* the file's content is no longer what was hashed */
    struct photo_meta meta;
    struct image_info info;
    int width, height;
    const char *time_source;
    int probe_rc, thumb_rc, embed_rc;
    struct sb_err probe_err, thumb_err, embed_err;
    float *pixels; /* embedder input, or NULL */
    struct plugin_result plug[CRAWL_MAX_PLUGINS];
};

struct work_batch {
    const struct crawl_params *p;
    const struct stage_bits *bits;
    const char *thumb_dir;
    struct work_item *items;
};

static bool wants(const struct catalog_work *w, int bit)
{
    return bit >= 0 && (w->stages_mask & (1u << bit));
}

static void local_time_string(int64_t t, struct photo_meta *m)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return;
    strftime(m->taken_at, sizeof(m->taken_at), "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff / 60;
    int hh = (int)((labs(off) / 60) % 24), mm = (int)(labs(off) % 60);
    snprintf(m->tz_offset, sizeof(m->tz_offset), "%c%02d:%02d", off < 0 ? '-' : '+', hh, mm);
    m->taken_unix = t;
}

static int write_thumb_jpeg(const struct work_batch *b, const struct catalog_work *w, int px,
                            const unsigned char *jpeg, size_t len, struct sb_err *err)
{
    char path[4096];
    if (!crawl_thumb_path(b->thumb_dir, w->hash, px, path, sizeof(path)))
        return sb_fail(err, SB_ETOOBIG, "thumbnail path too long");
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = sb_mkdirs(path, err);
    *slash = '/';
    if (rc)
        return rc;
    return sb_write_file_atomic(path, jpeg, len, err);
}

static int write_thumb(const struct work_batch *b, const struct catalog_work *w,
                       const struct image *img, int px, struct sb_err *err)
{
    unsigned char *jpeg = NULL;
    size_t len = 0;
    int rc = image_encode_jpeg(img, b->p->thumb_quality, &jpeg, &len, err);
    if (!rc)
        rc = write_thumb_jpeg(b, w, px, jpeg, len, err);
    free(jpeg);
    return rc;
}

/* img is in stored orientation when orientation != 1: the large thumbnail is turned upright
 * (fewer pixels to move than the decode), and the small one is made from it. */
static int make_thumbs(const struct work_batch *b, const struct catalog_work *w,
                       const struct image *img, int orientation, struct sb_err *err)
{
    struct image *large = image_thumbnail(img, b->p->thumb_large);
    if (large && orientation != 1) {
        struct image *r = image_orient(large, orientation);
        image_free(large);
        large = r;
    }
    struct image *small = large ? image_thumbnail(large, b->p->thumb_small) : NULL;
    int rc = SB_OK;
    if (!large || !small)
        rc = sb_fail(err, SB_ENOMEM, "thumbnail: out of memory");
    if (!rc)
        rc = write_thumb(b, w, large, b->p->thumb_large, err);
    if (!rc)
        rc = write_thumb(b, w, small, b->p->thumb_small, err);
    image_free(small);
    image_free(large);
    return rc;
}

/* The probe stage's results besides the metadata: upright size and the time's source. */
static void probe_done(struct work_item *it, const struct catalog_work *w)
{
    bool swap = it->info.orientation >= 5 && it->info.orientation <= 8;
    it->width = swap ? it->info.height : it->info.width;
    it->height = swap ? it->info.width : it->info.height;
    it->time_source = CATALOG_TIME_EXIF;
    if (!it->meta.taken_at[0]) {
        int64_t t;
        if (crawl_takeout_time(w->path, &t)) {
            local_time_string(t, &it->meta);
            it->time_source = CATALOG_TIME_TAKEOUT;
        } else {
            local_time_string(w->st.mtime_ns / 1000000000, &it->meta);
            it->time_source = CATALOG_TIME_MTIME;
        }
    }
}

static void work_one(const struct work_batch *b, struct work_item *it, int worker)
{
    const struct catalog_work *w = it->w;
    const struct crawl_params *p = b->p;
    const struct crawl_embedder *emb = p->embedder;
    bool want_probe = wants(w, ST_PROBE);
    bool want_thumb = wants(w, ST_THUMB);
    bool want_embed = emb && wants(w, b->bits->embed);
    bool need_pixels = want_probe || want_thumb || want_embed;
    int plug_long = 0, plug_short = 0;
    bool plug_pixels = false;
    for (int i = 0; i < p->nplugins; i++) {
        const struct crawl_plugin *pl = &p->plugins[i];
        if (!wants(w, b->bits->plugin[i]))
            continue;
        if (!pl->needs_pixels) {
            /* no pixels needed: run it right away */
            it->plug[i].ran = true;
            it->plug[i].rc =
                pl->run(pl->user, worker, NULL, w->path, &it->plug[i].result, &it->plug[i].err);
            continue;
        }
        need_pixels = true;
        plug_pixels = true;
        plug_long = pl->min_long > plug_long ? pl->min_long : plug_long;
        plug_short = pl->min_short > plug_short ? pl->min_short : plug_short;
    }
    if (!need_pixels)
        return;
    unsigned char *buf = NULL;
    size_t len = 0;
    struct image *img = NULL;
    struct image_thumb tj[2] = { { .px = p->thumb_large }, { .px = p->thumb_small } };
    int planar = 0;
    struct sb_err err;
    sb_err_clear(&err);
    photo_meta_init(&it->meta);

    unsigned char h[16];
    int rc = SB_OK;
    if (it->buf) {
        /* the bytes the hash was made of: no second read, and nothing to compare */
        buf = it->buf;
        len = it->len;
        it->buf = NULL;
        memcpy(h, w->hash, 16);
    } else {
        rc = read_hash_file(w->path, MAX_FILE_BYTES, &buf, &len, h, &err);
    }
    if (!rc) {
        if (memcmp(h, w->hash, 16) != 0) {
            it->changed = true; /* rewritten since it was hashed: rescan it */
            goto out;
        }
    }
    const char *name = base_name(w->path);
    bool dp_upright = want_embed || plug_pixels;
    enum image_format fmt = rc ? IMAGE_FMT_UNKNOWN : image_sniff(buf, len, name);
    if (!rc && want_probe)
        meta_read(buf, len, fmt, &it->meta, NULL); /* bad EXIF is no reason to fail */
    /* A JPEG whose pixels are for the thumbnails and the embedder only goes from its Y/Cb/Cr
     * planes straight to the thumbnails and to the model's input size (image_jpeg_planes), no
     * RGB decode in between: decoded once. Plugins get the RGB decode. */
    struct image_model_input mi = { 0 };
    if (want_embed && emb->input_size)
        mi = (struct image_model_input){ emb->min_short, emb->input_size, emb->user };
    if (!rc && (want_thumb || want_embed) && !plug_pixels && (!want_embed || mi.size) &&
        fmt == IMAGE_FMT_JPEG)
        rc = image_jpeg_planes(buf, len, name, p->max_pixels, p->thumb_quality, tj,
                               want_thumb ? 2 : 0, want_embed ? &mi : NULL, &img, &planar,
                               &it->info, &err);
    if (!rc && !planar) {
        struct image_decode_params dp = image_decode_default_params();
        dp.max_pixels = p->max_pixels;
        dp.min_long = want_thumb ? p->thumb_large : 0;
        dp.min_short = want_embed ? emb->min_short : 0;
        dp.min_long = plug_long > dp.min_long ? plug_long : dp.min_long;
        dp.min_short = plug_short > dp.min_short ? plug_short : dp.min_short;
        if (dp.min_long == 0 && dp.min_short == 0) /* probe only: the smallest decode */
            dp.min_long = 1;
        /* Only the embedder and plugins need the decode upright; thumbnails are turned
         * after the reduction. */
        dp.apply_orientation = dp_upright;
        rc = image_decode(buf, len, name, &dp, &img, &it->info, &err);
    }
    free(buf);
    buf = NULL;
    if (rc) {
        /* Pixels that cannot be had (damaged or cut-off data, or too many) from a JPEG whose
         * header gave its size: the photo keeps its metadata (a phone photo cut short in a
         * download still has its date, camera and place); the pixel stages fail. JPEG only:
         * its decoder reads the orientation with the header (the others after the pixels, so
         * a turned photo's size would be kept sideways), and its sizes are at most 65535. */
        bool keep_probe = want_probe && (rc == SB_ECORRUPT || rc == SB_ETOOBIG) &&
                          it->info.format == IMAGE_FMT_JPEG && it->info.width > 0 &&
                          it->info.height > 0;
        it->probe_rc = keep_probe ? SB_OK : rc;
        it->thumb_rc = it->embed_rc = rc;
        it->probe_err = it->thumb_err = it->embed_err = err;
        for (int i = 0; i < p->nplugins; i++) {
            if (wants(w, b->bits->plugin[i]) && !it->plug[i].ran) {
                it->plug[i].ran = true;
                it->plug[i].rc = rc;
                it->plug[i].err = err;
            }
        }
        if (keep_probe)
            probe_done(it, w);
        goto out;
    }
    if (want_probe)
        probe_done(it, w);
    if (want_thumb && planar) {
        it->thumb_rc =
            write_thumb_jpeg(b, w, p->thumb_large, tj[0].jpeg, tj[0].len, &it->thumb_err);
        if (!it->thumb_rc)
            it->thumb_rc =
                write_thumb_jpeg(b, w, p->thumb_small, tj[1].jpeg, tj[1].len, &it->thumb_err);
    } else if (want_thumb) {
        it->thumb_rc =
            make_thumbs(b, w, img, dp_upright ? 1 : it->info.orientation, &it->thumb_err);
    }
    if (want_embed) {
        it->pixels = malloc(emb->input_floats * sizeof(float));
        if (!it->pixels)
            it->embed_rc = sb_fail(&it->embed_err, SB_ENOMEM, "embed: out of memory");
        else
            it->embed_rc = emb->preprocess(emb->user, img, it->pixels, &it->embed_err);
        if (it->embed_rc) {
            free(it->pixels);
            it->pixels = NULL;
        }
    }
    for (int i = 0; i < p->nplugins; i++) {
        const struct crawl_plugin *pl = &p->plugins[i];
        if (!wants(w, b->bits->plugin[i]) || it->plug[i].ran)
            continue;
        it->plug[i].ran = true;
        it->plug[i].rc =
            pl->run(pl->user, worker, img, w->path, &it->plug[i].result, &it->plug[i].err);
    }
out:
    free(tj[0].jpeg);
    free(tj[1].jpeg);
    free(buf);
    image_free(img);
}

struct work_and_hash {
    struct work_batch *b;
    size_t nwork;
    struct hash_item *hash; /* items nwork.. of the range: the next batch to hash */
};

static void work_hash_range(void *arg, size_t begin, size_t end, int worker)
{
    struct work_and_hash *wh = arg;
    for (size_t i = begin; i < end; i++) {
        if (i < wh->nwork)
            work_one(wh->b, &wh->b->items[i], worker);
        else
            hash_one(&wh->hash[i - wh->nwork]);
    }
}

/* ---- the index run ---------------------------------------------------------------------- */

struct kept_file {
    unsigned char hash[16];
    unsigned char *buf;
    size_t len;
};

struct hash_batch {
    struct catalog_file *files;
    struct hash_item *items;
    size_t n;
};

struct run {
    struct catalog *cat;
    const struct crawl_params *p;
    struct crawl_stats *st;
    const char *stages[4 + CRAWL_MAX_PLUGINS]; /* NULL-terminated */
    int nstages;
    struct stage_bits bits;
    char embed_stage[160];
    int64_t model_id;
    int64_t total_hash, total_work, done_work, hash_failed;
    /* the bytes of the last hash batch's new photos, which the next work batch takes */
    struct kept_file *kept;
    size_t nkept;
    /* the next hash batch, hashed alongside a work batch (its items keep a thread busy that
     * would otherwise wait for the other one's last photo) */
    struct hash_batch next;
    bool next_hashed;
    /* paths found rewritten between their hash and their decode in this run: the first time
     * a file is hashed again; a file that keeps changing fails for this run (it is taken up
     * again by the next run, its stat having changed) instead of sending the run round for ever */
    char **changed;
    size_t nchanged;
};

/* At most crawl_params.keep_bytes of files are kept between hashing and the work on them (a
 * batch of 64 phone photos is about 200 MB); files past it are read again by the work stage. */

static void kept_release(struct run *r)
{
    for (size_t i = 0; i < r->nkept; i++)
        free(r->kept[i].buf);
    free(r->kept);
    r->kept = NULL;
    r->nkept = 0;
}

static void hash_batch_free(struct hash_batch *hb)
{
    for (size_t i = 0; i < hb->n; i++)
        free(hb->items[i].buf);
    free(hb->items);
    catalog_files_free(hb->files, hb->n);
    memset(hb, 0, sizeof(*hb));
}

/* The next files to hash, each with its share of the keep budget; nothing read yet. */
static int hash_batch_prepare(struct run *r, struct hash_batch *hb, struct sb_err *err)
{
    memset(hb, 0, sizeof(*hb));
    int rc = catalog_files_pending(r->cat, r->p->batch, &hb->files, &hb->n, err);
    if (rc)
        return rc;
    hb->items = calloc(hb->n ? hb->n : 1, sizeof(*hb->items));
    if (!hb->items) {
        hash_batch_free(hb);
        return sb_fail(err, SB_ENOMEM, "index: out of memory");
    }
    size_t budget = r->p->keep_bytes;
    for (size_t i = 0; i < hb->n; i++) {
        hb->items[i].file = &hb->files[i];
        size_t sz = hb->files[i].st.size > 0 ? (size_t)hb->files[i].st.size : 0;
        if (sz > 0 && sz <= budget && sz <= MAX_FILE_BYTES) {
            hb->items[i].keep_max = sz; /* as scanned: a file that grew since is not kept */
            budget -= sz;
        }
    }
    return SB_OK;
}

/* Stores a hashed batch in one transaction; its new photos' bytes become r->kept. */
static int hash_batch_commit(struct run *r, struct hash_batch *hb, struct sb_err *err)
{
    size_t n = hb->n;
    kept_release(r);
    r->kept = calloc(n ? n : 1, sizeof(*r->kept));
    int rc = catalog_begin(r->cat, err);
    for (size_t i = 0; i < n && !rc; i++) {
        struct hash_item *it = &hb->items[i];
        switch (it->outcome) {
        case HASH_OK:
            r->st->hashed++;
            bool created = false;
            int64_t pid;
            rc = catalog_file_set_photo(r->cat, it->file->id, it->hash, it->size,
                                        image_format_name(it->format), r->stages, &pid, &created,
                                        err);
            if (created)
                r->st->new_photos++;
            if (created && it->buf && r->kept) {
                /* a new photo: its work comes next, from these bytes */
                struct kept_file *k = &r->kept[r->nkept++];
                memcpy(k->hash, it->hash, 16);
                k->buf = it->buf;
                k->len = it->len;
                it->buf = NULL;
            }
            break;
        case HASH_FAILED:
            r->st->failed++;
            r->hash_failed++;
            rc = catalog_file_set_failed(r->cat, it->file->id, it->err.msg, err);
            break;
        case HASH_IGNORED:
            r->st->ignored++;
            rc = catalog_file_set_ignored(r->cat, it->file->id, err);
            break;
        case HASH_GONE:
            r->st->missing++;
            r->hash_failed++; /* gone: no work either */
            rc = catalog_file_set_missing(r->cat, it->file->id, err);
            break;
        }
    }
    if (!rc)
        rc = catalog_commit(r->cat, err);
    else
        catalog_rollback(r->cat);
    hash_batch_free(hb);
    return rc;
}

/* Hashes and stores the next batch of pending files: the one the last work batch hashed on
 * the side, else a new one. */
static int run_hash_batch(struct run *r, bool *any, struct sb_err *err)
{
    struct hash_batch hb;
    if (r->next_hashed) {
        hb = r->next;
        memset(&r->next, 0, sizeof(r->next));
        r->next_hashed = false;
    } else {
        int rc = hash_batch_prepare(r, &hb, err);
        if (rc)
            return rc;
        sb_pool_for_each(r->p->pool, hb.n, hash_range, hb.items);
    }
    *any = hb.n > 0;
    return hash_batch_commit(r, &hb, err);
}

/* True when path was already found changed in this run; otherwise remembers it. */
static bool seen_changed(struct run *r, const char *path)
{
    for (size_t i = 0; i < r->nchanged; i++)
        if (strcmp(r->changed[i], path) == 0)
            return true;
    char **grown = realloc(r->changed, (r->nchanged + 1) * sizeof(*grown));
    char *copy = strdup(path);
    if (!grown || !copy) { /* out of memory: treat it as seen, so the run still ends */
        free(copy);
        if (grown)
            r->changed = grown;
        return true;
    }
    r->changed = grown;
    r->changed[r->nchanged++] = copy;
    return false;
}

/* The file changed under us twice in this run: its photo's pending stages fail for now. */
static int fail_changed(struct run *r, const struct catalog_work *w, struct sb_err *err)
{
    static const char msg[] = "the file keeps changing while it is read (rewritten twice during "
                              "this run); index it again once it is complete";
    int rc = SB_OK;
    for (int i = 0; !rc && i < r->nstages; i++)
        if (w->stages_mask & (1u << i))
            rc = catalog_job_set(r->cat, w->photo_id, r->stages[i], CATALOG_JOB_FAILED, msg, err);
    r->st->failed++;
    return rc;
}

static int store_work(struct run *r, struct work_item *it, const float *vec, struct sb_err *err)
{
    const struct catalog_work *w = it->w;
    int rc = SB_OK;
    if (it->changed) {
        if (!seen_changed(r, w->path)) /* rewritten after hashing: hash it again next pass */
            return catalog_file_touch(r->cat, w->path, &w->st, err) ? SB_EDB : SB_OK;
        return fail_changed(r, w, err);
    }
    if (wants(w, ST_PROBE)) {
        if (it->probe_rc == SB_OK)
            rc = catalog_photo_set_meta(r->cat, w->photo_id, &it->meta,
                                        image_format_name(it->info.format), it->width, it->height,
                                        it->time_source, err);
        if (!rc)
            rc = catalog_job_set(r->cat, w->photo_id, STAGE_PROBE,
                                 it->probe_rc ? CATALOG_JOB_FAILED : CATALOG_JOB_DONE,
                                 it->probe_rc ? it->probe_err.msg : NULL, err);
        if (it->probe_rc)
            r->st->failed++;
    }
    if (!rc && wants(w, ST_THUMB))
        rc = catalog_job_set(r->cat, w->photo_id, STAGE_THUMB,
                             it->thumb_rc ? CATALOG_JOB_FAILED : CATALOG_JOB_DONE,
                             it->thumb_rc ? it->thumb_err.msg : NULL, err);
    if (!rc && r->p->embedder && wants(w, r->bits.embed)) {
        if (vec) {
            rc =
                catalog_vector_put(r->cat, r->model_id, w->photo_id, vec, r->p->embedder->dim, err);
            r->st->embedded++;
        }
        if (!rc)
            rc = catalog_job_set(r->cat, w->photo_id, r->embed_stage,
                                 it->embed_rc ? CATALOG_JOB_FAILED : CATALOG_JOB_DONE,
                                 it->embed_rc ? it->embed_err.msg : NULL, err);
    }
    for (int i = 0; !rc && i < r->p->nplugins; i++) {
        const struct crawl_plugin *pl = &r->p->plugins[i];
        struct plugin_result *pr = &it->plug[i];
        if (!wants(w, r->bits.plugin[i]) || !pr->ran)
            continue;
        if (pr->rc == SB_OK)
            pr->rc = pl->store(pl->user, r->cat, w->photo_id, pr->result, vec,
                               r->p->embedder ? r->p->embedder->dim : 0, &pr->err);
        if (pr->rc == SB_EDB)
            rc = sb_fail(err, SB_EDB, "%s", pr->err.msg); /* the catalog failed: stop */
        else
            rc = catalog_job_set(r->cat, w->photo_id, pl->stage,
                                 pr->rc ? CATALOG_JOB_FAILED : CATALOG_JOB_DONE,
                                 pr->rc ? pr->err.msg : NULL, err);
    }
    return rc;
}

static void free_plugin_results(const struct crawl_params *p, struct work_item *it)
{
    for (int i = 0; i < p->nplugins; i++) {
        if (it->plug[i].result && p->plugins[i].free_result)
            p->plugins[i].free_result(p->plugins[i].user, it->plug[i].result);
        it->plug[i].result = NULL;
    }
}

/* Runs the embedder over the items that have pixels; per-item failures go to embed_rc. */
static float *embed_batch(struct run *r, struct work_item *items, size_t n)
{
    const struct crawl_embedder *emb = r->p->embedder;
    if (!emb)
        return NULL;
    float *out = calloc(n ? n * (size_t)emb->dim : 1, sizeof(float));
    float *in = malloc(((size_t)emb->max_batch > 0 ? (size_t)emb->max_batch : 1) *
                       emb->input_floats * sizeof(float));
    size_t *idx = malloc((n ? n : 1) * sizeof(size_t));
    if (!out || !in || !idx) {
        for (size_t i = 0; i < n; i++) {
            if (items[i].pixels)
                items[i].embed_rc = sb_fail(&items[i].embed_err, SB_ENOMEM, "embed: out of memory");
        }
        free(in);
        free(idx);
        return out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].pixels)
            idx[m++] = i;
    }
    int maxb = emb->max_batch > 0 ? emb->max_batch : 1;
    for (size_t s = 0; s < m; s += (size_t)maxb) {
        size_t cnt = m - s < (size_t)maxb ? m - s : (size_t)maxb;
        for (size_t k = 0; k < cnt; k++)
            memcpy(in + k * emb->input_floats, items[idx[s + k]].pixels,
                   emb->input_floats * sizeof(float));
        struct sb_err e;
        sb_err_clear(&e);
        float *tmp = malloc(cnt * (size_t)emb->dim * sizeof(float));
        int rc = tmp ? emb->embed(emb->user, in, (int)cnt, tmp, &e)
                     : sb_fail(&e, SB_ENOMEM, "embed: out of memory");
        for (size_t k = 0; k < cnt; k++) {
            struct work_item *it = &items[idx[s + k]];
            if (rc) {
                it->embed_rc = rc;
                it->embed_err = e;
            } else {
                memcpy(out + idx[s + k] * (size_t)emb->dim, tmp + k * (size_t)emb->dim,
                       (size_t)emb->dim * sizeof(float));
            }
        }
        free(tmp);
    }
    free(in);
    free(idx);
    return out;
}

/* The plugins' second phase (crawl_plugin.finish) over the results of this batch's run()s. */
static void finish_plugins(struct run *r, struct work_item *items, size_t n)
{
    for (int i = 0; i < r->p->nplugins; i++) {
        const struct crawl_plugin *pl = &r->p->plugins[i];
        if (!pl->finish)
            continue;
        void **results = calloc(n, sizeof(*results));
        int *rcs = calloc(n, sizeof(*rcs));
        struct sb_err *errs = calloc(n, sizeof(*errs));
        size_t *idx = calloc(n, sizeof(*idx));
        size_t m = 0;
        for (size_t k = 0; k < n; k++) {
            struct plugin_result *pr = &items[k].plug[i];
            if (!pr->ran || pr->rc != SB_OK)
                continue;
            if (!results || !rcs || !errs || !idx) {
                pr->rc = sb_fail(&pr->err, SB_ENOMEM, "%s: out of memory", pl->stage);
                continue;
            }
            idx[m] = k;
            results[m] = pr->result;
            m++;
        }
        if (m > 0)
            pl->finish(pl->user, (int)m, results, rcs, errs);
        for (size_t j = 0; j < m; j++) {
            struct plugin_result *pr = &items[idx[j]].plug[i];
            pr->result = results[j];
            pr->rc = rcs[j];
            if (rcs[j])
                pr->err = errs[j];
        }
        free(results);
        free(rcs);
        free(errs);
        free(idx);
    }
}

static int run_work_batch(struct run *r, int64_t *after, bool *any, struct sb_err *err)
{
    struct catalog_work *works = NULL;
    size_t n = 0;
    size_t max = r->p->batch;
    if (r->p->embedder && r->p->embedder->max_batch > 0 &&
        max > (size_t)r->p->embedder->max_batch * 2)
        max = (size_t)r->p->embedder->max_batch * 2;
    int rc = catalog_work_pending(r->cat, r->stages, r->nstages, *after, max, &works, &n, err);
    if (rc)
        return rc;
    *any = n > 0;
    if (!n) {
        catalog_work_free(works, n);
        return SB_OK;
    }
    *after = works[n - 1].photo_id;
    struct work_item *items = calloc(n, sizeof(*items));
    if (!items) {
        catalog_work_free(works, n);
        return sb_fail(err, SB_ENOMEM, "index: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        items[i].w = &works[i];
        for (size_t k = 0; k < r->nkept; k++) {
            if (r->kept[k].buf && memcmp(r->kept[k].hash, works[i].hash, 16) == 0) {
                items[i].buf = r->kept[k].buf;
                items[i].len = r->kept[k].len;
                r->kept[k].buf = NULL;
                break;
            }
        }
    }
    kept_release(r); /* what this batch did not take is read again when its turn comes */
    /* the next files to hash go after the photos: the thread that takes the last photo is
     * not left alone with it while the other waits */
    struct hash_batch *next = &r->next;
    rc = hash_batch_prepare(r, next, err);
    if (rc) {
        free(items);
        catalog_work_free(works, n);
        return rc;
    }
    struct work_batch b = { r->p, &r->bits, catalog_thumb_dir(r->cat), items };
    struct work_and_hash wh = { &b, n, next->items };
    sb_pool_for_each(r->p->pool, n + next->n, work_hash_range, &wh);
    /* an empty one is asked again after this batch is stored (which can touch files) */
    r->next_hashed = next->n > 0;
    if (!r->next_hashed)
        hash_batch_free(next);
    float *vecs = embed_batch(r, items, n);
    finish_plugins(r, items, n);
    rc = catalog_begin(r->cat, err);
    for (size_t i = 0; i < n && !rc; i++) {
        struct work_item *it = &items[i];
        const float *v = NULL;
        if (vecs && it->pixels && it->embed_rc == SB_OK)
            v = vecs + i * (size_t)r->p->embedder->dim;
        rc = store_work(r, it, v, err);
        if (!rc && !it->changed)
            r->st->processed++;
    }
    if (!rc)
        rc = catalog_commit(r->cat, err);
    else
        catalog_rollback(r->cat);
    for (size_t i = 0; i < n; i++) {
        free(items[i].buf); /* kept bytes work_one had no use for */
        free(items[i].pixels);
        free_plugin_results(r->p, &items[i]);
    }
    free(vecs);
    free(items);
    catalog_work_free(works, n);
    r->done_work += (int64_t)n;
    return rc;
}

int crawl_index(struct catalog *cat, const struct crawl_params *p, struct crawl_stats *stats,
                struct sb_err *err)
{
    struct crawl_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    struct run r = { 0 };
    r.cat = cat;
    r.p = p;
    r.st = stats;
    r.stages[r.nstages++] = STAGE_PROBE;
    r.stages[r.nstages++] = STAGE_THUMB;
    r.bits.embed = -1;
    int rc = SB_OK;
    if (p->nplugins < 0 || p->nplugins > CRAWL_MAX_PLUGINS)
        return sb_fail(err, SB_EINVAL, "index: %d extra stages (at most %d)", p->nplugins,
                       CRAWL_MAX_PLUGINS);
    rc = catalog_begin(cat, err);
    if (!rc && p->embedder) {
        snprintf(r.embed_stage, sizeof(r.embed_stage), "embed:%s", p->embedder->model_name);
        r.bits.embed = r.nstages;
        r.stages[r.nstages++] = r.embed_stage;
        rc = catalog_model_ensure(cat, p->embedder->model_name, p->embedder->dim, &r.model_id, err);
        if (!rc)
            rc = catalog_jobs_ensure(cat, r.embed_stage, err);
    }
    for (int i = 0; !rc && i < p->nplugins; i++) {
        r.bits.plugin[i] = r.nstages;
        r.stages[r.nstages++] = p->plugins[i].stage;
        rc = catalog_jobs_ensure(cat, p->plugins[i].stage, err);
    }
    if (!rc)
        rc = catalog_commit(cat, err);
    else
        catalog_rollback(cat);
    if (rc)
        return rc;
    if (p->retry_failed) {
        rc = catalog_begin(cat, err);
        if (!rc)
            rc = catalog_jobs_retry(cat, NULL, err);
        if (!rc)
            rc = catalog_commit(cat, err);
        else
            catalog_rollback(cat);
        if (rc)
            return rc;
    }
    for (int i = 0; i < p->nroots && !rc && !stats->stopped; i++)
        rc = crawl_scan_root(cat, p->roots[i], p, stats, err);
    if (rc)
        return rc;
    /* Hash a batch, then do the new photos' work while their bytes are in the page cache. */
    struct catalog_status cs;
    if (catalog_status(cat, &cs, NULL) == SB_OK) {
        for (int i = 0; i < cs.nstages; i++) {
            if (strcmp(cs.stages[i].name, "hash") == 0)
                r.total_hash += cs.stages[i].pending; /* each file: a new photo or not */
            else if (cs.stages[i].pending > r.total_work)
                r.total_work = cs.stages[i].pending;
        }
    }
    /* Hash a batch, then do the pending photos' work (the new ones' bytes are still in the
     * page cache). Every processed photo leaves the pending set (done or failed), so asking
     * again from the start always makes progress. */
    for (;;) {
        if (sb_progress_stop(p->progress)) {
            stats->stopped = true;
            break;
        }
        bool hashed = false, worked = false;
        rc = run_hash_batch(&r, &hashed, err);
        if (!rc) {
            int64_t after = 0;
            rc = run_work_batch(&r, &after, &worked, err);
        }
        if (rc || (!hashed && !worked))
            break;
        /* Items: every pending file (done when it is a processed new photo, a copy of a known
         * one, unreadable or not an image) and every photo that had work pending before. */
        int64_t done =
            r.done_work + (stats->hashed - stats->new_photos) + r.hash_failed + stats->ignored;
        int64_t total = r.total_hash + r.total_work;
        sb_progress_update(p->progress, "index", done, total > done ? total : done);
    }
    kept_release(&r);
    hash_batch_free(&r.next); /* hashed but not stored: done again next time */
    for (size_t i = 0; i < r.nchanged; i++)
        free(r.changed[i]);
    free(r.changed);
    if (!rc && stats->stopped)
        rc = sb_fail(err, SB_ECANCELED, "index: stopped");
    return rc;
}
