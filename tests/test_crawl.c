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
    struct crawl_params p = crawl_default_params();
    const char *roots[] = { lib };
    p.roots = roots;
    p.nroots = 1;
    p.pool = pool;
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
    roots[0] = to;
    CHECK_EQ_INT(SB_ENOENT, crawl_index(cat, &p, &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &cs, &err));
    CHECK_EQ_INT(0, cs.missing);
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
    struct crawl_params p = crawl_default_params();
    const char *roots[] = { lib };
    p.roots = roots;
    p.nroots = 1;
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

int main(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_crawl.%d", tmp ? tmp : "/tmp", (int)getpid());
    sb_mkdirs(tmpdir, NULL);
    test_clutter();
    test_takeout();
    test_hash_and_paths();
    test_index_resume();
    test_plugin();
    return check_exit();
}
