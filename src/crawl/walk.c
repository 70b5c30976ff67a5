/* walk.c - the scan: walk a root, compare with the catalog by stat(2), record changes.
 *
 * The catalog's files under the root are loaded into a hash table first, so an unchanged file
 * costs one stat and one lookup, and no write. Files not seen by a complete walk are marked
 * missing; an interrupted walk marks nothing missing. Directory symlinks are followed, with
 * each directory's (dev, inode) remembered so that loops are walked once. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <xxhash.h>

/* ---- a path -> known file table (open addressing) ---------------------------------------- */

struct known {
    char *path; /* NULL: empty slot */
    int64_t id;
    struct catalog_stat st;
    int status;
    bool seen;
};

struct known_table {
    struct known *slots;
    size_t cap, count;
};

static size_t known_find(const struct known_table *t, const char *path)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)XXH3_64bits(path, strlen(path)) & mask;
    while (t->slots[i].path && strcmp(t->slots[i].path, path) != 0)
        i = (i + 1) & mask;
    return i;
}

static int known_grow(struct known_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    struct known *old = t->slots;
    size_t oldcap = t->cap;
    t->slots = calloc(cap, sizeof(*t->slots));
    if (!t->slots) {
        t->slots = old;
        return SB_ENOMEM;
    }
    t->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].path)
            t->slots[known_find(t, old[i].path)] = old[i];
    }
    free(old);
    return SB_OK;
}

static int known_add(void *user, const struct catalog_file *f)
{
    struct known_table *t = user;
    if ((t->count + 1) * 2 > t->cap && known_grow(t))
        return SB_ENOMEM;
    size_t i = known_find(t, f->path);
    if (t->slots[i].path)
        return SB_OK;
    char *p = sb_strdup(f->path);
    if (!p)
        return SB_ENOMEM;
    t->slots[i] = (struct known){ p, f->id, f->st, f->status, false };
    t->count++;
    return SB_OK;
}

static void known_release(struct known_table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].path);
    free(t->slots);
}

/* ---- clutter ------------------------------------------------------------------------------ */

bool crawl_is_clutter(const char *name, bool is_dir)
{
    static const char *const dirs[] = { "@eaDir",       "#recycle",
                                        "$RECYCLE.BIN", "System Volume Information",
                                        "lost+found",   NULL };
    static const char *const files[] = { "Thumbs.db", "desktop.ini", "Icon\r", NULL };
    if (name[0] == '.')
        return true; /* .git .thumbnails .DS_Store .Trash, and AppleDouble "._x" files */
    for (const char *const *d = is_dir ? dirs : files; *d; d++) {
        if (strcasecmp(name, *d) == 0)
            return true;
    }
    return false;
}

bool crawl_has_image_ext(const char *name)
{
    static const char *const exts[] = { "jpg", "jpeg", "jpe", "jfif", "png", "webp", "heic", "heif",
                                        "hif", "avif", "tif", "tiff", "gif", "cr2",  "cr3",  "crw",
                                        "nef", "nrw",  "arw", "srf",  "sr2", "dng",  "orf",  "rw2",
                                        "raf", "pef",  "srw", "x3f",  "3fr", "erf",  "kdc",  "mrw",
                                        "iiq", "rwl",  "bmp", NULL };
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    for (const char *const *e = exts; *e; e++) {
        if (strcasecmp(dot + 1, *e) == 0)
            return true;
    }
    return false;
}

/* ---- the walk ------------------------------------------------------------------------------ */

struct dir_id {
    dev_t dev;
    ino_t ino;
};

struct walk {
    struct catalog *cat;
    const struct crawl_params *p;
    struct crawl_stats *stats;
    struct known_table known;
    struct dir_id *visited; /* directories on the walk so far (loop guard) */
    size_t nvisited, capvisited;
    const char *skip_dir; /* the catalog's thumbnail cache, never indexed */
    size_t pending_writes;
    int depth;
};

static int64_t ts_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static struct catalog_stat to_stat(const struct stat *s)
{
    return (struct catalog_stat){ (int64_t)s->st_size, ts_ns(s->st_mtim), ts_ns(s->st_ctim),
                                  (int64_t)s->st_ino, (int64_t)s->st_dev };
}

static bool stat_equal(const struct catalog_stat *a, const struct catalog_stat *b)
{
    return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
           a->inode == b->inode && a->dev == b->dev;
}

