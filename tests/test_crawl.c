/* test_crawl.c - crawler helpers: clutter rules, Takeout sidecars, hashing, thumbnail paths,
 * and a small crawl_index() run through the library API (resume after a stop). */
#include "check.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include "../src/crawl/internal.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[512];

static void write_text(const char *name, const char *text)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void copy_file(const char *from, const char *to)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (sb_read_file(from, 1 << 26, &buf, &len, NULL) == SB_OK)
        sb_write_file_atomic(to, buf, len, NULL);
    free(buf);
}

static void test_clutter(void)
{
    static const struct {
        const char *name;
        bool dir, clutter;
    } cases[] = {
        { ".git", true, true },           { "@eaDir", true, true },
        { ".thumbnails", true, true },    { "#recycle", true, true },
        { "2019", true, false },          { "Thumbs.db", false, true },
        { ".DS_Store", false, true },     { "._IMG_0001.JPG", false, true },
        { "IMG_0001.JPG", false, false }, { "desktop.ini", false, true },
        { "@eaDir", false, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (crawl_is_clutter(cases[i].name, cases[i].dir) != cases[i].clutter) {
            fprintf(stderr, "clutter('%s', dir=%d) should be %d\n", cases[i].name, cases[i].dir,
                    cases[i].clutter);
            CHECK(0);
        }
    }
    CHECK(crawl_has_image_ext("a.JPG") && crawl_has_image_ext("b.heic") &&
          crawl_has_image_ext("c.CR2") && crawl_has_image_ext("x.y.dng"));
    CHECK(!crawl_has_image_ext("a.txt") && !crawl_has_image_ext("jpg") &&
          !crawl_has_image_ext("movie.mp4"));
}

static void test_takeout(void)
{
    int64_t t = 0;
    char p[1024];
    /* IMG_1.jpg.json */
    write_text("IMG_1.jpg.json", "{\"title\":\"IMG_1.jpg\",\"photoTakenTime\":{\"timestamp\":"
                                 "\"1466330110\",\"formatted\":\"19 Jun 2016\"}}");
    snprintf(p, sizeof(p), "%s/IMG_1.jpg", tmpdir);
    CHECK(crawl_takeout_time(p, &t));
    CHECK_EQ_INT(1466330110, t);
    /* newer exports: .supplemental-metadata.json */
    write_text("IMG_2.jpg.supplemental-metadata.json",
               "{\"photoTakenTime\":{\"timestamp\":\"1500000000\"}}");
    snprintf(p, sizeof(p), "%s/IMG_2.jpg", tmpdir);
    CHECK(crawl_takeout_time(p, &t));
    CHECK_EQ_INT(1500000000, t);
    /* "IMG_3(1).jpg" -> "IMG_3.jpg(1).json" */
    write_text("IMG_3.jpg(1).json", "{\"photoTakenTime\":{\"timestamp\":\"1600000000\"}}");
    snprintf(p, sizeof(p), "%s/IMG_3(1).jpg", tmpdir);
    CHECK(crawl_takeout_time(p, &t));
    CHECK_EQ_INT(1600000000, t);
    /* a long name: the JSON name is cut to 51 bytes */
    const char *longname = "Screenshot_20190101-120000_Some_Very_Long_App_Name_Here.png";
    char cut[64];
    snprintf(cut, sizeof(cut), "%.46s.json", longname);
    write_text(cut, "{\"photoTakenTime\":{\"timestamp\":\"1546344000\"}}");
    snprintf(p, sizeof(p), "%s/%s", tmpdir, longname);
    CHECK(crawl_takeout_time(p, &t));
    CHECK_EQ_INT(1546344000, t);
    /* broken or absent sidecars */
    write_text("IMG_4.jpg.json", "{\"photoTakenTime\":{\"timestamp\":\"-5\"}}");
    snprintf(p, sizeof(p), "%s/IMG_4.jpg", tmpdir);
    CHECK(!crawl_takeout_time(p, &t));
    /* a number below one second is no time either (it once truncated to 0, found by
     * fuzz_takeout) */
    write_text("IMG_7.jpg.json", "{\"photoTakenTime\":{\"timestamp\":0.1}}");
    snprintf(p, sizeof(p), "%s/IMG_7.jpg", tmpdir);
    CHECK(!crawl_takeout_time(p, &t));
    write_text("IMG_8.jpg.json", "{\"photoTakenTime\":{\"timestamp\":1466330110.5}}");
    snprintf(p, sizeof(p), "%s/IMG_8.jpg", tmpdir);
    CHECK(crawl_takeout_time(p, &t));
    CHECK_EQ_INT(1466330110, t);
    write_text("IMG_5.jpg.json", "{not json");
    snprintf(p, sizeof(p), "%s/IMG_5.jpg", tmpdir);
    CHECK(!crawl_takeout_time(p, &t));
    snprintf(p, sizeof(p), "%s/IMG_6.jpg", tmpdir);
    CHECK(!crawl_takeout_time(p, &t));
}

static void test_hash_and_paths(void)
{
    unsigned char h[16], h2[16];
    int64_t size = 0;
    char p[1024];
    write_text("hash.bin", "hello");
    snprintf(p, sizeof(p), "%s/hash.bin", tmpdir);
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, crawl_hash_file(p, h, &size, &err));
    CHECK_EQ_INT(5, size);
    /* xxh3-128("hello") = b5e9c1ad071b3e7fc779cfaa5e523818 (xxhsum -H2) */
    static const unsigned char want[16] = { 0xb5, 0xe9, 0xc1, 0xad, 0x07, 0x1b, 0x3e, 0x7f,
                                            0xc7, 0x79, 0xcf, 0xaa, 0x5e, 0x52, 0x38, 0x18 };
    CHECK(memcmp(h, want, 16) == 0);
    write_text("hash.bin", "hellp");
    CHECK_EQ_INT(SB_OK, crawl_hash_file(p, h2, &size, &err));
    CHECK(memcmp(h, h2, 16) != 0);
    snprintf(p, sizeof(p), "%s/nope.bin", tmpdir);
    CHECK_EQ_INT(SB_ENOENT, crawl_hash_file(p, h, &size, &err));
    char buf[256];
    CHECK(crawl_thumb_path("/c/thumbs", want, 256, buf, sizeof(buf)));
    CHECK_EQ_STR("/c/thumbs/b5/b5e9c1ad071b3e7fc779cfaa5e523818-256.jpg", buf);
    CHECK(!crawl_thumb_path("/c/thumbs", want, 256, buf, 20));
}

