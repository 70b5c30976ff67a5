/* lrprev_extract.c - rescue the JPEGs of a Lightroom previews folder (.lrdata), named after
 * their originals.
 *
 * A preview file is "<U>/<UUUU>/<uuid>-<digest>.lrprev". previews.db's ImageCacheEntry maps
 * (uuid, digest) to the catalog's Adobe_images.id_local (imageId) and the orientation; the
 * catalog maps the image to its original (rootFile -> AgLibraryFile -> AgLibraryFolder ->
 * AgLibraryRootFolder). In the Lightroom 5 samples the preview uuid also equals the
 * AgLibraryFile.id_global of a master, which is the fallback when previews.db lacks the row.
 * Nothing in the .lrdata or the catalog is ever written. */
#include "lightroom_internal.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/lightroom.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lcms2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define LRPREV_MAX_FILE ((size_t)1 << 30) /* a 1:1 preview of a 100 MP file is ~60 MB */

struct lr_previews_params lr_previews_default_params(void)
{
    struct lr_previews_params p;
    memset(&p, 0, sizeof(p));
    p.convert = true;
    p.quality = 95;
    return p;
}

/* ---- what previews.db and the catalog know ------------------------------------------------ */

struct cache_entry {
    char uuid[64];
    int64_t image_id;
    char orientation[8];
};

struct lr_image {
    int64_t id;
    int64_t master; /* 0 unless a virtual copy */
    bool virtual_copy;
    char orientation[8];
    char file_uuid[64]; /* AgLibraryFile.id_global */
    char *root_name, *root_path, *from_root, *base, *ext;
};

struct lookup {
    struct cache_entry *entries;
    size_t nentries;
    struct lr_image *images;
    size_t nimages;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcasecmp(((const struct cache_entry *)a)->uuid, ((const struct cache_entry *)b)->uuid);
}

static int cmp_image(const void *a, const void *b)
{
    int64_t x = ((const struct lr_image *)a)->id, y = ((const struct lr_image *)b)->id;
    return x < y ? -1 : x > y;
}

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s ? s : "");
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return sb_strdup(s ? s : "");
}

