/* test_catalog.c - the catalog: schema, files, photos, jobs, status and errors. */
#include "check.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *stages[] = { "probe", "thumb", NULL };

static int count_cb(void *user, const struct catalog_file *f)
{
    (void)f;
    (*(int *)user)++;
    return 0;
}

struct errs {
    int n;
    char last[256];
};

static int err_cb(void *user, const char *path, const char *stage, const char *error)
{
    struct errs *e = user;
    e->n++;
    snprintf(e->last, sizeof(e->last), "%s|%s|%s", path, stage, error);
    return 0;
}

static const struct catalog_stage_count *stage(const struct catalog_status *s, const char *name)
{
    for (int i = 0; i < s->nstages; i++) {
        if (strcmp(s->stages[i].name, name) == 0)
            return &s->stages[i];
    }
    return NULL;
}

int main(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    char path[512];
    snprintf(path, sizeof(path), "%s/test_catalog.%d/sub/catalog.db", tmp ? tmp : "/tmp",
             (int)getpid());
    struct sb_err err;
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(path, false, &cat, &err));
    CHECK(cat != NULL);
    if (!cat)
        return check_exit();

    /* files: touch three, one under another folder */
    struct catalog_stat st = { 100, 1, 1, 10, 1 };
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, "/p/a/1.jpg", &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, "/p/a/2.jpg", &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, "/p/ab/3.jpg", &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, "/p/a/\xff\xfe.jpg", &st, &err)); /* not UTF-8 */
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    int n = 0;
    CHECK_EQ_INT(SB_OK, catalog_files_under(cat, "/p/a", count_cb, &n, &err));
    CHECK_EQ_INT(3, n); /* "/p/ab" is not under "/p/a" */
    n = 0;
    CHECK_EQ_INT(SB_OK, catalog_files_under(cat, "/p/a/", count_cb, &n, &err));
    CHECK_EQ_INT(3, n);
    n = 0;
    CHECK_EQ_INT(SB_OK, catalog_files_under(cat, "/p/a/1.jpg", count_cb, &n, &err));
    CHECK_EQ_INT(1, n); /* a single file */
    n = 0;
    CHECK_EQ_INT(SB_OK, catalog_files_under(cat, "/", count_cb, &n, &err));
    CHECK_EQ_INT(4, n);

    struct catalog_file *files = NULL;
    size_t nf = 0;
    CHECK_EQ_INT(SB_OK, catalog_files_pending(cat, 10, &files, &nf, &err));
    CHECK_EQ_INT(4, nf);

    /* two files with the same content are one photo */
    unsigned char h1[16] = { 1 }, h2[16] = { 2 };
    int64_t p1 = 0, p2 = 0, p3 = 0;
    bool created = false;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, files[0].id, h1, 100, "jpeg", stages, &p1,
                                               &created, &err));
    CHECK(created);
    CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, files[1].id, h1, 100, "jpeg", stages, &p2,
                                               &created, &err));
    CHECK(!created);
    CHECK_EQ_INT(p1, p2);
    CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, files[2].id, h2, 100, "jpeg", stages, &p3,
                                               &created, &err));
    CHECK(created && p3 != p1);
    CHECK_EQ_INT(SB_OK, catalog_file_set_failed(cat, files[3].id, "not an image", &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    catalog_files_free(files, nf);

    struct catalog_status s;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    CHECK_EQ_INT(4, s.files);
    CHECK_EQ_INT(2, s.photos);
    CHECK_EQ_INT(1, s.duplicates);
    CHECK_EQ_INT(1, s.failed);
    const struct catalog_stage_count *c = stage(&s, "probe");
    CHECK(c && c->pending == 2 && c->done == 0);
    c = stage(&s, "hash");
    CHECK(c && c->done == 3 && c->failed == 1 && c->pending == 0);

    /* work: both photos pending probe+thumb */
    const char *ws[] = { "probe", "thumb", "embed:m" };
    struct catalog_work *w = NULL;
    size_t nw = 0;
    CHECK_EQ_INT(SB_OK, catalog_work_pending(cat, ws, 3, 0, 10, &w, &nw, &err));
    CHECK_EQ_INT(2, nw);
    if (nw == 2) {
        CHECK_EQ_INT(3u, w[0].stages_mask);
        CHECK_EQ_STR("/p/a/1.jpg", w[0].path); /* the lowest file id of the photo */
        CHECK(memcmp(w[0].hash, h1, 16) == 0);
    }
    catalog_work_free(w, nw);

    /* metadata and jobs */
    struct photo_meta m;
    memset(&m, 0, sizeof(m)); /* photo_meta_init() lives in the image module */
    m.focal_mm = m.focal35_mm = m.exposure_s = m.gps_lat = m.gps_lon = m.gps_alt = (double)NAN;
    m.orientation = 1;
    snprintf(m.taken_at, sizeof(m.taken_at), "2008-05-30T15:56:01");
    m.taken_unix = 1212162961;
    snprintf(m.make, sizeof(m.make), "Canon");
    m.fnumber = 7.1;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK,
                 catalog_photo_set_meta(cat, p1, &m, "jpeg", 100, 68, CATALOG_TIME_EXIF, &err));
    CHECK_EQ_INT(SB_OK, catalog_job_set(cat, p1, "probe", CATALOG_JOB_DONE, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_job_set(cat, p1, "thumb", CATALOG_JOB_DONE, NULL, &err));
    CHECK_EQ_INT(SB_OK,
                 catalog_job_set(cat, p3, "probe", CATALOG_JOB_FAILED, "decode: truncated", &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_work_pending(cat, ws, 3, 0, 10, &w, &nw, &err));
    CHECK_EQ_INT(1, nw); /* p3 still has its thumb pending */
    if (nw == 1)
        CHECK_EQ_INT(2u, w[0].stages_mask);
    catalog_work_free(w, nw);

    struct errs e = { 0 };
    CHECK_EQ_INT(SB_OK, catalog_errors(cat, err_cb, &e, &err));
    CHECK_EQ_INT(2, e.n);
    CHECK_EQ_STR("/p/ab/3.jpg|probe|decode: truncated", e.last);

    /* models: a stage enabled later reaches every photo; a dimension change is refused */
    int64_t mid = 0, mid2 = 0;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_model_ensure(cat, "m", 4, &mid, &err));
    CHECK_EQ_INT(SB_OK, catalog_model_ensure(cat, "m", 4, &mid2, &err));
    CHECK_EQ_INT(mid, mid2);
    CHECK_EQ_INT(SB_EDB, catalog_model_ensure(cat, "m", 8, &mid2, &err));
    CHECK_EQ_INT(SB_OK, catalog_jobs_ensure(cat, "embed:m", &err));
    float v[4] = { 1, 0, 0, 0 };
    CHECK_EQ_INT(SB_OK, catalog_vector_put(cat, mid, p1, v, 4, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    c = stage(&s, "embed:m");
    CHECK(c && c->pending == 2);

    /* retry resets failures */
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_jobs_retry(cat, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    CHECK_EQ_INT(0, s.failed);

    /* missing files leave the counts */
    CHECK_EQ_INT(SB_OK, catalog_files_pending(cat, 10, &files, &nf, &err));
    CHECK_EQ_INT(1, nf);
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_set_missing(cat, files[0].id, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    catalog_files_free(files, nf);
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    CHECK_EQ_INT(3, s.files);
    CHECK_EQ_INT(1, s.missing);

    CHECK_EQ_INT(SB_OK, catalog_check(cat, &err));
    catalog_close(cat);

    /* reopening migrates nothing and keeps everything; read-only works */
    CHECK_EQ_INT(SB_OK, catalog_open(path, true, &cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    CHECK_EQ_INT(2, s.photos);
    catalog_close(cat);

    /* a file that is not a database is a clean error */
    char bad[600];
    snprintf(bad, sizeof(bad), "%s.bad", path);
    FILE *f = fopen(bad, "wb");
    if (f) {
        fputs("this is not a database, just some text long enough to be a header..........."
              "...............................................................",
              f);
        fclose(f);
    }
    cat = NULL;
    CHECK(catalog_open(bad, false, &cat, &err) != SB_OK);
    CHECK(cat == NULL);
    CHECK(strstr(err.msg, "catalog") != NULL);
    return check_exit();
}