struct stopper {
    int calls, stop_after;
};

static bool stop_cb(void *user)
{
    struct stopper *s = user;
    return ++s->calls > s->stop_after;
}

/* The crawl's defaults over the one folder *root (which must outlive them), on pool. */
static struct crawl_params params_over(const char *const *root, struct sb_pool *pool)
{
    struct crawl_params p = crawl_default_params();
    p.roots = root;
    p.nroots = 1;
    p.pool = pool;
    return p;
}

static void test_index_resume(void)
{
    const char *data = getenv("SHOEBOX_TESTDATA");
    if (!data) {
        fprintf(stderr, "SHOEBOX_TESTDATA not set\n");
        CHECK(0);
        return;
    }
    char lib[600], from[1024], to[1024], db[700];
    snprintf(lib, sizeof(lib), "%s/lib", tmpdir);
    sb_mkdirs(lib, NULL);
    static const char *const files[] = { "Nikon_D70.jpg", "Landscape_1.jpg", "orient_3.jpg",
                                         "broken/truncated_400bytes.jpg" };
    for (size_t i = 0; i < 4; i++) {
        snprintf(from, sizeof(from), "%s/images/%s", data, files[i]);
        snprintf(to, sizeof(to), "%s/f%zu.jpg", lib, i);
        copy_file(from, to);
    }
    snprintf(to, sizeof(to), "%s/copy.jpg", lib);
    snprintf(from, sizeof(from), "%s/images/Nikon_D70.jpg", data);
    copy_file(from, to);
    snprintf(db, sizeof(db), "%s/db/catalog.db", tmpdir);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct sb_pool *pool = NULL;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, &err));
    const char *root = lib;
    struct crawl_params p = params_over(&root, pool);
    p.batch = 2;
    /* stop early: the run reports it was canceled and keeps what it finished */
    struct stopper s = { 0, 3 };
    struct sb_progress prog = { NULL, stop_cb, &s };
    p.progress = &prog;
    struct crawl_stats st;
    int rc = crawl_index(cat, &p, &st, &err);
    CHECK_EQ_INT(SB_ECANCELED, rc);
    CHECK(st.stopped);
    /* resume to the end */
    p.progress = NULL;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    struct catalog_status cs;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    CHECK_EQ_INT(5, cs.files);
    CHECK_EQ_INT(4, cs.photos);
    CHECK_EQ_INT(1, cs.duplicates);
    CHECK_EQ_INT(1, cs.failed); /* the truncated JPEG */
    for (int i = 0; i < cs.nstages; i++)
        CHECK_EQ_INT(0, cs.stages[i].pending);
    /* again: nothing to do */
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(5, st.unchanged);
    CHECK_EQ_INT(0, st.hashed + st.processed);
    /* a root that does not exist is an error, not an empty library */
    snprintf(to, sizeof(to), "%s/nope", tmpdir);
    root = to; /* p.roots points at it */
    CHECK_EQ_INT(SB_ENOENT, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    CHECK_EQ_INT(0, cs.missing);
    sb_pool_free(pool);
    catalog_close(cat);
}