static int load_previews_db(const char *path, struct lookup *lk, struct sb_err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = interop_sqlite_open_ro(path, &db, err);
    if (rc)
        return rc;
    bool has_orient = interop_has_column(db, "ImageCacheEntry", "orientation");
    const char *sql = has_orient ? "SELECT uuid, imageId, orientation FROM ImageCacheEntry"
                                 : "SELECT uuid, imageId, NULL FROM ImageCacheEntry";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sb_fail(err, SB_EFORMAT, "previews.db '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (lk->nentries == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            void *p = realloc(lk->entries, ncap * sizeof(*lk->entries));
            if (!p) {
                rc = sb_fail(err, SB_ENOMEM, "previews.db: out of memory");
                goto out;
            }
            lk->entries = p;
            cap = ncap;
        }
        struct cache_entry *e = &lk->entries[lk->nentries++];
        copy_col(st, 0, e->uuid, sizeof(e->uuid));
        e->image_id = sqlite3_column_int64(st, 1);
        copy_col(st, 2, e->orientation, sizeof(e->orientation));
    }
    if (s != SQLITE_DONE) {
        rc = sb_fail(err, SB_EFORMAT, "previews.db '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (lk->nentries)
        qsort(lk->entries, lk->nentries, sizeof(*lk->entries), cmp_entry);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static int load_catalog(const char *path, struct lookup *lk, struct sb_err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = interop_sqlite_open_ro(path, &db, err);
    if (rc)
        return rc;
    if (!interop_has_column(db, "Adobe_images", "rootFile")) {
        rc = sb_fail(err, SB_EFORMAT, "'%s' is not a Lightroom catalog (no Adobe_images)", path);
        goto out;
    }
    bool has_master = interop_has_column(db, "Adobe_images", "masterImage");
    bool has_copy = interop_has_column(db, "Adobe_images", "copyName");
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT i.id_local, %s, %s, i.orientation, f.id_global, r.name, r.absolutePath,"
             " fo.pathFromRoot, f.baseName, f.extension"
             " FROM Adobe_images i"
             " LEFT JOIN AgLibraryFile f ON f.id_local = i.rootFile"
             " LEFT JOIN AgLibraryFolder fo ON fo.id_local = f.folder"
             " LEFT JOIN AgLibraryRootFolder r ON r.id_local = fo.rootFolder",
             has_master ? "i.masterImage" : "NULL", has_copy ? "i.copyName" : "NULL");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = sb_fail(err, SB_EFORMAT, "catalog '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (lk->nimages == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            void *p = realloc(lk->images, ncap * sizeof(*lk->images));
            if (!p) {
                rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
                goto out;
            }
            lk->images = p;
            cap = ncap;
        }
        struct lr_image *im = &lk->images[lk->nimages];
        memset(im, 0, sizeof(*im));
        im->id = sqlite3_column_int64(st, 0);
        im->master = sqlite3_column_int64(st, 1);
        im->virtual_copy = im->master != 0 || sqlite3_column_type(st, 2) != SQLITE_NULL;
        copy_col(st, 3, im->orientation, sizeof(im->orientation));
        copy_col(st, 4, im->file_uuid, sizeof(im->file_uuid));
        im->root_name = dup_col(st, 5);
        im->root_path = dup_col(st, 6);
        im->from_root = dup_col(st, 7);
        im->base = dup_col(st, 8);
        im->ext = dup_col(st, 9);
        lk->nimages++;
        if (!im->root_name || !im->root_path || !im->from_root || !im->base || !im->ext) {
            rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
            goto out;
        }
    }
    if (s != SQLITE_DONE) {
        rc = sb_fail(err, SB_EFORMAT, "catalog '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (lk->nimages)
        qsort(lk->images, lk->nimages, sizeof(*lk->images), cmp_image);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static void lookup_release(struct lookup *lk)
{
    for (size_t i = 0; i < lk->nimages; i++) {
        free(lk->images[i].root_name);
        free(lk->images[i].root_path);
        free(lk->images[i].from_root);
        free(lk->images[i].base);
        free(lk->images[i].ext);
    }
    free(lk->images);
    free(lk->entries);
}

static const struct cache_entry *find_entry(const struct lookup *lk, const char *uuid)
{
    struct cache_entry key;
    snprintf(key.uuid, sizeof(key.uuid), "%s", uuid);
    if (!lk->nentries)
        return NULL;
    return bsearch(&key, lk->entries, lk->nentries, sizeof(key), cmp_entry);
}

static const struct lr_image *find_image(const struct lookup *lk, int64_t id)
{
    struct lr_image key;
    key.id = id;
    if (!lk->nimages)
        return NULL;
    return bsearch(&key, lk->images, lk->nimages, sizeof(key), cmp_image);
}

/* The fallback of public scripts: the preview uuid is the master's AgLibraryFile.id_global. */
static const struct lr_image *find_image_by_file_uuid(const struct lookup *lk, const char *uuid)
{
    for (size_t i = 0; i < lk->nimages; i++)
        if (!lk->images[i].virtual_copy && strcasecmp(lk->images[i].file_uuid, uuid) == 0)
            return &lk->images[i];
    return NULL;
}

/* ---- finding the .lrprev files ------------------------------------------------------------ */

struct path_list {
    char **v;
    size_t n, cap;
};

static int path_list_add(struct path_list *l, const char *path)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->v, ncap * sizeof(char *));
        if (!p)
            return SB_ENOMEM;
        l->v = p;
        l->cap = ncap;
    }
    l->v[l->n] = sb_strdup(path);
    if (!l->v[l->n])
        return SB_ENOMEM;
    l->n++;
    return SB_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Collects *.lrprev under dir (depth-limited: the layout is two levels deep). */
static int find_lrprev(const char *dir, int depth, struct path_list *out, struct sb_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open folder '%s': %s", dir, strerror(e));
    }
    int rc = SB_OK;
    struct dirent *de;
    char path[PATH_MAX];
    while (!rc && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        struct stat sb;
        if (lstat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode) && depth < 6)
            rc = find_lrprev(path, depth + 1, out, err);
        else if (S_ISREG(sb.st_mode) && ends_with(de->d_name, ".lrprev") &&
                 path_list_add(out, path))
            rc = sb_fail(err, SB_ENOMEM, "list previews: out of memory");
    }
    closedir(d);
    return rc;
}

/* ---- colour and orientation --------------------------------------------------------------- */

