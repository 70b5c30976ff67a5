/* test_interop_takeout.c - Google Takeout sidecars: naming quirks (truncated names, "(1)",
 * supplemental-metadata), "-edited" versions in several languages, and the crawl stage storing
 * titles, descriptions, places and people. */
#include "check.h"
#include "fixture.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/takeout.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[512];

static void write_text(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

#define SIDECAR_JSON                                                                               \
    "{\"title\":\"%s\",\"description\":\"Grandma's birthday\","                                    \
    "\"photoTakenTime\":{\"timestamp\":\"1561982400\",\"formatted\":\"1 Jul 2019\"},"              \
    "\"geoData\":{\"latitude\":48.8584,\"longitude\":2.2945,\"altitude\":35.0},"                   \
    "\"people\":[{\"name\":\"Alice\"},{\"name\":\"Bob\"},{\"nome\":1}]}"

static void test_names(void)
{
    static const struct {
        const char *image, *sidecar; /* sidecar written; NULL: none expected */
    } cases[] = {
        { "IMG_0001.jpg", "IMG_0001.jpg.json" },
        { "IMG_0002.jpg", "IMG_0002.json" },
        { "IMG_0003.jpg", "IMG_0003.jpg.supplemental-metadata.json" },
        { "IMG_0004(1).jpg", "IMG_0004.jpg(1).json" },
        { "IMG_0005(2).jpg", "IMG_0005.jpg.supplemental-metadata(2).json" },
        /* 47 + 5 > 51: the name is cut to 46 bytes before ".json" */
        { "a_very_long_file_name_from_a_phone_camera_12.jpg",
          "a_very_long_file_name_from_a_phone_camera_12.j.json" },
        /* supplemental-metadata cut to fit 51 bytes */
        { "PXL_20230101_101010123.jpg", "PXL_20230101_101010123.jpg.supplemental-metada.json" },
        { "IMG_0009.jpg", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[512], img[1024], found[1024], want[1024];
        snprintf(json, sizeof(json), SIDECAR_JSON, cases[i].image);
        if (cases[i].sidecar)
            write_text(cases[i].sidecar, json);
        write_text(cases[i].image, "not really a jpeg");
        snprintf(img, sizeof(img), "%s/%s", tmp_dir, cases[i].image);
        bool ok = crawl_takeout_sidecar(img, found, sizeof(found));
        CHECK_EQ_INT(cases[i].sidecar != NULL, ok);
        if (cases[i].sidecar && ok) {
            snprintf(want, sizeof(want), "%s/%s", tmp_dir, cases[i].sidecar);
            CHECK_EQ_STR(want, found);
            int64_t t = 0;
            CHECK(crawl_takeout_time(img, &t));
            CHECK_EQ_INT(1561982400, t);
        }
    }

    static const struct {
        const char *path, *original; /* NULL: not an edited version */
    } edited[] = {
        { "/p/IMG_1234-edited.jpg", "/p/IMG_1234.jpg" },
        { "/p/IMG_1234-EDITED.JPG", "/p/IMG_1234.JPG" },
        { "/p/IMG_1234-bearbeitet.jpg", "/p/IMG_1234.jpg" },
        { "/p/IMG_1234-modifié.jpg", "/p/IMG_1234.jpg" },
        { "/p/IMG_1234-editado.heic", "/p/IMG_1234.heic" },
        { "/p/IMG_1234-edited(1).jpg", "/p/IMG_1234(1).jpg" },
        { "IMG_1-edited.png", "IMG_1.png" },
        { "/p/IMG_1234.jpg", NULL },
        { "/p/-edited.jpg", NULL },
        { "/p/edited.jpg", NULL },
        { "/p/IMG_1234-edited", "/p/IMG_1234" },
    };
    for (size_t i = 0; i < sizeof(edited) / sizeof(edited[0]); i++) {
        char out[256];
        bool is = takeout_edited_original(edited[i].path, out, sizeof(out));
        CHECK_EQ_INT(edited[i].original != NULL, is);
        if (edited[i].original && is)
            CHECK_EQ_STR(edited[i].original, out);
    }
}

static void test_sidecar(void)
{
    char path[1024];
    struct takeout_meta m;
    struct sb_err err;
    snprintf(path, sizeof(path), "%s/IMG_0001.jpg.json", tmp_dir);
    CHECK_EQ_INT(SB_OK, takeout_read_sidecar(path, "IMG_0001.jpg", &m, &err));
    CHECK(m.title == NULL); /* just the file name */
    CHECK_EQ_STR("Grandma's birthday", m.description);
    CHECK_NEAR(48.8584, m.lat, 1e-9);
    CHECK_NEAR(2.2945, m.lon, 1e-9);
    CHECK_NEAR(35.0, m.alt, 1e-9);
    CHECK_EQ_INT(2, m.npeople);
    if (m.npeople == 2) {
        CHECK_EQ_STR("Alice", m.people[0]);
        CHECK_EQ_STR("Bob", m.people[1]);
    }
    takeout_meta_release(&m);
    write_text("geo0.json",
               "{\"title\":\"Eiffel\",\"geoData\":{\"latitude\":0.0,\"longitude\":0.0},"
               "\"geoDataExif\":{\"latitude\":1.5,\"longitude\":2.5}}");
    snprintf(path, sizeof(path), "%s/geo0.json", tmp_dir);
    CHECK_EQ_INT(SB_OK, takeout_read_sidecar(path, NULL, &m, &err));
    CHECK_EQ_STR("Eiffel", m.title);
    CHECK_NEAR(1.5, m.lat, 1e-9);
    CHECK(isnan(m.alt));
    takeout_meta_release(&m);
    write_text("bad.json", "{\"title\": ");
    snprintf(path, sizeof(path), "%s/bad.json", tmp_dir);
    CHECK_EQ_INT(SB_EFORMAT, takeout_read_sidecar(path, NULL, &m, &err));
    snprintf(path, sizeof(path), "%s/none.json", tmp_dir);
    CHECK_EQ_INT(SB_ENOENT, takeout_read_sidecar(path, NULL, &m, &err));
}

/* Runs the stage on one photo as the crawler does: run(), then store() in a transaction. */
static int run_stage(const struct crawl_plugin *pl, struct catalog *cat, int64_t id,
                     const char *path)
{
    void *res = NULL;
    struct sb_err err;
    int rc = pl->run(pl->user, 0, NULL, path, &res, &err);
    if (!rc) {
        CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
        rc = pl->store(pl->user, cat, id, res, NULL, 0, &err);
        CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    }
    pl->free_result(pl->user, res);
    return rc;
}

/* A file of a photo whose content hash is `tag` repeated. */
static int64_t add_photo(struct catalog *cat, const char *path, unsigned char tag)
{
    unsigned char hash[16];
    memset(hash, tag, sizeof(hash));
    return fx_add_photo_hash(cat, path, hash, (struct catalog_stat){ 10, 1, 1, tag, 1 });
}

static void test_stage(void)
{
    char dbpath[1024], img[1024], edit[1024], plain[1024];
    snprintf(dbpath, sizeof(dbpath), "%s/catalog.db", tmp_dir);
    struct sb_err err;
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(dbpath, false, &cat, &err));
    if (!cat)
        return;
    snprintf(img, sizeof(img), "%s/IMG_0001.jpg", tmp_dir);
    snprintf(edit, sizeof(edit), "%s/IMG_0001-bearbeitet.jpg", tmp_dir);
    snprintf(plain, sizeof(plain), "%s/IMG_0009.jpg", tmp_dir);
    write_text("IMG_0001-bearbeitet.jpg", "edited bytes");
    int64_t p1 = add_photo(cat, img, 1), p2 = add_photo(cat, edit, 2),
            p3 = add_photo(cat, plain, 3);
    struct crawl_plugin pl;
    takeout_plugin(&pl);
    CHECK_EQ_STR("takeout", pl.stage);
    CHECK(!pl.needs_pixels);
    CHECK_EQ_INT(SB_OK, run_stage(&pl, cat, p1, img));
    CHECK_EQ_INT(SB_OK, run_stage(&pl, cat, p2, edit));
    CHECK_EQ_INT(SB_OK, run_stage(&pl, cat, p3, plain));

    struct fx_collect t;
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, p1, fx_collect_pair, &t, &err));
    CHECK_EQ_STR("Alice(takeout);Bob(takeout);", t.all);
    char *text = NULL;
    CHECK_EQ_INT(SB_OK, catalog_text_get(cat, p1, "takeout:description", &text, NULL, &err));
    CHECK_EQ_STR("Grandma's birthday", text);
    free(text);
    CHECK_EQ_INT(SB_ENOENT, catalog_text_get(cat, p1, "takeout:title", &text, NULL, &err));
    struct catalog_photo ph;
    CHECK_EQ_INT(SB_OK, catalog_photo_get(cat, p1, &ph, &err));
    CHECK_NEAR(48.8584, ph.gps_lat, 1e-9);
    catalog_photo_release(&ph);
    int64_t orig = 0;
    CHECK_EQ_INT(SB_OK, catalog_takeout_edited_of(cat, p2, &orig, &err));
    CHECK_EQ_INT(p1, orig);
    CHECK_EQ_INT(SB_ENOENT, catalog_takeout_edited_of(cat, p1, &orig, &err));
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, p2, fx_collect_pair, &t, &err));
    CHECK_EQ_STR("Alice(takeout);Bob(takeout);", t.all); /* the original's sidecar */
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, p3, fx_collect_pair, &t, &err));
    CHECK_EQ_STR("", t.all);
    /* EXIF wins: a second position does not replace the first */
    bool set = true;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_photo_gps_fill(cat, p1, 10.0, 10.0, (double)NAN, &set, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK(!set);
    catalog_close(cat);
}

int main(void)
{
    const char *t = getenv("SHOEBOX_TMP");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_interop_takeout.%d", t ? t : "/tmp", (int)getpid());
    struct sb_err err;
    if (sb_mkdirs(tmp_dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_names();
    test_sidecar();
    test_stage();
    return check_exit();
}