/* Files that grow after the scan saw them: the hash stage does not keep their bytes for the
 * work stage (more than the scan said), hashes all of them, and the photos are processed as
 * usual. The first "index" progress update (after the first batch) appends to every file, so
 * that the later batches hash grown files. */
struct grower {
    const char *lib;
    int n, updates;
};

static void grow_cb(void *user, const char *stage, int64_t done, int64_t total)
{
    (void)done;
    (void)total;
    struct grower *g = user;
    if (strcmp(stage, "index") != 0 || g->updates++ > 0)
        return;
    for (int i = 0; i < g->n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/g%d.jpg", g->lib, i);
        FILE *f = fopen(path, "ab");
        if (f) {
            fputs("appended after the scan", f);
            fclose(f);
        }
    }
}

static void test_index_grown(void)
{
    const char *data = getenv("SHOEBOX_TESTDATA");
    if (!data)
        return; /* test_index_resume says so */
    char lib[600], from[1024], to[1024], db[700];
    snprintf(lib, sizeof(lib), "%s/grown", tmpdir);
    sb_mkdirs(lib, NULL);
    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        snprintf(from, sizeof(from), "%s/images/orient_%d.jpg", data, i + 1);
        snprintf(to, sizeof(to), "%s/g%d.jpg", lib, i);
        copy_file(from, to);
    }
    snprintf(db, sizeof(db), "%s/grown-db/catalog.db", tmpdir);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct sb_pool *pool = NULL;
    CHECK_EQ_INT(SB_OK, sb_pool_new(1, &pool, &err));
    const char *root = lib;
    struct crawl_params p = params_over(&root, pool);
    p.batch = 2;
    struct grower g = { lib, N, 0 };
    struct sb_progress prog = { grow_cb, NULL, &g };
    p.progress = &prog;
    struct crawl_stats st;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK(g.updates > 1);
    CHECK_EQ_INT(N, st.hashed);
    CHECK_EQ_INT(N, st.processed);
    CHECK_EQ_INT(0, st.failed);
    /* each photo is the content its file had when hashed: before the append for the first
     * batches, after it for the rest (hashed whole, not the scanned length) */
    int grown = 0;
    for (int i = 0; i < N; i++) {
        snprintf(to, sizeof(to), "%s/g%d.jpg", lib, i);
        int64_t id = 0;
        unsigned char have[16], now[16];
        char fmt[32];
        int64_t size;
        CHECK_EQ_INT(SB_OK, catalog_photo_by_path(cat, to, &id, &err));
        CHECK_EQ_INT(SB_OK, catalog_photo_hash(cat, id, have, fmt, sizeof(fmt), &err));
        CHECK_EQ_INT(SB_OK, crawl_hash_file(to, now, &size, &err));
        grown += memcmp(have, now, 16) == 0;
    }
    CHECK(grown >= 2 && grown < N);
    struct catalog_status cs;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    for (int i = 0; i < cs.nstages; i++)
        CHECK_EQ_INT(0, cs.stages[i].pending);
    sb_pool_free(pool);
    catalog_close(cat);
}