/* The ICC profile in a JPEG's APP2 "ICC_PROFILE" markers (chunks joined in order); NULL when
 * there is none or it is broken. The caller frees it. */
static unsigned char *jpeg_icc(const unsigned char *j, size_t len, size_t *icc_len)
{
    static const char tag[12] = "ICC_PROFILE";
    struct sb_buf b;
    sb_buf_init(&b);
    size_t off = 2;
    int want = 1;
    while (off + 4 <= len && j[off] == 0xFF) {
        unsigned m = j[off + 1];
        if (m == 0xDA || m == 0xD9)
            break;
        size_t seg = ((size_t)j[off + 2] << 8) | j[off + 3];
        if (seg < 2 || seg > len - off - 2)
            break;
        const unsigned char *p = j + off + 4;
        size_t n = seg - 2;
        if (m == 0xE2 && n > 14 && memcmp(p, tag, 12) == 0 && p[12] == want) {
            sb_buf_append(&b, (const char *)p + 14, n - 14);
            want++;
        }
        off += 2 + seg;
    }
    if (b.failed || b.len == 0) {
        sb_buf_release(&b);
        return NULL;
    }
    *icc_len = b.len;
    return (unsigned char *)b.data;
}

/* A profile for the colour space Lightroom names in the header; NULL for sRGB or unknown. */
static cmsHPROFILE named_profile(const char *name)
{
    cmsCIExyY d65 = { 0.3127, 0.3290, 1.0 };
    cmsToneCurve *curve = NULL;
    cmsCIExyYTRIPLE prim;
    if (strcasecmp(name, "AdobeRGB") == 0) {
        /* Adobe RGB (1998): D65, gamma 563/256 */
        prim = (cmsCIExyYTRIPLE){ { 0.64, 0.33, 1 }, { 0.21, 0.71, 1 }, { 0.15, 0.06, 1 } };
        curve = cmsBuildGamma(NULL, 563.0 / 256.0);
    } else if (strcasecmp(name, "DisplayP3") == 0) {
        /* Display P3: P3 primaries, D65, the sRGB curve (IEC 61966-2-1 parameters) */
        static const double srgb[5] = { 2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045 };
        prim = (cmsCIExyYTRIPLE){ { 0.680, 0.320, 1 }, { 0.265, 0.690, 1 }, { 0.150, 0.060, 1 } };
        curve = cmsBuildParametricToneCurve(NULL, 4, srgb);
    } else {
        return NULL;
    }
    if (!curve)
        return NULL;
    cmsToneCurve *curves[3] = { curve, curve, curve };
    cmsHPROFILE p = cmsCreateRGBProfile(&d65, &prim, curves);
    cmsFreeToneCurve(curve);
    return p;
}

/* Converts img in place from src to sRGB. */
static int to_srgb(struct image *img, cmsHPROFILE src, struct sb_err *err)
{
    cmsHPROFILE srgb = cmsCreate_sRGBProfile();
    cmsHTRANSFORM t = NULL;
    unsigned char *row = NULL;
    int rc = SB_OK;
    if (srgb && cmsGetColorSpace(src) == cmsSigRgbData)
        t = cmsCreateTransform(src, TYPE_RGB_8, srgb, TYPE_RGB_8, INTENT_PERCEPTUAL, 0);
    row = malloc((size_t)img->w * 3);
    if (!t || !row) {
        rc = sb_fail(err, SB_EFORMAT, "colour conversion to sRGB: unusable profile");
        goto out;
    }
    for (int y = 0; y < img->h; y++) {
        unsigned char *px = img->px + (size_t)y * (size_t)img->w * 3;
        cmsDoTransform(t, px, row, (cmsUInt32Number)img->w);
        memcpy(px, row, (size_t)img->w * 3);
    }
out:
    free(row);
    if (t)
        cmsDeleteTransform(t);
    if (srgb)
        cmsCloseProfile(srgb);
    return rc;
}