/* Commits every so often so that a kill loses little of a long first walk. */
static int maybe_commit(struct walk *w, struct sb_err *err)
{
    if (++w->pending_writes < 2000)
        return SB_OK;
    w->pending_writes = 0;
    int rc = catalog_commit(w->cat, err);
    if (!rc)
        rc = catalog_begin(w->cat, err);
    return rc;
}

/* An XMP sidecar ("IMG_1.xmp", darktable's "IMG_1.CR2.xmp") that is new, changed or gone
 * makes the "xmp" stage of the photos it belongs to pending again, so that edits made in
 * another program are read on the next index (the stage itself runs once per photo). */
static int sidecar_changed(struct walk *w, const char *path, struct sb_err *err)
{
    size_t n = strlen(path);
    if (n < 5 || strcasecmp(path + n - 4, ".xmp") != 0)
        return SB_OK;
    char *stem = sb_strdup(path);
    if (!stem)
        return sb_fail(err, SB_ENOMEM, "walk: out of memory");
    stem[n - 4] = '\0';
    int rc = catalog_jobs_reset_stem(w->cat, "xmp", stem, NULL, err);
    free(stem);
    return rc;
}

static int visit_file(struct walk *w, const char *path, const struct stat *s, struct sb_err *err)
{
    w->stats->seen++;
    struct catalog_stat cs = to_stat(s);
    struct known *k = NULL;
    if (w->known.cap) {
        size_t i = known_find(&w->known, path);
        k = w->known.slots[i].path ? &w->known.slots[i] : NULL;
    }
    if (k) {
        k->seen = true;
        if (k->status != CATALOG_FILE_MISSING && stat_equal(&k->st, &cs)) {
            w->stats->unchanged++;
            return SB_OK;
        }
    }
    int rc = catalog_file_touch(w->cat, path, &cs, err);
    if (!rc)
        rc = sidecar_changed(w, path, err);
    if (rc)
        return rc;
    w->stats->touched++;
    return maybe_commit(w, err);
}

/* The walk keeps the current path in a growable buffer (paths may exceed PATH_MAX) and opens
 * each folder relative to its parent's descriptor, so depth and length are limited only by
 * the number of open descriptors (one per level, capped at MAX_DEPTH). */
enum { MAX_DEPTH = 200 };

struct path_buf {
    char *s;
    size_t len, cap;
};

static int path_push(struct path_buf *p, const char *name, size_t *old_len)
{
    size_t n = strlen(name);
    size_t need = p->len + 1 + n + 1;
    if (need > p->cap) {
        size_t cap = p->cap * 2 > need ? p->cap * 2 : need;
        char *s = realloc(p->s, cap);
        if (!s)
            return SB_ENOMEM;
        p->s = s;
        p->cap = cap;
    }
    *old_len = p->len;
    if (p->len == 0 || p->s[p->len - 1] != '/')
        p->s[p->len++] = '/';
    memcpy(p->s + p->len, name, n + 1);
    p->len += n;
    return SB_OK;
}

static void path_pop(struct path_buf *p, size_t old_len)
{
    p->len = old_len;
    p->s[old_len] = '\0';
}

static int walk_dir(struct walk *w, int dfd, struct path_buf *path, struct sb_err *err);

/* Visits entry name of the folder open as dfd; path already ends with name. */
static int visit(struct walk *w, int dfd, const char *name, struct path_buf *path,
                 struct sb_err *err)
{
    struct stat s;
    if (fstatat(dfd, name, &s, 0) != 0) {
        /* a dangling symlink, or a file that vanished between readdir and stat */
        SB_LOG_D("skip '%s': %s", path->s, strerror(errno));
        return SB_OK;
    }
    if (S_ISREG(s.st_mode))
        return visit_file(w, path->s, &s, err);
    if (!S_ISDIR(s.st_mode))
        return SB_OK; /* fifos, sockets, devices */
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        SB_LOG_W("cannot read folder '%s': %s", path->s, strerror(errno));
        return SB_OK;
    }
    return walk_dir(w, fd, path, err); /* takes fd */
}