/* A file rewritten without pause while it is indexed (a sync client or a tethered camera
 * writing it): with nothing kept from hashing, the work stage reads the file again and finds
 * other bytes than those hashed. The run must end: the file is hashed again once, and when it
 * has changed again its photo's stages fail for this run with an error that says so. (Whether
 * a run sees the file change twice depends on timing: then it must fail that way; otherwise a
 * read matched its hash and the photo is done.) */
struct rewriter {
    const char *path;
    const unsigned char *jpeg;
    size_t len;
    atomic_bool stop;
    atomic_int writes;
    atomic_bool ended; /* the loop stopped (asked to, or a write failed) */
};

static void *rewrite_loop(void *arg)
{
    struct rewriter *w = arg;
    unsigned char *buf = malloc(w->len + 32);
    if (!buf) {
        atomic_store(&w->ended, true);
        return NULL;
    }
    memcpy(buf, w->jpeg, w->len);
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s/busy.part", tmpdir); /* outside the library */
    while (!atomic_load(&w->stop)) { /* a whole new file each time, as fast as it goes */
        int n = snprintf((char *)buf + w->len, 32, "rewrite %d", atomic_load(&w->writes) + 1);
        FILE *f = fopen(tmp, "wb");
        if (!f)
            break;
        fwrite(buf, 1, w->len + (size_t)n, f);
        fclose(f);
        rename(tmp, w->path);
        atomic_fetch_add(&w->writes, 1);
    }
    atomic_store(&w->ended, true);
    free(buf);
    return NULL;
}

/* counts[0]: busy.jpg failed as a file that keeps changing; counts[1]: any other error */
static int count_changing(void *user, const char *path, const char *stages, const char *error)
{
    (void)stages;
    int *counts = user;
    counts[strstr(path, "/busy.jpg") && strstr(error, "keeps changing") ? 0 : 1]++;
    return 0;
}

static void test_index_changing(void)
{
    const char *data = getenv("SHOEBOX_TESTDATA");
    if (!data)
        return; /* test_index_resume says so */
    char lib[600], from[1024], busy[700], db[700];
    snprintf(lib, sizeof(lib), "%s/changing", tmpdir);
    sb_mkdirs(lib, NULL);
    snprintf(from, sizeof(from), "%s/images/orient_1.jpg", data);
    snprintf(busy, sizeof(busy), "%s/busy.jpg", lib);
    unsigned char *jpeg = NULL;
    size_t len = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(from, 1 << 24, &jpeg, &len, NULL));
    if (!jpeg)
        return;
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(busy, jpeg, len, NULL));
    for (int i = 0; i < 3; i++) { /* steady neighbours are indexed as usual */
        char to[700];
        snprintf(from, sizeof(from), "%s/images/orient_%d.jpg", data, i + 2);
        snprintf(to, sizeof(to), "%s/still%d.jpg", lib, i);
        copy_file(from, to);
    }
    snprintf(db, sizeof(db), "%s/changing-db/catalog.db", tmpdir);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    struct sb_pool *pool = NULL;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, &err));
    if (!cat || !pool)
        return;
    const char *root = lib;
    struct crawl_params p = params_over(&root, pool);
    p.batch = 1;
    p.keep_bytes = 0; /* the work stage reads every file again */
    struct rewriter w = { busy, jpeg, len, false, 0, false };
    pthread_t th;
    CHECK_EQ_INT(0, pthread_create(&th, NULL, rewrite_loop, &w));
    /* rewriting before the crawl starts, however busy the box */
    while (atomic_load(&w.writes) < 2 && !atomic_load(&w.ended))
        sched_yield();
    struct crawl_stats st;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err)); /* returns: the point of the test */
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    CHECK(atomic_load(&w.writes) > 1);
    struct catalog_status cs;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    for (int i = 0; i < cs.nstages; i++)
        CHECK_EQ_INT(0, cs.stages[i].pending);
    /* the still files are done; busy.jpg is done only if a read happened to match its hash */
    int counts[2] = { 0, 0 };
    CHECK_EQ_INT(SB_OK, catalog_errors(cat, count_changing, counts, &err));
    CHECK(counts[0] <= 1);
    CHECK_EQ_INT(0, counts[1]); /* no other error, whatever the timing */
    CHECK(counts[0] == 0 || st.failed >= 1);
    for (int i = 0; i < 3; i++) {
        char to[700];
        int64_t id = 0;
        snprintf(to, sizeof(to), "%s/still%d.jpg", lib, i);
        CHECK_EQ_INT(SB_OK, catalog_photo_by_path(cat, to, &id, &err));
        CHECK(id > 0);
    }
    free(jpeg);
    sb_pool_free(pool);
    catalog_close(cat);
}