/* The JPEG to write: decoded, in sRGB, upright, re-encoded. */
static int convert_jpeg(const struct lrprev_level *lv, const char *color_profile, int orientation,
                        int quality, unsigned char **out, size_t *out_len, int *w, int *h,
                        struct sb_err *err)
{
    struct image *img = NULL, *upright = NULL;
    unsigned char *icc = NULL;
    size_t icc_len = 0;
    cmsHPROFILE src = NULL;
    struct image_decode_params dp = image_decode_default_params();
    int rc = image_decode(lv->jpeg, lv->len, "preview.jpg", &dp, &img, NULL, err);
    if (rc)
        goto out;
    icc = jpeg_icc(lv->jpeg, lv->len, &icc_len);
    if (icc && icc_len <= UINT32_MAX)
        src = cmsOpenProfileFromMem(icc, (cmsUInt32Number)icc_len);
    if (!src)
        src = named_profile(color_profile);
    if (src) {
        rc = to_srgb(img, src, err);
        if (rc)
            goto out;
    }
    if (orientation > 1) {
        upright = image_orient(img, orientation);
        if (!upright) {
            rc = sb_fail(err, SB_ENOMEM, "orient: out of memory");
            goto out;
        }
    }
    const struct image *res = upright ? upright : img;
    rc = image_encode_jpeg(res, quality, out, out_len, err);
    if (!rc) {
        *w = res->w;
        *h = res->h;
    }
out:
    if (src)
        cmsCloseProfile(src);
    free(icc);
    image_free(upright);
    image_free(img);
    return rc;
}

/* The stored JPEG with an ICC profile added after SOI when the header names one and the JPEG
 * has none (so that viewers show the colours right without converting). */
static int tag_jpeg(const struct lrprev_level *lv, const char *color_profile, unsigned char **out,
                    size_t *out_len, struct sb_err *err)
{
    unsigned char *icc = NULL, *mem = NULL, *res = NULL;
    size_t icc_len = 0;
    cmsUInt32Number n = 0;
    cmsHPROFILE prof = NULL;
    int rc = SB_OK;
    icc = jpeg_icc(lv->jpeg, lv->len, &icc_len);
    if (!icc)
        prof = named_profile(color_profile);
    if (prof && cmsSaveProfileToMem(prof, NULL, &n) && n > 0 && n <= 65519 - 14) {
        mem = malloc(n);
        if (mem && !cmsSaveProfileToMem(prof, mem, &n)) {
            free(mem);
            mem = NULL;
        }
    }
    size_t extra = mem ? 4 + 14 + (size_t)n : 0;
    res = malloc(lv->len + extra);
    if (!res) {
        rc = sb_fail(err, SB_ENOMEM, "tag preview: out of memory");
        goto out;
    }
    memcpy(res, lv->jpeg, 2); /* SOI */
    if (mem) {
        size_t seg = 2 + 14 + (size_t)n;
        unsigned char *p = res + 2;
        p[0] = 0xFF;
        p[1] = 0xE2;
        p[2] = (unsigned char)(seg >> 8);
        p[3] = (unsigned char)(seg & 0xFF);
        memcpy(p + 4, "ICC_PROFILE", 12);
        p[16] = 1; /* chunk 1 of 1 */
        p[17] = 1;
        memcpy(p + 18, mem, n);
    }
    memcpy(res + 2 + extra, lv->jpeg + 2, lv->len - 2);
    *out = res;
    *out_len = lv->len + extra;
    res = NULL;
out:
    free(res);
    free(mem);
    free(icc);
    if (prof)
        cmsCloseProfile(prof);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Writes data to "<stem><ext>", or "<stem>-1<ext>", "-2", ... when taken: never overwrites.
 * The chosen path goes into out (cap bytes). */
static int write_new_file(const char *stem, const char *ext, const unsigned char *data, size_t len,
                          char *out, size_t cap, struct sb_err *err)
{
    for (int i = 0; i < 100000; i++) {
        int n =
            i ? snprintf(out, cap, "%s-%d%s", stem, i, ext) : snprintf(out, cap, "%s%s", stem, ext);
        if (n < 0 || (size_t)n >= cap)
            return sb_fail(err, SB_ETOOBIG, "output path too long: '%s'", stem);
        int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0) {
            int e = errno;
            return sb_fail(err, sb_code_from_errno(e), "create '%s': %s", out, strerror(e));
        }
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(fd, data + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int e = w < 0 ? errno : EIO;
                close(fd);
                unlink(out);
                return sb_fail(err, sb_code_from_errno(e), "write '%s': %s", out, strerror(e));
            }
            done += (size_t)w;
        }
        if (close(fd) != 0) {
            int e = errno;
            unlink(out);
            return sb_fail(err, sb_code_from_errno(e), "write '%s': %s", out, strerror(e));
        }
        return SB_OK;
    }
    return sb_fail(err, SB_EIO, "no free name for '%s%s'", stem, ext);
}