static int walk_dir(struct walk *w, int dfd, struct path_buf *path, struct sb_err *err)
{
    struct stat ds;
    if (fstat(dfd, &ds) != 0 || (w->skip_dir && strcmp(path->s, w->skip_dir) == 0) ||
        w->depth >= MAX_DEPTH) {
        close(dfd);
        return SB_OK;
    }
    for (size_t i = 0; i < w->nvisited; i++) {
        if (w->visited[i].dev == ds.st_dev && w->visited[i].ino == ds.st_ino) {
            SB_LOG_D("skip '%s': folder already walked (symlink loop)", path->s);
            close(dfd);
            return SB_OK;
        }
    }
    if (w->nvisited == w->capvisited) {
        size_t nc = w->capvisited ? w->capvisited * 2 : 64;
        struct dir_id *v = realloc(w->visited, nc * sizeof(*v));
        if (!v) {
            close(dfd);
            return sb_fail(err, SB_ENOMEM, "walk: out of memory");
        }
        w->visited = v;
        w->capvisited = nc;
    }
    w->visited[w->nvisited++] = (struct dir_id){ ds.st_dev, ds.st_ino };
    DIR *d = fdopendir(dfd);
    if (!d) {
        SB_LOG_W("cannot read folder '%s': %s", path->s, strerror(errno));
        close(dfd);
        return SB_OK;
    }
    int rc = SB_OK;
    w->depth++;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (crawl_is_clutter(name, e->d_type == DT_DIR))
            continue;
        if (sb_progress_stop(w->p->progress)) {
            w->stats->stopped = true;
            break;
        }
        size_t old = 0;
        if (path_push(path, name, &old)) {
            rc = sb_fail(err, SB_ENOMEM, "walk: out of memory");
            break;
        }
        rc = visit(w, dirfd(d), name, path, err);
        path_pop(path, old);
        if (rc || w->stats->stopped)
            break;
        if ((w->stats->seen & 1023) == 0)
            sb_progress_update(w->p->progress, "scan", w->stats->seen, 0);
    }
    w->depth--;
    closedir(d);
    return rc;
}

int crawl_scan_root(struct catalog *cat, const char *root, const struct crawl_params *p,
                    struct crawl_stats *stats, struct sb_err *err)
{
    struct walk w = { 0 };
    w.cat = cat;
    w.p = p;
    w.stats = stats;
    w.skip_dir = catalog_thumb_dir(cat);
    int rc = SB_OK;
    struct path_buf path = { NULL, 0, 0 };
    char *real = realpath(root, NULL);
    if (!real) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "index '%s': %s", root, strerror(e));
        goto out;
    }
    struct stat rs;
    if (stat(real, &rs) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "index '%s': %s", root, strerror(e));
        goto out;
    }
    rc = catalog_files_under(cat, real, known_add, &w.known, err);
    if (rc == SB_ENOMEM)
        rc = sb_fail(err, SB_ENOMEM, "walk: out of memory");
    if (rc)
        goto out;
    path.s = sb_strdup(real);
    if (!path.s) {
        rc = sb_fail(err, SB_ENOMEM, "walk: out of memory");
        goto out;
    }
    path.len = path.cap = strlen(real);
    path.cap++;
    rc = catalog_begin(cat, err);
    if (rc)
        goto out;
    if (S_ISDIR(rs.st_mode)) {
        int fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            rc = sb_fail(err, sb_code_from_errno(e), "index '%s': %s", root, strerror(e));
        } else {
            rc = walk_dir(&w, fd, &path, err);
        }
    } else if (S_ISREG(rs.st_mode)) {
        /* a single file named on the command line */
        rc = visit_file(&w, path.s, &rs, err);
        if (!rc) {
            /* a single file is its own complete walk: nothing else is under it */
            for (size_t i = 0; i < w.known.cap; i++)
                w.known.slots[i].seen = true;
        }
    }
    if (!rc && !stats->stopped && S_ISDIR(rs.st_mode)) {
        for (size_t i = 0; i < w.known.cap && !rc; i++) {
            struct known *k = &w.known.slots[i];
            if (!k->path || k->seen || k->status == CATALOG_FILE_MISSING)
                continue;
            rc = catalog_file_set_missing(cat, k->id, err);
            if (!rc)
                rc = sidecar_changed(&w, k->path, err);
            stats->missing++;
        }
    }
    if (rc) {
        catalog_rollback(cat);
        goto out;
    }
    rc = catalog_commit(cat, err);
out:
    known_release(&w.known);
    free(w.visited);
    free(real);
    free(path.s);
    return rc;
}