/* A plugin that records each photo's decoded width in the settings table; it fails on
 * photos narrower than 90 px, to check the failure path. */
struct width_plugin {
    int runs, stores;
    int finished; /* results finish() saw */
};

static int wp_run(void *user, int worker, const struct image *rgb, const char *path, void **result,
                  struct sb_err *err)
{
    (void)user;
    (void)worker;
    (void)path;
    if (!rgb)
        return sb_fail(err, SB_EINTERNAL, "no pixels");
    if (rgb->w < 90)
        return sb_fail(err, SB_EINVAL, "too narrow: %d", rgb->w);
    int *w = malloc(sizeof(int));
    if (!w)
        return SB_ENOMEM;
    *w = rgb->w;
    *result = w;
    return SB_OK;
}

static int wp_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                    const float *embedding, int dim, struct sb_err *err)
{
    struct width_plugin *wp = user;
    (void)embedding;
    (void)dim;
    wp->stores++;
    char key[32], val[32];
    snprintf(key, sizeof(key), "w:%lld", (long long)photo_id);
    snprintf(val, sizeof(val), "%d", *(int *)result);
    return catalog_setting_set(cat, key, val, err);
}

static void wp_free(void *user, void *result)
{
    struct width_plugin *wp = user;
    wp->runs++;
    free(result);
}

/* A second phase: doubles each width, fails the photo of width 100. */
static void wp_finish(void *user, int n, void **results, int *rcs, struct sb_err *errs)
{
    struct width_plugin *wp = user;
    for (int i = 0; i < n; i++) {
        wp->finished++;
        int *w = results[i];
        if (*w == 100)
            rcs[i] = sb_fail(&errs[i], SB_EINVAL, "finish refused %d", *w);
        else
            *w *= 2;
    }
}

static int count_refused(void *user, const char *path, const char *stages, const char *error)
{
    if (strstr(path, "/f0.jpg") && strcmp(stages, "width2") == 0 &&
        strcmp(error, "finish refused 100") == 0)
        (*(int *)user)++;
    return 0;
}

static int count_narrow(void *user, const char *path, const char *stages, const char *error)
{
    if (strstr(path, "/f2.jpg") && strcmp(stages, "width") == 0 &&
        strcmp(error, "too narrow: 48") == 0)
        (*(int *)user)++;
    return 0;
}