/* "<out>/<root name>/<path from root>/<base>[-vc<id>]" with every component made safe. */
static void output_stem(const char *out_dir, const struct lr_image *im, const char *uuid,
                        struct sb_buf *b)
{
    char comp[NAME_MAX + 1];
    sb_buf_puts(b, out_dir);
    if (!im || !im->base[0]) {
        interop_safe_component(uuid, strlen(uuid), comp, sizeof(comp));
        sb_buf_printf(b, "/unknown/%s", comp);
        return;
    }
    interop_safe_component(im->root_name, strlen(im->root_name), comp, sizeof(comp));
    sb_buf_printf(b, "/%s", comp);
    const char *p = im->from_root;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n) {
            interop_safe_component(p, n, comp, sizeof(comp));
            sb_buf_printf(b, "/%s", comp);
        }
        p += n + (slash ? 1 : 0);
    }
    interop_safe_component(im->base, strlen(im->base), comp, sizeof(comp));
    sb_buf_printf(b, "/%s", comp);
    if (im->virtual_copy)
        sb_buf_printf(b, "-vc%lld", (long long)im->id);
}

static void original_path(const struct lr_image *im, struct sb_buf *b)
{
    sb_buf_puts(b, im->root_path);
    if (b->len && b->data[b->len - 1] != '/' && im->from_root[0] != '/')
        sb_buf_puts(b, "/");
    sb_buf_puts(b, im->from_root);
    if (b->len && b->data[b->len - 1] != '/')
        sb_buf_puts(b, "/");
    sb_buf_puts(b, im->base);
    if (im->ext[0])
        sb_buf_printf(b, ".%s", im->ext);
}

/* The uuid of a preview from its file name "<uuid>-<digest>.lrprev". */
static void uuid_from_name(const char *path, char *out, size_t cap)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    size_t n = strlen(name) >= 36 ? 36 : 0;
    snprintf(out, cap, "%.*s", (int)n, name);
}

static int extract_one(const struct lr_previews_params *p, const struct lookup *lk,
                       const char *path, lr_preview_fn fn, void *user, struct lr_previews_stats *st)
{
    unsigned char *buf = NULL, *jpeg = NULL;
    size_t len = 0, jlen = 0;
    struct sb_buf stem, orig;
    sb_buf_init(&stem);
    sb_buf_init(&orig);
    struct sb_err err;
    sb_err_clear(&err);
    struct lrprev pv;
    struct lr_preview_item it;
    memset(&it, 0, sizeof(it));
    it.lrprev = path;
    char out_path[PATH_MAX];
    const struct lr_image *im = NULL;
    int rc = sb_read_file(path, LRPREV_MAX_FILE, &buf, &len, &err);
    if (!rc)
        rc = lrprev_parse(buf, len, &pv, &err);
    if (rc)
        goto done;
    char uuid[64];
    if (pv.uuid[0])
        snprintf(uuid, sizeof(uuid), "%s", pv.uuid);
    else
        uuid_from_name(path, uuid, sizeof(uuid));
    const struct cache_entry *ce = find_entry(lk, uuid);
    const char *orient = NULL;
    if (ce) {
        im = find_image(lk, ce->image_id);
        it.image_id = ce->image_id;
        orient = ce->orientation[0] ? ce->orientation : NULL;
    }
    if (!im && uuid[0])
        im = find_image_by_file_uuid(lk, uuid);
    if (im) {
        it.image_id = im->id;
        it.virtual_copy = im->virtual_copy;
        if (!orient && im->orientation[0])
            orient = im->orientation;
        if (im->base[0]) {
            original_path(im, &orig);
            it.original = orig.data;
        }
    }
    int idx = lrprev_pick(&pv, p->level);
    if (idx < 0)
        idx = lrprev_pick(&pv, 0);
    const struct lrprev_level *lv = &pv.levels[idx];
    if (p->convert) {
        rc = convert_jpeg(lv, pv.color_profile, lr_orientation_to_exif(orient),
                          p->quality > 0 && p->quality <= 100 ? p->quality : 95, &jpeg, &jlen,
                          &it.width, &it.height, &err);
    } else {
        rc = tag_jpeg(lv, pv.color_profile, &jpeg, &jlen, &err);
        it.width = lv->width;
        it.height = lv->height;
    }
    if (rc)
        goto done;
    output_stem(p->out_dir, im, uuid, &stem);
    if (stem.failed || orig.failed) {
        rc = sb_fail(&err, SB_ENOMEM, "out of memory");
        goto done;
    }
    char *slash = strrchr(stem.data, '/');
    *slash = '\0';
    rc = sb_mkdirs(stem.data, &err);
    *slash = '/';
    if (!rc)
        rc = write_new_file(stem.data, ".jpg", jpeg, jlen, out_path, sizeof(out_path), &err);
    if (!rc)
        it.out_path = out_path;
done:
    if (rc) {
        st->failed++;
        it.error = err.msg;
    } else {
        st->written++;
        if (it.original)
            st->named++;
        if (it.virtual_copy)
            st->virtual_copies++;
    }
    int frc = fn ? fn(user, &it) : 0;
    free(jpeg);
    free(buf);
    sb_buf_release(&stem);
    sb_buf_release(&orig);
    return frc;
}