static void test_plugin(void)
{
    char db[700], lib[600];
    snprintf(db, sizeof(db), "%s/db/catalog.db", tmpdir);
    snprintf(lib, sizeof(lib), "%s/lib", tmpdir);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct width_plugin wp = { 0, 0, 0 };
    struct crawl_plugin pl = { "width", true, 100, 0, &wp, wp_run, wp_store, wp_free, NULL };
    const char *root = lib;
    struct crawl_params p = params_over(&root, NULL);
    p.plugins = &pl;
    p.nplugins = 1;
    struct crawl_stats st;
    /* the library is already indexed: only the new stage runs, for every photo */
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(0, st.hashed);
    /* 4 photos: a 48 px one fails in run(), the truncated JPEG fails to decode */
    CHECK_EQ_INT(2, wp.stores);
    struct catalog_status cs;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    bool found = false;
    for (int i = 0; i < cs.nstages; i++) {
        if (strcmp(cs.stages[i].name, "width") == 0) {
            found = true;
            CHECK_EQ_INT(2, cs.stages[i].done);
            CHECK_EQ_INT(2, cs.stages[i].failed);
            CHECK_EQ_INT(0, cs.stages[i].pending);
        }
    }
    CHECK(found);
    char val[32];
    int64_t pid = 0;
    char path[700];
    snprintf(path, sizeof(path), "%s/f0.jpg", lib); /* Nikon D70 sample: 100 x 66 */
    CHECK_EQ_INT(SB_OK, catalog_photo_by_path(cat, path, &pid, &err));
    char key[32];
    snprintf(key, sizeof(key), "w:%lld", (long long)pid);
    CHECK_EQ_INT(SB_OK, catalog_setting_get(cat, key, val, sizeof(val), &err));
    CHECK_EQ_STR("100", val);
    /* the plugin's own error is the job's error */
    int narrow = 0;
    CHECK_EQ_INT(SB_OK, catalog_errors(cat, count_narrow, &narrow, &err));
    CHECK_EQ_INT(1, narrow);
    /* done stays done */
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(2, wp.stores);
    /* a plugin with a second phase: finish() sees the two results run() made, fails one
     * (its error is the job's), and the other's changed result is what is stored */
    struct width_plugin wp2 = { 0, 0, 0 };
    struct crawl_plugin pl2 = {
        "width2", true, 100, 0, &wp2, wp_run, wp_store, wp_free, wp_finish
    };
    p.plugins = &pl2;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(2, wp2.finished);
    CHECK_EQ_INT(1, wp2.stores);
    CHECK_EQ_INT(2, wp2.runs); /* both results freed, the one finish() failed too */
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    for (int i = 0; i < cs.nstages; i++) {
        if (strcmp(cs.stages[i].name, "width2") == 0) {
            CHECK_EQ_INT(1, cs.stages[i].done);
            CHECK_EQ_INT(3, cs.stages[i].failed);
            CHECK_EQ_INT(0, cs.stages[i].pending);
        }
    }
    int refused = 0;
    CHECK_EQ_INT(SB_OK, catalog_errors(cat, count_refused, &refused, &err));
    CHECK_EQ_INT(1, refused);
    catalog_close(cat);
}

/* An embedder that records what preprocess is given: with input_size, a JPEG's pixels come
 * from its planes at exactly the size input_size asked for (shortest edge 15, below min_short
 * so that no decode has it); without it, or for a PNG, the RGB decode (short edge >= 16). */
struct rec_embedder {
    atomic_int sized, at_size, other, calls_with_size;
};

static int rec_size(void *user, int w, int h, int *ow, int *oh, enum image_filter *f)
{
    struct rec_embedder *r = user;
    r->calls_with_size++;
    int s = w < h ? w : h;
    *ow = (int)((double)15 * w / s);
    *oh = (int)((double)15 * h / s);
    *f = IMAGE_FILTER_BICUBIC;
    return 1;
}

static int rec_pre(void *user, const struct image *rgb, float *out, struct sb_err *err)
{
    struct rec_embedder *r = user;
    (void)err;
    if ((rgb->w < rgb->h ? rgb->w : rgb->h) == 15)
        r->at_size++;
    else
        r->other++;
    out[0] = (float)rgb->w;
    out[1] = (float)rgb->h;
    return SB_OK;
}

static int rec_embed(void *user, const float *in, int n, float *out, struct sb_err *err)
{
    (void)user;
    (void)err;
    for (int i = 0; i < n; i++) {
        float a = in[2 * i], b = in[2 * i + 1], norm = sqrtf(a * a + b * b);
        out[2 * i] = a / norm;
        out[2 * i + 1] = b / norm;
    }
    return SB_OK;
}

static void test_embed_planes(void)
{
    const char *data = getenv("SHOEBOX_TESTDATA");
    char db[700], lib[600], from[1024], to[1024];
    snprintf(db, sizeof(db), "%s/db/catalog.db", tmpdir);
    snprintf(lib, sizeof(lib), "%s/lib", tmpdir);
    if (!data)
        return;
    /* a PNG and a CMYK JPEG beside the JPEGs: the RGB path */
    snprintf(from, sizeof(from), "%s/images/orient_upright.png", data);
    snprintf(to, sizeof(to), "%s/p.png", lib);
    copy_file(from, to);
    snprintf(from, sizeof(from), "%s/images/cmyk_adobe.jpg", data);
    snprintf(to, sizeof(to), "%s/cmyk.jpg", lib);
    copy_file(from, to);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct rec_embedder r = { 0 };
    struct crawl_embedder e = { "rec-a", 2, 16, 2, 4, &r, rec_pre, rec_size, rec_embed };
    const char *root = lib;
    struct crawl_params p = params_over(&root, NULL);
    p.embedder = &e;
    struct crawl_stats st;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    /* 6 photos: Nikon, Landscape, orient_3 from their planes; the truncated JPEG (its
     * header does not parse) fails on the RGB path; the PNG and the CMYK JPEG decoded to RGB */
    fprintf(stderr, "  embed: %d at the model's size, %d other, %d size calls, %lld embedded\n",
            (int)r.at_size, (int)r.other, (int)r.calls_with_size, (long long)st.embedded);
    CHECK_EQ_INT(3, r.at_size);
    CHECK_EQ_INT(2, r.other);
    CHECK_EQ_INT(3, r.calls_with_size); /* asked only for those */
    CHECK_EQ_INT(5, st.embedded);
    /* without input_size, everything is decoded to RGB */
    struct rec_embedder r2 = { 0 };
    struct crawl_embedder e2 = { "rec-b", 2, 16, 2, 4, &r2, rec_pre, NULL, rec_embed };
    p.embedder = &e2;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(0, r2.at_size);
    CHECK_EQ_INT(5, r2.other);
    CHECK_EQ_INT(5, st.embedded);
    catalog_close(cat);
}

/* sb_pool_for_each: every item once, as a one-item range, on a valid worker; and items are
 * taken as threads get free: item 0 waits (up to 20 s, never in a working pool) until every
 * other item is done, which a fixed split into per-thread ranges could not do. */
struct each_state {
    int n, workers;
    atomic_int done, calls, bad;
    atomic_int seen[64];
    bool waited_out;
};

static void each_fn(void *arg, size_t begin, size_t end, int worker)
{
    struct each_state *e = arg;
    atomic_fetch_add(&e->calls, 1);
    if (end != begin + 1 || end > (size_t)e->n || worker < 0 || worker > e->workers)
        atomic_fetch_add(&e->bad, 1);
    if (begin == 0) {
        for (int i = 0; i < 20000 && atomic_load(&e->done) < e->n - 1; i++)
            usleep(1000);
        e->waited_out = atomic_load(&e->done) < e->n - 1;
    }
    atomic_fetch_add(&e->seen[begin < 64 ? begin : 63], 1);
    atomic_fetch_add(&e->done, 1);
}

static void test_pool_for_each(void)
{
    struct sb_pool *pool = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, &err));
    if (!pool)
        return;
    static const int sizes[] = { 1, 2, 3, 17, 64 };
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct each_state *e = calloc(1, sizeof(*e));
        if (!e)
            break;
        e->n = sizes[k];
        e->workers = sb_pool_size(pool);
        sb_pool_for_each(pool, (size_t)e->n, each_fn, e);
        CHECK_EQ_INT(e->n, atomic_load(&e->calls));
        CHECK_EQ_INT(0, atomic_load(&e->bad));
        CHECK(!e->waited_out);
        for (int i = 0; i < e->n; i++)
            CHECK_EQ_INT(1, atomic_load(&e->seen[i]));
        free(e);
    }
    sb_pool_for_each(pool, 0, each_fn, NULL); /* nothing to do: fn not called */
    struct each_state one = { .n = 1, .workers = 0 };
    sb_pool_for_each(NULL, 1, each_fn, &one); /* no pool: the caller, worker 0 */
    CHECK_EQ_INT(1, atomic_load(&one.calls));
    CHECK_EQ_INT(0, atomic_load(&one.bad));
    struct each_state *e = calloc(1, sizeof(*e));
    if (e) {
        e->n = 5;                  /* no pool, several items: still one at a time */
        atomic_store(&e->done, 4); /* item 0 comes first here: nobody to wait for */
        sb_pool_for_each(NULL, 5, each_fn, e);
        CHECK_EQ_INT(5, atomic_load(&e->calls));
        CHECK_EQ_INT(0, atomic_load(&e->bad));
        free(e);
    }
    sb_pool_free(pool);
}