/* "<dir>/<X> Previews.lrdata" -> "<dir>/<X>.lrcat" when that file exists. */
static char *catalog_beside(const char *lrdata)
{
    struct sb_buf b;
    sb_buf_init(&b);
    size_t n = strlen(lrdata);
    while (n > 1 && lrdata[n - 1] == '/')
        n--;
    static const char suffix[] = " Previews.lrdata";
    size_t sl = sizeof(suffix) - 1;
    if (n <= sl || strncmp(lrdata + n - sl, suffix, sl) != 0)
        return NULL;
    sb_buf_append(&b, lrdata, n - sl);
    sb_buf_puts(&b, ".lrcat");
    struct stat sb;
    if (b.failed || stat(b.data, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}

int lr_previews_extract(const struct lr_previews_params *p, lr_preview_fn fn, void *user,
                        struct lr_previews_stats *st, struct sb_err *err)
{
    struct lookup lk;
    memset(&lk, 0, sizeof(lk));
    struct path_list files;
    memset(&files, 0, sizeof(files));
    struct lr_previews_stats s;
    memset(&s, 0, sizeof(s));
    char *cat_path = NULL;
    struct sb_buf dbp;
    sb_buf_init(&dbp);
    int rc = SB_OK;
    struct stat sb;
    if (!p->lrdata || stat(p->lrdata, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = sb_fail(err, SB_ENOENT, "'%s' is not a previews folder (.lrdata)",
                     p->lrdata ? p->lrdata : "");
        goto out;
    }
    if (!p->out_dir || !*p->out_dir) {
        rc = sb_fail(err, SB_EINVAL, "previews: no output folder");
        goto out;
    }
    sb_buf_printf(&dbp, "%s/previews.db", p->lrdata);
    if (!dbp.failed && stat(dbp.data, &sb) == 0) {
        rc = load_previews_db(dbp.data, &lk, err);
        if (rc)
            goto out;
        s.have_previews_db = true;
    }
    cat_path = p->catalog ? sb_strdup(p->catalog) : catalog_beside(p->lrdata);
    if (cat_path) {
        rc = load_catalog(cat_path, &lk, err);
        if (rc)
            goto out;
        s.have_catalog = true;
    }
    rc = find_lrprev(p->lrdata, 0, &files, err);
    if (rc)
        goto out;
    if (files.n)
        qsort(files.v, files.n, sizeof(char *), cmp_str);
    s.found = (int64_t)files.n;
    rc = sb_mkdirs(p->out_dir, err);
    for (size_t i = 0; !rc && i < files.n; i++) {
        if (sb_progress_stop(p->progress)) {
            rc = sb_fail(err, SB_ECANCELED, "previews: stopped");
            break;
        }
        rc = extract_one(p, &lk, files.v[i], fn, user, &s);
        sb_progress_update(p->progress, "previews", (int64_t)i + 1, (int64_t)files.n);
    }
out:
    if (st)
        *st = s;
    for (size_t i = 0; i < files.n; i++)
        free(files.v[i]);
    free(files.v);
    free(cat_path);
    sb_buf_release(&dbp);
    lookup_release(&lk);
    return rc;
}