/* A photo whose pixel data is cut short (a download that stopped) but whose header and EXIF
 * are intact keeps its metadata: date, camera and size from the probe; its thumbnails fail
 * with the decode's error. A JPEG whose header does not parse fails its probe too, and so does
 * a damaged PNG (only JPEG's decoder reads the orientation with the header). */
struct damaged_errors {
    char cut_stages[64], cut_error[256];
    int short_probe;
};

static int damaged_error(void *user, const char *path, const char *stages, const char *error)
{
    struct damaged_errors *d = user;
    if (strstr(path, "/cut.jpg")) {
        snprintf(d->cut_stages, sizeof(d->cut_stages), "%s", stages);
        snprintf(d->cut_error, sizeof(d->cut_error), "%s", error);
    }
    if ((strstr(path, "/short.jpg") || strstr(path, "/cut.png")) && strstr(stages, "probe"))
        d->short_probe++;
    return 0;
}

static void test_damaged_keeps_meta(void)
{
    const char *data = getenv("SHOEBOX_TESTDATA");
    if (!data) {
        CHECK(0);
        return;
    }
    char lib[600], from[1024], to[1024], db[700];
    snprintf(lib, sizeof(lib), "%s/damaged", tmpdir);
    sb_mkdirs(lib, NULL);
    snprintf(from, sizeof(from), "%s/images/broken/pixel6_ultrahdr_truncated.jpg", data);
    snprintf(to, sizeof(to), "%s/cut.jpg", lib);
    copy_file(from, to);
    snprintf(from, sizeof(from), "%s/images/broken/truncated_400bytes.jpg", data);
    snprintf(to, sizeof(to), "%s/short.jpg", lib);
    copy_file(from, to);
    /* JPEG only: other decoders read the orientation after the pixels */
    snprintf(from, sizeof(from), "%s/images/broken/png_broken_zlib_stream.png", data);
    snprintf(to, sizeof(to), "%s/cut.png", lib);
    copy_file(from, to);
    snprintf(db, sizeof(db), "%s/damaged.db", tmpdir);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    const char *root = lib;
    struct crawl_params p = params_over(&root, NULL);
    struct crawl_stats st;
    CHECK_EQ_INT(SB_OK, crawl_index(cat, &p, &st, &err));
    int64_t id = 0;
    snprintf(to, sizeof(to), "%s/cut.jpg", lib);
    CHECK_EQ_INT(SB_OK, catalog_photo_by_path(cat, to, &id, &err));
    struct catalog_photo ph;
    CHECK_EQ_INT(SB_OK, catalog_photo_get(cat, id, &ph, &err));
    CHECK(ph.model && strcmp(ph.model, "Pixel 6") == 0);
    CHECK(ph.taken_at && strncmp(ph.taken_at, "2024-05-07", 10) == 0);
    CHECK(ph.time_source && strcmp(ph.time_source, "exif") == 0);
    CHECK_EQ_INT(1512, ph.width);
    CHECK_EQ_INT(2688, ph.height);
    CHECK(ph.format && strcmp(ph.format, "jpeg") == 0);
    catalog_photo_release(&ph);
    struct damaged_errors d = { "", "", 0 };
    CHECK_EQ_INT(SB_OK, catalog_errors(cat, damaged_error, &d, &err));
    CHECK_EQ_STR("thumb", d.cut_stages);
    CHECK(strstr(d.cut_error, "truncated JPEG data") != NULL);
    CHECK_EQ_INT(2, d.short_probe);
    struct catalog_status cs;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    CHECK_EQ_INT(3, cs.failed);
    catalog_close(cat);
}

int main(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_crawl.%d", tmp ? tmp : "/tmp", (int)getpid());
    sb_mkdirs(tmpdir, NULL);
    test_clutter();
    test_takeout();
    test_hash_and_paths();
    test_index_resume();
    test_damaged_keeps_meta();
    test_index_grown();
    test_index_changing();
    test_plugin();
    test_embed_planes();
    test_pool_for_each();
    return check_exit();
}
