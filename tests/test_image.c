/* test_image.c - the image module: sniffing, every decoder against PIL's decode of the same
 * file, EXIF orientation, DCT scaling, Pillow-exact resampling, metadata against exiftool, and
 * hostile files that must fail cleanly. Fixtures: tests/data/images (see
 * tools/gen_image_fixtures.py and tests/data/MANIFEST.tsv). */
#include "check.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/util.h"

#include "../src/image/internal.h"

#include <dirent.h>
#include <turbojpeg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNAN ((double)NAN)

static char data_dir[512];

static const char *path_of(const char *rel)
{
    static char buf[4][1024];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 1024, "%s/images/%s", data_dir, rel);
    return p;
}

static struct image *load(const char *rel, const struct image_decode_params *p,
                          struct image_info *info, int *rc_out)
{
    struct image *img = NULL;
    struct sb_err err = { 0 };
    int rc = image_decode_file(path_of(rel), p, &img, info, &err);
    if (rc_out)
        *rc_out = rc;
    if (rc && !rc_out)
        fprintf(stderr, "  decode %s: %s\n", rel, err.msg);
    return img;
}

/* Max and mean absolute channel difference; -1 when the sizes differ. */
static int img_diff(const struct image *a, const struct image *b, double *mean)
{
    if (!a || !b || a->w != b->w || a->h != b->h)
        return -1;
    size_t n = (size_t)a->w * a->h * 3;
    int mx = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs(a->px[i] - b->px[i]);
        if (d > mx)
            mx = d;
        sum += d;
    }
    if (mean)
        *mean = sum / (double)n;
    return mx;
}

/* ---------------------------------------------------------------------------------------- */

static void test_sniff_files(void)
{
    static const struct {
        const char *file;
        enum image_format fmt;
    } cases[] = {
        { "Landscape_1.jpg", IMAGE_FMT_JPEG },
        { "jpeg_named.png", IMAGE_FMT_JPEG }, /* mislabelled: bytes win */
        { "pngsuite_basn2c16_rgb16.png", IMAGE_FMT_PNG },
        { "lossy_vp8_hopper.webp", IMAGE_FMT_WEBP },
        { "samplefilehub.heif", IMAGE_FMT_HEIF },
        { "pillow_hopper.avif", IMAGE_FMT_AVIF },
        { "gray16bit_le.tif", IMAGE_FMT_TIFF },
        { "transparent.gif", IMAGE_FMT_GIF },
        { "exiftool_NikonD70_stub.nef", IMAGE_FMT_RAW },
        { "broken/text_file_named.jpg", IMAGE_FMT_UNKNOWN },
        { "broken/zero_bytes.jpg", IMAGE_FMT_UNKNOWN },
        { "broken/garbage_broken.png", IMAGE_FMT_PNG }, /* PNG signature, junk after */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        int rc = sb_read_file(path_of(cases[i].file), 1 << 26, &buf, &len, NULL);
        CHECK_EQ_INT(0, rc);
        enum image_format f = image_sniff(buf, len, cases[i].file);
        if (f != cases[i].fmt)
            fprintf(stderr, "  sniff %s: %s\n", cases[i].file, image_format_name(f));
        CHECK_EQ_INT(cases[i].fmt, f);
        free(buf);
    }
}

static void test_sniff_bytes(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *name;
        enum image_format fmt;
    } cases[] = {
        { "\xFF\xD8\xFF\xE0", 4, NULL, IMAGE_FMT_JPEG },
        { "\xFF\xD8", 2, NULL, IMAGE_FMT_UNKNOWN },
        { "GIF87a\x01\x00", 8, NULL, IMAGE_FMT_GIF },
        { "GIF88a\x01\x00", 8, NULL, IMAGE_FMT_UNKNOWN },
        { "RIFF\x10\0\0\0WEBPVP8 ", 16, NULL, IMAGE_FMT_WEBP },
        { "RIFF\x10\0\0\0WAVEfmt ", 16, NULL, IMAGE_FMT_UNKNOWN },
        { "\0\0\0\x18"
          "ftypheic\0\0\0\0mif1heic",
          24, NULL, IMAGE_FMT_HEIF },
        { "\0\0\0\x18"
          "ftypmif1\0\0\0\0mif1heic",
          24, NULL, IMAGE_FMT_HEIF },
        { "\0\0\0\x18"
          "ftypmif1\0\0\0\0mif1avif",
          24, NULL, IMAGE_FMT_AVIF },
        { "\0\0\0\x18"
          "ftypavif\0\0\0\0mif1miaf",
          24, NULL, IMAGE_FMT_AVIF },
        { "\0\0\0\x18"
          "ftypcrx \0\0\0\x01"
          "crx isom",
          24, NULL, IMAGE_FMT_RAW },
        { "\0\0\0\x18"
          "ftypisom\0\0\0\0isommp41",
          24, NULL, IMAGE_FMT_UNKNOWN },
        { "\0\0\0\x14"
          "ftypheic\0\0\0\0",
          16, NULL, IMAGE_FMT_HEIF },
        { "II*\0\x08\0\0\0", 8, "a.tif", IMAGE_FMT_TIFF },
        { "II*\0\x08\0\0\0", 8, NULL, IMAGE_FMT_TIFF },
        { "II*\0\x08\0\0\0", 8, "DSC_0001.NEF", IMAGE_FMT_RAW },
        { "MM\0*\0\0\0\x08", 8, "x.dng", IMAGE_FMT_RAW },
        { "II*\0\x10\0\0\0CR\x02\0", 12, "x.tif", IMAGE_FMT_RAW },
        { "IIU\0\x08\0\0\0", 8, NULL, IMAGE_FMT_RAW },
        { "IIRO\x08\0\0\0", 8, NULL, IMAGE_FMT_RAW },
        { "FUJIFILMCCD-RAW 0201", 20, NULL, IMAGE_FMT_RAW },
        { "hello, world\n", 13, "x.jpg", IMAGE_FMT_UNKNOWN },
        { "", 0, NULL, IMAGE_FMT_UNKNOWN },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum image_format f =
            image_sniff((const unsigned char *)cases[i].bytes, cases[i].len, cases[i].name);
        if (f != cases[i].fmt)
            fprintf(stderr, "  sniff case %zu: %s\n", i, image_format_name(f));
        CHECK_EQ_INT(cases[i].fmt, f);
    }
    CHECK_EQ_STR("jpeg", image_format_name(IMAGE_FMT_JPEG));
    CHECK_EQ_STR("unknown", image_format_name(IMAGE_FMT_UNKNOWN));
}

/* image_orient on a 3x2 image [[a b c] [d e f]], expected as PIL's exif_transpose gives. */
static void test_orient_small(void)
{
    struct image *src = image_new(3, 2);
    CHECK(src != NULL);
    if (!src)
        return;
    for (int i = 0; i < 6; i++)
        src->px[3 * i] = src->px[3 * i + 1] = src->px[3 * i + 2] = (unsigned char)('a' + i);
    static const struct {
        int o, w, h;
        const char *px;
    } cases[] = {
        { 1, 3, 2, "abcdef" }, { 2, 3, 2, "cbafed" }, { 3, 3, 2, "fedcba" }, { 4, 3, 2, "defabc" },
        { 5, 2, 3, "adbecf" }, { 6, 2, 3, "daebfc" }, { 7, 2, 3, "fcebda" }, { 8, 2, 3, "cfbead" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct image *r = image_orient(src, cases[i].o);
        CHECK(r != NULL);
        if (!r)
            continue;
        CHECK_EQ_INT(cases[i].w, r->w);
        CHECK_EQ_INT(cases[i].h, r->h);
        char got[7] = { 0 };
        for (int k = 0; k < 6; k++)
            got[k] = (char)r->px[3 * k];
        CHECK_EQ_STR(cases[i].px, got);
        image_free(r);
    }
    image_free(src);
}

static void test_orientation_files(void)
{
    struct image *up = load("orient_upright.png", NULL, NULL, NULL);
    CHECK(up != NULL);
    for (int o = 1; o <= 8; o++) {
        char name[32];
        snprintf(name, sizeof(name), "orient_%d.jpg", o);
        struct image_info info = { 0 };
        struct image *img = load(name, NULL, &info, NULL);
        CHECK(img != NULL);
        CHECK_EQ_INT(o, info.orientation);
        double mean = 0;
        int mx = img_diff(up, img, &mean);
        if (mx < 0 || mx > 24 || mean > 3)
            fprintf(stderr, "  %s: max diff %d mean %.2f\n", name, mx, mean);
        CHECK(mx >= 0 && mx <= 24 && mean <= 3);
        image_free(img);
    }
    /* apply_orientation = 0 keeps the stored layout */
    struct image_decode_params p = image_decode_default_params();
    p.apply_orientation = 0;
    struct image *st = load("orient_6.jpg", &p, NULL, NULL);
    CHECK(st && st->w == 32 && st->h == 48);
    image_free(st);
    image_free(up);

    /* a real camera pair: Landscape_6 stores the picture turned; upright it matches _1
     * except for the digit drawn on it */
    p = image_decode_default_params();
    p.min_long = 256;
    struct image_info i1 = { 0 }, i6 = { 0 };
    struct image *a = load("Landscape_1.jpg", &p, &i1, NULL);
    struct image *b = load("Landscape_6.jpg", &p, &i6, NULL);
    CHECK(a && b);
    CHECK_EQ_INT(6, i6.orientation);
    CHECK_EQ_INT(1200, i6.width); /* stored size, before orientation */
    CHECK_EQ_INT(1800, i6.height);
    double mean = 0;
    int mx = img_diff(a, b, &mean);
    fprintf(stderr, "  Landscape_1 vs _6 upright: max %d mean %.2f\n", mx, mean);
    CHECK(mx >= 0 && mean < 12);
    image_free(a);
    image_free(b);
}

static void test_dct_scaling(void)
{
    static const struct {
        int min_long, min_short, w, h;
    } cases[] = {
        { 0, 0, 1800, 1200 },     /* full size */
        { 256, 0, 450, 300 },     /* 1/8 gives 225x150: too small; 2/8 covers */
        { 0, 224, 450, 300 },     /* short edge 150 < 224 at 1/8 */
        { 225, 150, 225, 150 },   /* exactly 1/8 */
        { 1000, 0, 1125, 750 },   /* 5/8 */
        { 1000, 800, 1350, 900 }, /* 6/8 */
        { 5000, 0, 1800, 1200 },  /* original smaller than wanted: full size */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct image_decode_params p = image_decode_default_params();
        p.min_long = cases[i].min_long;
        p.min_short = cases[i].min_short;
        struct image_info info = { 0 };
        struct image *img = load("Landscape_1.jpg", &p, &info, NULL);
        CHECK(img != NULL);
        if (!img)
            continue;
        CHECK_EQ_INT(cases[i].w, img->w);
        CHECK_EQ_INT(cases[i].h, img->h);
        CHECK_EQ_INT(1800, info.width);
        image_free(img);
    }
    /* portrait after orientation: the long edge is the height */
    struct image_decode_params p = image_decode_default_params();
    p.min_long = 256;
    struct image *img = load("Landscape_6.jpg", &p, NULL, NULL);
    CHECK(img && img->w == 450 && img->h == 300);
    image_free(img);
}

/* Decodes must equal PIL's Image.open(f).convert("RGB") (tools/gen_image_fixtures.py). */
static void test_against_pil(void)
{
    static const struct {
        const char *file;
        int tol;
    } cases[] = {
        { "cmyk_adobe.jpg", 1 },
        { "cmyk_synthetic.jpg", 1 },
        { "progressive_puppies.jpg", 1 },
        { "pngsuite_basn2c16_rgb16.png", 0 },
        { "pngsuite_basn3p04_palette4.png", 0 },
        { "pngsuite_basn4a08_gray_alpha.png", 0 },
        { "pngsuite_basn6a16_rgba16.png", 0 },
        { "pngsuite_ibasn2c08_interlaced_rgb8.png", 0 },
        { "lossy_vp8_hopper.webp", 0 },
        { "transparent.gif", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char ref[256];
        snprintf(ref, sizeof(ref), "expected/%s.png", cases[i].file);
        struct image *a = load(cases[i].file, NULL, NULL, NULL);
        struct image *b = load(ref, NULL, NULL, NULL);
        double mean = 0;
        int mx = img_diff(a, b, &mean);
        if (mx < 0 || mx > cases[i].tol)
            fprintf(stderr, "  %s vs PIL: max diff %d mean %.3f\n", cases[i].file, mx, mean);
        CHECK(mx >= 0 && mx <= cases[i].tol);
        image_free(a);
        image_free(b);
    }
}

static void test_formats(void)
{
    static const struct {
        const char *file;
        int w, h, orientation;
    } cases[] = {
        { "samplefilehub.heif", 640, 426, 1 },
        { "pillow_hopper.avif", 128, 128, 1 },
        { "pillow_rot1mir0.avif", 640, 427, 1 }, /* libheif applies irot/imir itself */
        { "pillow_exif.avif", 512, 512, 1 },
        { "hopper_exif_orientation6.webp", 128, 128, 6 },
        { "lossless_vp8l_logo_alpha.webp", 1000, 307, 1 },
        { "bilevel_g4_orientation6.tif", 0, 0, 6 },
        { "gray16bit_le.tif", 64, 64, 1 },
        { "rgba16bit_lzw_bigendian.tiff", 100, 40, 1 },
        { "meme_no_time_for_that_tiny.gif", 14, 25, 1 },
        { "ijg_arithmetic_coded.jpg", 227, 149, 1 },
        { "pngsuite_basn0g16_gray16.png", 32, 32, 1 },
        { "pngsuite_ftbbn3p08_palette_trns.png", 32, 32, 1 },
        { "pngsuite_ibasn6a16_interlaced_rgba16.png", 32, 32, 1 },
        { "png_exif_chunk.png", 512, 512, 1 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct image_info info = { 0 };
        struct image *img = load(cases[i].file, NULL, &info, NULL);
        CHECK(img != NULL);
        if (!img)
            continue;
        if (cases[i].w) {
            int ow = cases[i].orientation >= 5 ? img->h : img->w;
            int oh = cases[i].orientation >= 5 ? img->w : img->h;
            CHECK_EQ_INT(cases[i].w, ow);
            CHECK_EQ_INT(cases[i].h, oh);
        }
        CHECK_EQ_INT(cases[i].orientation, info.orientation);
        image_free(img);
    }
    /* the bilevel TIFF: orientation 6 turns the stored width into the height */
    struct image_info info = { 0 };
    struct image *img = load("bilevel_g4_orientation6.tif", NULL, &info, NULL);
    CHECK(img && img->w == info.height && img->h == info.width);
    image_free(img);
}

static void test_max_pixels(void)
{
    static const char *const files[] = {
        "Landscape_1.jpg",    "png_exif_chunk.png",           "lossless_vp8l_logo_alpha.webp",
        "samplefilehub.heif", "rgba16bit_lzw_bigendian.tiff", "transparent.gif",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct image_decode_params p = image_decode_default_params();
        p.max_pixels = 3000;
        int rc = 0;
        struct image *img = load(files[i], &p, NULL, &rc);
        if (rc != SB_ETOOBIG)
            fprintf(stderr, "  max_pixels %s: rc %d\n", files[i], rc);
        CHECK_EQ_INT(SB_ETOOBIG, rc);
        CHECK(img == NULL);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Resampling: Pillow's Image.resize outputs (tools/gen_image_fixtures.py RESIZE_CASES). */

static void test_resize(void)
{
    static const struct {
        const char *in;
        int w, h;
    } cases[] = {
        { "in_61x47", 23, 17 },   { "in_61x47", 40, 47 },     { "in_61x47", 61, 30 },
        { "in_61x47", 150, 101 }, { "in_61x47", 1, 1 },       { "in_61x47", 61, 1 },
        { "in_61x47", 1, 47 },    { "in_61x47", 7, 100 },     { "in_200x150", 112, 84 },
        { "in_200x150", 37, 29 }, { "in_200x150", 224, 168 }, { "in_1x1", 5, 3 },
        { "in_3x2", 1, 1 },       { "in_3x2", 9, 7 },
    };
    static const struct {
        const char *name;
        enum image_filter f;
    } filters[] = {
        { "bilinear", IMAGE_FILTER_BILINEAR },
        { "bicubic", IMAGE_FILTER_BICUBIC },
        { "lanczos", IMAGE_FILTER_LANCZOS },
    };
    int worst = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[128];
        snprintf(in, sizeof(in), "resize/%s.png", cases[i].in);
        struct image *src = load(in, NULL, NULL, NULL);
        CHECK(src != NULL);
        for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]) && src; f++) {
            char ref[160];
            snprintf(ref, sizeof(ref), "resize/%s_%s_%dx%d.png", cases[i].in, filters[f].name,
                     cases[i].w, cases[i].h);
            struct image *want = load(ref, NULL, NULL, NULL);
            struct image *got = image_resize(src, cases[i].w, cases[i].h, filters[f].f);
            int mx = img_diff(want, got, NULL);
            if (mx != 0)
                fprintf(stderr, "  resize %s: max diff %d\n", ref, mx);
            CHECK_EQ_INT(0, mx); /* bit-exact with Pillow */
            if (mx > worst)
                worst = mx;
            image_free(want);
            image_free(got);
        }
        image_free(src);
    }
    fprintf(stderr, "  resize vs Pillow: worst max diff %d\n", worst);
    struct image *one = image_new(1, 1);
    CHECK(image_resize(one, 0, 5, IMAGE_FILTER_BICUBIC) == NULL);
    CHECK(image_resize(NULL, 5, 5, IMAGE_FILTER_BICUBIC) == NULL);
    image_free(one);
}

/* PSNR in dB of b against a (same size); 99 when identical, -1 when the sizes differ. */
static double img_psnr(const struct image *a, const struct image *b)
{
    if (!a || !b || a->w != b->w || a->h != b->h)
        return -1;
    size_t n = (size_t)a->w * a->h * 3;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a->px[i] - (double)b->px[i];
        se += d * d;
    }
    return se == 0 ? 99 : 10 * log10(255.0 * 255.0 * (double)n / se);
}

/* image_resize_fast: close to the Pillow-exact path (it differs by rounding only), and its
 * SIMD and scalar code give the same bytes, on odd sizes (SIMD tails), 1-pixel edges,
 * enlargements and strong reductions (many taps). */
static void test_resize_fast(void)
{
    static const struct {
        const char *in;
        int w, h;
    } cases[] = {
        { "in_61x47", 23, 17 },    { "in_61x47", 40, 47 },   { "in_61x47", 61, 30 },
        { "in_61x47", 150, 101 },  { "in_61x47", 1, 1 },     { "in_61x47", 61, 1 },
        { "in_61x47", 1, 47 },     { "in_61x47", 7, 100 },   { "in_61x47", 5, 4 },
        { "in_200x150", 112, 84 }, { "in_200x150", 37, 29 }, { "in_200x150", 224, 168 },
        { "in_200x150", 9, 7 },    { "in_1x1", 5, 3 },       { "in_3x2", 1, 1 },
        { "in_3x2", 9, 7 },
    };
    static const enum image_filter filters[] = { IMAGE_FILTER_BILINEAR, IMAGE_FILTER_BICUBIC,
                                                 IMAGE_FILTER_LANCZOS };
    double worst_mean = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[128];
        snprintf(in, sizeof(in), "resize/%s.png", cases[i].in);
        struct image *src = load(in, NULL, NULL, NULL);
        CHECK(src != NULL);
        for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]) && src; f++) {
            struct image *want = image_resize(src, cases[i].w, cases[i].h, filters[f]);
            struct image *got = image_resize_fast(src, cases[i].w, cases[i].h, filters[f]);
            img_resize_fast_set_simd(1);
            struct image *sse = image_resize_fast(src, cases[i].w, cases[i].h, filters[f]);
            img_resize_fast_set_simd(0);
            struct image *scalar = image_resize_fast(src, cases[i].w, cases[i].h, filters[f]);
            img_resize_fast_set_simd(2);
            CHECK(got && scalar && got->w == cases[i].w && got->h == cases[i].h);
            double mean = 0;
            int mx = img_diff(want, got, &mean);
            if (mx < 0 || mx > 24 || mean > 1.0)
                fprintf(stderr, "  resize_fast %s -> %dx%d filter %d: max %d mean %.3f\n", in,
                        cases[i].w, cases[i].h, (int)filters[f], mx, mean);
            CHECK(mx >= 0 && mx <= 24 && mean <= 1.0);
            CHECK_EQ_INT(0, img_diff(got, scalar, NULL)); /* SIMD == scalar, byte for byte */
            CHECK_EQ_INT(0, img_diff(sse, scalar, NULL));
            if (mean > worst_mean)
                worst_mean = mean;
            image_free(want);
            image_free(got);
            image_free(sse);
            image_free(scalar);
        }
        image_free(src);
    }
    fprintf(stderr, "  resize_fast vs exact on the fixtures: worst mean diff %.3f\n", worst_mean);

    /* a camera photo to thumbnail sizes: within rounding of the exact path */
    struct image *img = load("Landscape_1.jpg", NULL, NULL, NULL);
    CHECK(img != NULL);
    static const int sizes[][2] = { { 1024, 683 }, { 256, 171 }, { 1799, 1199 }, { 1800, 600 } };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && img; i++) {
        struct image *want = image_resize(img, sizes[i][0], sizes[i][1], IMAGE_FILTER_BICUBIC);
        struct image *got = image_resize_fast(img, sizes[i][0], sizes[i][1], IMAGE_FILTER_BICUBIC);
        img_resize_fast_set_simd(1);
        struct image *sse = image_resize_fast(img, sizes[i][0], sizes[i][1], IMAGE_FILTER_BICUBIC);
        img_resize_fast_set_simd(0);
        struct image *scalar =
            image_resize_fast(img, sizes[i][0], sizes[i][1], IMAGE_FILTER_BICUBIC);
        img_resize_fast_set_simd(2);
        double db = img_psnr(want, got);
        fprintf(stderr, "  resize_fast Landscape_1 -> %dx%d: PSNR %.1f dB vs exact\n", sizes[i][0],
                sizes[i][1], db);
        CHECK(db >= 45);
        CHECK_EQ_INT(0, img_diff(got, scalar, NULL));
        CHECK_EQ_INT(0, img_diff(sse, scalar, NULL));
        image_free(want);
        image_free(got);
        image_free(sse);
        image_free(scalar);
    }
    image_free(img);
    /* planes (bpp 1, padded strides): each channel of an RGB resize, byte for byte, SIMD or
     * not; with moved sample centres and a narrower filter too, SIMD == scalar */
    struct image *src = load("resize/in_200x150.png", NULL, NULL, NULL);
    CHECK(src != NULL);
    /* sizes: SIMD blocks and tails; 20x15 and 61x40 take many taps (the AVX2 gray pass pairs
     * output pixels four apart, so it reads up to the wider one's taps past a row's end) */
    static const int psz[][2] = { { 112, 84 }, { 37, 29 }, { 3, 2 },   { 199, 150 },
                                  { 200, 61 }, { 20, 15 }, { 61, 40 }, { 129, 97 } };
    for (size_t i = 0; i < sizeof(psz) / sizeof(psz[0]) && src; i++) {
        int w = psz[i][0], h = psz[i][1];
        size_t sst = (size_t)src->w + 5, dst_st = (size_t)w + 3;
        unsigned char *plane = calloc(sst * (size_t)src->h, 1);
        unsigned char *a = calloc(dst_st * (size_t)h, 1), *b = calloc(dst_st * (size_t)h, 1);
        unsigned char *c = calloc(dst_st * (size_t)h, 1);
        struct image *rgb = image_resize_fast(src, w, h, IMAGE_FILTER_BICUBIC);
        CHECK(plane && a && b && rgb);
        if (!plane || !a || !b || !c || !rgb)
            break;
        for (int ch = 0; ch < 3; ch++) {
            for (int y = 0; y < src->h; y++)
                for (int x = 0; x < src->w; x++)
                    plane[(size_t)y * sst + (size_t)x] =
                        src->px[((size_t)y * (size_t)src->w + (size_t)x) * 3 + (size_t)ch];
            struct img_axis ax = { src->w, w, 0, 0, 0 }, ay = { src->h, h, 0, 0, 0 };
            CHECK_EQ_INT(
                0, img_resize_fast_plane(plane, sst, a, dst_st, ax, ay, 1, IMAGE_FILTER_BICUBIC));
            int same = 1;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    same &= a[(size_t)y * dst_st + (size_t)x] ==
                            rgb->px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)ch];
            CHECK(same);
            ax.step = 1.1 * src->w / w;
            ax.shift = 0.5;
            ax.width = 0.7 * src->w / w;
            ay.step = 0.9 * src->h / h;
            CHECK_EQ_INT(
                0, img_resize_fast_plane(plane, sst, a, dst_st, ax, ay, 1, IMAGE_FILTER_BICUBIC));
            img_resize_fast_set_simd(0);
            CHECK_EQ_INT(
                0, img_resize_fast_plane(plane, sst, b, dst_st, ax, ay, 1, IMAGE_FILTER_BICUBIC));
            img_resize_fast_set_simd(1);
            CHECK_EQ_INT(
                0, img_resize_fast_plane(plane, sst, c, dst_st, ax, ay, 1, IMAGE_FILTER_BICUBIC));
            img_resize_fast_set_simd(2);
            same = 1;
            for (int y = 0; y < h; y++)
                same &= memcmp(a + (size_t)y * dst_st, b + (size_t)y * dst_st, (size_t)w) == 0 &&
                        memcmp(c + (size_t)y * dst_st, b + (size_t)y * dst_st, (size_t)w) == 0;
            CHECK(same);
        }
        image_free(rgb);
        free(plane);
        free(a);
        free(b);
        free(c);
    }
    image_free(src);

    struct image *one = image_new(1, 1);
    CHECK(image_resize_fast(one, 0, 5, IMAGE_FILTER_BICUBIC) == NULL);
    CHECK(image_resize_fast(NULL, 5, 5, IMAGE_FILTER_BICUBIC) == NULL);
    CHECK(image_resize_fast(one, 5, 5, (enum image_filter)7) == NULL);
    image_free(one);
}

/* Thumbnails through each decode path the crawler takes (full size, DCT-scaled to cover 1024
 * or 256, turned by EXIF orientation): right size, upright, and close to the thumbnail of the
 * full-size decode. */
static void test_thumbnail_paths(void)
{
    struct image *full = load("Landscape_1.jpg", NULL, NULL, NULL);
    CHECK(full != NULL);
    if (!full)
        return;
    struct image *ref_l = image_thumbnail(full, 1024), *ref_s = image_thumbnail(full, 256);
    CHECK(ref_l && ref_l->w == 1024 && ref_l->h == 683);
    CHECK(ref_s && ref_s->w == 256 && ref_s->h == 171);
    static const struct {
        const char *file;
        int min_long, dec_w, dec_h; /* decode size after orientation */
        double min_db;              /* PSNR of both thumbnails against the references */
    } cases[] = {
        { "Landscape_1.jpg", 1024, 1125, 750, 35 }, /* 5/8 */
        { "Landscape_1.jpg", 256, 450, 300, 30 },   /* 2/8: only the small one is made */
        { "Landscape_6.jpg", 1024, 1125, 750, 0 },  /* turned; the digit differs */
        { "Landscape_6.jpg", 0, 1800, 1200, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct image_decode_params p = image_decode_default_params();
        p.min_long = cases[i].min_long;
        struct image *img = load(cases[i].file, &p, NULL, NULL);
        CHECK(img && img->w == cases[i].dec_w && img->h == cases[i].dec_h);
        if (!img)
            continue;
        struct image *l = cases[i].min_long == 256 ? NULL : image_thumbnail(img, 1024);
        struct image *s = image_thumbnail(l ? l : img, 256);
        CHECK(s && s->w == 256 && s->h == 171);
        double db_s = img_psnr(ref_s, s), db_l = l ? img_psnr(ref_l, l) : 99;
        if (l)
            CHECK(l->w == 1024 && l->h == 683);
        double mean = 0;
        int mx = img_diff(ref_s, s, &mean);
        fprintf(stderr, "  thumbnails of %s at min_long %d: PSNR %.1f / %.1f dB, mean %.2f\n",
                cases[i].file, cases[i].min_long, db_l, db_s, mean);
        CHECK(mx >= 0 && mean < 12); /* upright: the turned copy matches too */
        CHECK(db_s >= cases[i].min_db && db_l >= cases[i].min_db);
        image_free(l);
        image_free(s);
        image_free(img);
    }
    /* the 8 orientations of a small picture (32x48 stored): thumbnails are upright */
    struct image *up = load("orient_upright.png", NULL, NULL, NULL);
    struct image *up_t = up ? image_thumbnail(up, 24) : NULL;
    CHECK(up_t != NULL);
    for (int o = 1; o <= 8 && up_t; o++) {
        char name[32];
        snprintf(name, sizeof(name), "orient_%d.jpg", o);
        struct image *img = load(name, NULL, NULL, NULL);
        struct image *t = img ? image_thumbnail(img, 24) : NULL;
        CHECK(t && t->w == up_t->w && t->h == up_t->h);
        double mean = 0;
        int mx = img_diff(up_t, t, &mean);
        if (mx < 0 || mean > 3)
            fprintf(stderr, "  thumbnail %s: max %d mean %.2f\n", name, mx, mean);
        CHECK(mx >= 0 && mean <= 3);
        image_free(t);
        image_free(img);
    }
    image_free(up_t);
    image_free(up);
    image_free(ref_l);
    image_free(ref_s);
    image_free(full);
}

/* The RGB path's thumbnails of buf (decode covering px_large, upright, image_thumbnail twice),
 * as the crawler made them before the planar path. rc as image_decode's. */
static int rgb_thumbs(const unsigned char *buf, size_t len, int px_large, int px_small,
                      struct image **l, struct image **s)
{
    struct image_decode_params p = image_decode_default_params();
    p.min_long = px_large;
    struct image *img = NULL;
    struct sb_err err = { 0 };
    *l = *s = NULL;
    int rc = image_decode(buf, len, "x.jpg", &p, &img, NULL, &err);
    if (rc)
        return rc;
    *l = image_thumbnail(img, px_large);
    *s = *l ? image_thumbnail(*l, px_small) : NULL;
    image_free(img);
    return SB_OK;
}

/* img through JPEG at quality 85 (as the crawler stores thumbnails) and back. */
static struct image *jpeg_round_trip(const struct image *img)
{
    unsigned char *jpeg = NULL;
    size_t len = 0;
    struct image *back = NULL;
    if (image_encode_jpeg(img, 85, &jpeg, &len, NULL) == SB_OK)
        image_decode(jpeg, len, "t.jpg", NULL, &back, NULL, NULL);
    free(jpeg);
    return back;
}

/* Compares image_jpeg_thumbnails on buf with the RGB path: same outcome, same sizes, and
 * against the RGB path's (unencoded) thumbnails a PSNR at most max_loss dB below that of the
 * RGB path's own stored JPEGs. Returns the planar flag. */
static int check_planar(const char *what, const unsigned char *buf, size_t len, int px_large,
                        int px_small, double max_loss)
{
    struct image_thumb t[2] = { { .px = px_large }, { .px = px_small } };
    int planar = -1;
    struct image_info info = { 0 };
    struct sb_err err = { 0 };
    int rc = image_jpeg_thumbnails(buf, len, "x.jpg", 200u * 1000u * 1000u, 85, t, 2, &planar,
                                   &info, &err);
    CHECK(planar == 0 || planar == 1);
    if (!planar) {
        CHECK_EQ_INT(SB_OK, rc);
        CHECK(t[0].jpeg == NULL && t[1].jpeg == NULL);
        return 0;
    }
    struct image *l = NULL, *s = NULL;
    int want_rc = rgb_thumbs(buf, len, px_large, px_small, &l, &s);
    if (rc != want_rc)
        fprintf(stderr, "  planar %s: rc %d (%s), RGB path rc %d\n", what, rc, err.msg, want_rc);
    CHECK_EQ_INT(want_rc, rc);
    if (rc) {
        CHECK(t[0].jpeg == NULL && t[1].jpeg == NULL);
    } else {
        CHECK_EQ_INT(IMAGE_FMT_JPEG, info.format);
        struct image *rgb[2] = { l, s };
        for (int i = 0; i < 2; i++) {
            struct image *back = NULL;
            CHECK_EQ_INT(SB_OK,
                         image_decode(t[i].jpeg, t[i].len, "t.jpg", NULL, &back, NULL, &err));
            CHECK(back && rgb[i] && back->w == rgb[i]->w && back->h == rgb[i]->h);
            CHECK(back && t[i].w == back->w && t[i].h == back->h);
            struct image *stored = rgb[i] ? jpeg_round_trip(rgb[i]) : NULL;
            double db = img_psnr(rgb[i], back), db_rgb = img_psnr(rgb[i], stored);
            if (db < db_rgb - max_loss || (rgb[i] && rgb[i]->w >= 256) || getenv("PLANAR_V"))
                fprintf(stderr, "  planar %s thumb %d (%dx%d): PSNR %.1f dB, RGB path %.1f dB\n",
                        what, t[i].px, t[i].w, t[i].h, db, db_rgb);
            CHECK(db_rgb > 0 && db >= db_rgb - max_loss);
            image_free(stored);
            image_free(back);
        }
    }
    free(t[0].jpeg);
    free(t[1].jpeg);
    image_free(l);
    image_free(s);
    return 1;
}

static const int samplings[] = { TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_440 };

/* Landscape_1.jpg decoded at 450x300 and encoded here with chroma sampling samp (TJSAMP_*) at
 * quality q: a JPEG the caller frees with tjFree(), NULL (a failed check) when that failed. */
static unsigned char *sampled_fixture(int samp, int q, unsigned long *len)
{
    struct image_decode_params p = image_decode_default_params();
    p.min_long = 450;
    struct image *src = load("Landscape_1.jpg", &p, NULL, NULL);
    CHECK(src && src->w == 450);
    tjhandle ch = tjInitCompress();
    unsigned char *jpeg = NULL;
    *len = 0;
    if (src && ch &&
        tjCompress2(ch, src->px, src->w, 0, src->h, TJPF_RGB, &jpeg, len, samp, q, 0)) {
        tjFree(jpeg);
        jpeg = NULL;
    }
    CHECK(jpeg != NULL);
    if (ch)
        tjDestroy(ch);
    image_free(src);
    return jpeg;
}

/* image_jpeg_thumbnails (the crawler's JPEG path): against the RGB path on every JPEG fixture
 * (the 8 orientations, progressive, arithmetic-coded, broken and truncated files: the same
 * outcome), on each chroma sampling, and on files it leaves to the RGB path. */
static void test_jpeg_planar_thumbs(void)
{
    static const char *const dirs[] = { "", "broken/" };
    int nplanar = 0, nfail = 0;
    for (size_t d = 0; d < 2; d++) {
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s/images/%s", data_dir, dirs[d]);
        DIR *dp = opendir(dir);
        CHECK(dp != NULL);
        struct dirent *de;
        while (dp && (de = readdir(dp))) {
            size_t n = strlen(de->d_name);
            if (n < 4 || strcmp(de->d_name + n - 4, ".jpg") != 0)
                continue;
            char rel[600], full[1700];
            snprintf(rel, sizeof(rel), "%s%s", dirs[d], de->d_name);
            snprintf(full, sizeof(full), "%s%s", dir, de->d_name);
            unsigned char *buf = NULL;
            size_t len = 0;
            if (sb_read_file(full, 1 << 26, &buf, &len, NULL) != SB_OK || len == 0) {
                free(buf);
                continue;
            }
            /* small fixtures: thumbnails of 24 and 8 px so that every one is reduced */
            int big = strncmp(de->d_name, "Landscape", 9) == 0 || d == 1;
            nplanar += check_planar(rel, buf, len, big ? 1024 : 24, big ? 256 : 8, 1.0);
            struct image_thumb t[1] = { { .px = 64 } };
            int planar = 0;
            if (image_jpeg_thumbnails(buf, len, "x.jpg", 200u * 1000u * 1000u, 85, t, 1, &planar,
                                      NULL, NULL) != SB_OK)
                nfail++;
            free(t[0].jpeg);
            free(buf);
        }
        if (dp)
            closedir(dp);
    }
    fprintf(stderr, "  planar thumbnails: %d JPEG fixtures on the planar path, %d failing\n",
            nplanar, nfail);
    /* odd thumbnail sizes on the axes each orientation reverses (chroma samples moved) */
    for (int o = 1; o <= 8; o++) {
        char name[32];
        snprintf(name, sizeof(name), "orient_%d.jpg", o);
        unsigned char *buf = NULL;
        size_t len = 0;
        CHECK_EQ_INT(SB_OK, sb_read_file(path_of(name), 1 << 20, &buf, &len, NULL));
        CHECK_EQ_INT(1, check_planar(name, buf, len, 23, 7, 0.5));
        CHECK_EQ_INT(1, check_planar(name, buf, len, 37, 9, 0.5));
        free(buf);
    }
    CHECK(nplanar >= 20);
    CHECK(nfail >= 2); /* truncated ones fail as on the RGB path */

    /* each chroma sampling, from a 450x300 RGB picture encoded here */
    for (size_t i = 0; i < sizeof(samplings) / sizeof(samplings[0]); i++) {
        unsigned long jlen = 0;
        unsigned char *jpeg = sampled_fixture(samplings[i], 95, &jlen);
        char what[32];
        snprintf(what, sizeof(what), "sampling %d", samplings[i]);
        if (jpeg) {
            CHECK_EQ_INT(1, check_planar(what, jpeg, jlen, 200, 64, 1.0));
            CHECK_EQ_INT(1, check_planar(what, jpeg, jlen, 1024, 256, 1.0)); /* no reduction */
        }
        tjFree(jpeg);
    }
    /* grayscale and CMYK JPEGs, other formats, garbage: left to the RGB path */
    unsigned long glen = 0;
    unsigned char *gray = sampled_fixture(TJSAMP_GRAY, 90, &glen);
    if (gray)
        CHECK_EQ_INT(0, check_planar("gray", gray, glen, 200, 64, 0));
    tjFree(gray);
    static const char *const others[] = { "cmyk_adobe.jpg", "cmyk_synthetic.jpg",
                                          "orient_upright.png", "lossy_vp8_hopper.webp" };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        CHECK_EQ_INT(SB_OK, sb_read_file(path_of(others[i]), 1 << 26, &buf, &len, NULL));
        CHECK_EQ_INT(0, check_planar(others[i], buf, len, 64, 16, 0));
        free(buf);
    }
    CHECK_EQ_INT(0, check_planar("garbage", (const unsigned char *)"hello", 5, 64, 16, 0));
    /* the pixel limit and bad arguments */
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(path_of("Landscape_1.jpg"), 1 << 26, &buf, &len, NULL));
    struct image_thumb t[2] = { { .px = 1024 }, { .px = 256 } };
    int planar = 0;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_ETOOBIG,
                 image_jpeg_thumbnails(buf, len, "x.jpg", 1000, 85, t, 2, &planar, NULL, &err));
    CHECK(planar == 1 && t[0].jpeg == NULL);
    CHECK_EQ_INT(SB_EINVAL,
                 image_jpeg_thumbnails(buf, len, "x.jpg", 1u << 30, 0, t, 2, &planar, NULL, NULL));
    t[1].px = 0;
    CHECK_EQ_INT(SB_EINVAL,
                 image_jpeg_thumbnails(buf, len, "x.jpg", 1u << 30, 85, t, 2, &planar, NULL, NULL));
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* The model input from the JPEG planes (image_jpeg_planes, the indexer's embed stage) */

/* A model's resize as the callback of struct image_model_input: CLIP's shortest edge (long
 * edge int(S * long / short), as transformers computes it) or SigLIP's S x S. */
struct model_geo {
    int S, square;
    enum image_filter f;
};

static int geo_size(void *user, int w, int h, int *ow, int *oh, enum image_filter *f)
{
    const struct model_geo *g = user;
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int nl = (int)((double)g->S * (double)l / (double)s);
    *ow = g->square ? g->S : w <= h ? g->S : nl;
    *oh = g->square ? g->S : w <= h ? nl : g->S;
    *f = g->f;
    return 1;
}

static int geo_none(void *user, int w, int h, int *ow, int *oh, enum image_filter *f)
{
    (void)user, (void)w, (void)h, (void)ow, (void)oh, (void)f;
    return 0;
}

/* The planes path's model input must be this close to the RGB path's (PSNR, dB). The fast
 * resizer's rounding, resizing the chroma planes instead of libjpeg's upsampled chroma, and
 * JFIF colour conversion after the resize instead of before, measured on the fixtures: 33 dB
 * at worst (a 257x193 picture decoded at 1/8, where libjpeg replicates the chroma instead
 * of interpolating it, squashed to 24x24), 40-55 dB otherwise. A mirrored axis falls to 8-20
 * dB and a pixel of shift in a reduction to 11-27 dB on every fixture with detail (checked). */
#define MODEL_MIN_DB 31.0
static int nsame_thumbs; /* cases where check_model compared the thumbnails */

/* ref shifted by one pixel right and down (the first row and column repeated). */
static struct image *shifted(const struct image *ref)
{
    struct image *o = image_new(ref->w, ref->h);
    for (int y = 0; o && y < ref->h; y++)
        for (int x = 0; x < ref->w; x++)
            memcpy(o->px + ((size_t)y * ref->w + x) * 3,
                   ref->px + ((size_t)(y ? y - 1 : 0) * ref->w + (x ? x - 1 : 0)) * 3, 3);
    return o;
}

/* image_jpeg_planes's model input (with thumbnails of thumb_px and thumb_px / 4 when
 * thumb_px > 0) against the RGB path the crawler takes otherwise: decode covering the same
 * sizes, upright, image_resize() to the same size. Same outcome, same size, PSNR >=
 * MODEL_MIN_DB; when controls, a shifted and a mirrored RGB path must fall below it (the
 * threshold catches broken geometry). Returns the planar flag. */
static int check_model(const char *what, const unsigned char *buf, size_t len, int thumb_px,
                       struct model_geo g, bool controls)
{
    struct image_thumb t[2] = { { .px = thumb_px }, { .px = thumb_px / 4 } };
    struct image_model_input mi = { g.S, geo_size, &g };
    struct image *got = NULL, *img = NULL, *ref = NULL;
    struct image_info info = { 0 };
    struct sb_err err = { 0 };
    int planar = -1, nt = thumb_px > 0 ? 2 : 0;
    int rc = image_jpeg_planes(buf, len, "x.jpg", 200u * 1000u * 1000u, 85, t, nt, &mi, &got,
                               &planar, &info, &err);
    CHECK(planar == 0 || planar == 1);
    if (!planar || rc) {
        CHECK(got == NULL && t[0].jpeg == NULL);
        if (!planar)
            CHECK_EQ_INT(SB_OK, rc);
    }
    struct image_decode_params p = image_decode_default_params();
    p.min_long = thumb_px;
    p.min_short = g.S;
    int want_rc = planar ? image_decode(buf, len, "x.jpg", &p, &img, NULL, NULL) : SB_OK;
    CHECK_EQ_INT(want_rc, rc);
    if (planar && !rc && img) {
        int rw, rh;
        enum image_filter f;
        geo_size(&g, img->w, img->h, &rw, &rh, &f);
        ref = rw == img->w && rh == img->h ? image_orient(img, 1) : image_resize(img, rw, rh, f);
        CHECK(got && ref && got->w == ref->w && got->h == ref->h);
        double db = img_psnr(ref, got), mean = 0;
        int mx = img_diff(ref, got, &mean);
        struct image *mir = ref ? image_orient(ref, 2) : NULL, *sh = ref ? shifted(ref) : NULL;
        double db_mir = img_psnr(mir, got), db_sh = img_psnr(sh, got);
        fprintf(stderr,
                "  model %-28s %4dx%-4d S %3d%s: PSNR %.1f dB (max %d, mean %.2f), shifted %.1f, "
                "mirrored %.1f\n",
                what, got ? got->w : 0, got ? got->h : 0, g.S, g.square ? " sq" : "", db, mx, mean,
                db_sh, db_mir);
        CHECK(db >= MODEL_MIN_DB);
        /* a pixel's shift shows where the model input is a reduction (a source pixel is not
         * a fraction of one) */
        if (controls)
            CHECK(db_mir < MODEL_MIN_DB && (ref->w >= img->w || db_sh < MODEL_MIN_DB));
        image_free(mir);
        image_free(sh);
        /* the thumbnails are image_jpeg_thumbnails's, byte for byte, when the model asks no
         * larger decode */
        struct image_thumb t2[2] = { { .px = thumb_px }, { .px = thumb_px / 4 } };
        struct image *thumb_dec = NULL;
        int planar2 = 0;
        p.min_short = 0;
        if (nt &&
            image_jpeg_thumbnails(buf, len, "x.jpg", 1u << 30, 85, t2, 2, &planar2, NULL, NULL) ==
                SB_OK &&
            image_decode(buf, len, "x.jpg", &p, &thumb_dec, NULL, NULL) == SB_OK &&
            thumb_dec->w == img->w) {
            CHECK(t[0].len == t2[0].len && !memcmp(t[0].jpeg, t2[0].jpeg, t[0].len));
            CHECK(t[1].len == t2[1].len && !memcmp(t[1].jpeg, t2[1].jpeg, t[1].len));
            nsame_thumbs++;
        }
        image_free(thumb_dec);
        free(t2[0].jpeg);
        free(t2[1].jpeg);
    }
    free(t[0].jpeg);
    free(t[1].jpeg);
    image_free(got);
    image_free(img);
    image_free(ref);
    return planar;
}

static unsigned char *read_rel(const char *dir, const char *name, size_t *len)
{
    char full[1700];
    snprintf(full, sizeof(full), "%s/%s/%s", data_dir, dir, name);
    unsigned char *buf = NULL;
    if (sb_read_file(full, 1 << 26, &buf, len, NULL) != SB_OK || *len == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* image_jpeg_planes's model input against the RGB path (decode, orient, Pillow-exact resize)
 * on every JPEG fixture (the 8 orientations, odd sizes, progressive, arithmetic-coded, broken
 * and truncated files: the same outcome), each chroma sampling, reductions and enlargements,
 * CLIP and SigLIP geometry; greyscale, CMYK and non-JPEG files are left to the RGB path. */
static void test_jpeg_planar_model(void)
{
    static const char *const dirs[] = { "images", "images/broken", "models/photos" };
    const struct model_geo clip224 = { 224, 0, IMAGE_FILTER_BICUBIC };
    int nplanar = 0, ncontrols = 0;
    for (size_t d = 0; d < 3; d++) {
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s/%s", data_dir, dirs[d]);
        DIR *dp = opendir(dir);
        CHECK(dp != NULL);
        struct dirent *de;
        while (dp && (de = readdir(dp))) {
            size_t n = strlen(de->d_name);
            if (n < 4 || strcmp(de->d_name + n - 4, ".jpg") != 0)
                continue;
            size_t len = 0;
            unsigned char *buf = read_rel(dirs[d], de->d_name, &len);
            if (!buf)
                continue;
            /* reduced for every fixture (S below the short edge), and CLIP's 224 with the
             * crawler's thumbnails */
            struct model_geo small = { 7, 0, IMAGE_FILTER_BICUBIC };
            int planar = check_model(de->d_name, buf, len, 0, small, false);
            nplanar += planar;
            /* detail enough for a pixel of shift to show: everything but the tiny fixtures */
            bool detail = strstr(de->d_name, "orient_") || d == 2;
            ncontrols += planar && detail;
            check_model(de->d_name, buf, len, 1024, clip224, planar && detail);
            struct model_geo sq = { 24, 1, IMAGE_FILTER_BICUBIC };
            check_model(de->d_name, buf, len, 0, sq, false);
            free(buf);
        }
        if (dp)
            closedir(dp);
    }
    fprintf(stderr, "  planar model input: %d JPEG fixtures on the planar path\n", nplanar);
    CHECK(nplanar >= 30);
    CHECK(ncontrols >= 19);
    CHECK(nsame_thumbs >= 2);
    /* each chroma sampling of a 450x300 picture, reduced (the indexer's case), with bilinear
     * and Lanczos too */
    for (size_t i = 0; i < sizeof(samplings) / sizeof(samplings[0]); i++) {
        unsigned long jlen = 0;
        unsigned char *jpeg = sampled_fixture(samplings[i], 95, &jlen);
        char what[32];
        snprintf(what, sizeof(what), "sampling %d", samplings[i]);
        if (jpeg) {
            CHECK_EQ_INT(1, check_model(what, jpeg, jlen, 200, clip224, true));
            struct model_geo g = { 97, 0, IMAGE_FILTER_BILINEAR };
            CHECK_EQ_INT(1, check_model(what, jpeg, jlen, 0, g, true));
            g = (struct model_geo){ 61, 1, IMAGE_FILTER_LANCZOS };
            CHECK_EQ_INT(1, check_model(what, jpeg, jlen, 0, g, true));
        }
        tjFree(jpeg);
    }
    /* greyscale and CMYK JPEGs, other formats, garbage: the RGB path */
    unsigned long glen = 0;
    unsigned char *gray = sampled_fixture(TJSAMP_GRAY, 90, &glen);
    if (gray)
        CHECK_EQ_INT(0, check_model("gray", gray, glen, 200, clip224, false));
    tjFree(gray);
    static const char *const others[] = { "cmyk_adobe.jpg", "cmyk_synthetic.jpg",
                                          "orient_upright.png", "lossy_vp8_hopper.webp" };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        size_t len = 0;
        unsigned char *buf = read_rel("images", others[i], &len);
        CHECK(buf != NULL);
        if (buf)
            CHECK_EQ_INT(0, check_model(others[i], buf, len, 64, clip224, false));
        free(buf);
    }
    /* a model that does not resize declines: the RGB path */
    size_t len = 0;
    unsigned char *buf = read_rel("images", "Landscape_1.jpg", &len);
    CHECK(buf != NULL);
    struct image_model_input none = { 224, geo_none, NULL };
    struct image *got = NULL;
    int planar = -1;
    struct image_thumb t[1] = { { .px = 64 } };
    CHECK_EQ_INT(SB_OK, image_jpeg_planes(buf, len, "x.jpg", 1u << 30, 85, t, 1, &none, &got,
                                          &planar, NULL, NULL));
    CHECK(planar == 0 && got == NULL && t[0].jpeg == NULL);
    /* so does a strip whose model input would be huge (224 x 112000 px) */
    struct image *strip = image_new(4000, 8);
    tjhandle sc = tjInitCompress();
    unsigned char *sj = NULL;
    unsigned long sjlen = 0;
    CHECK(strip && sc);
    if (strip && sc) {
        for (size_t i = 0; i < (size_t)4000 * 8 * 3; i++)
            strip->px[i] = (unsigned char)(i * 7);
        CHECK_EQ_INT(
            0, tjCompress2(sc, strip->px, 4000, 0, 8, TJPF_RGB, &sj, &sjlen, TJSAMP_420, 90, 0));
        CHECK_EQ_INT(0, check_model("strip", sj, sjlen, 0, clip224, false));
    }
    if (sj)
        tjFree(sj);
    if (sc)
        tjDestroy(sc);
    image_free(strip);
    /* the pixel limit and bad arguments */
    struct model_geo g = clip224;
    struct image_model_input mi = { 224, geo_size, &g };
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_ETOOBIG, image_jpeg_planes(buf, len, "x.jpg", 1000, 85, t, 1, &mi, &got,
                                               &planar, NULL, &err));
    CHECK(planar == 1 && got == NULL && t[0].jpeg == NULL);
    CHECK_EQ_INT(SB_EINVAL, image_jpeg_planes(buf, len, "x.jpg", 1u << 30, 85, t, 0, NULL, &got,
                                              &planar, NULL, NULL));
    CHECK_EQ_INT(SB_EINVAL, image_jpeg_planes(buf, len, "x.jpg", 1u << 30, 85, t, 1, &mi, NULL,
                                              &planar, NULL, NULL));
    mi.size = NULL;
    CHECK_EQ_INT(SB_EINVAL, image_jpeg_planes(buf, len, "x.jpg", 1u << 30, 85, t, 1, &mi, &got,
                                              &planar, NULL, NULL));
    free(buf);
}

static void test_thumbnail_encode(void)
{
    struct image *img = load("Landscape_1.jpg", NULL, NULL, NULL);
    CHECK(img != NULL);
    if (!img)
        return;
    struct image *t = image_thumbnail(img, 256);
    CHECK(t && t->w == 256 && t->h == 171);
    unsigned char *jpeg = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(0, image_encode_jpeg(t, 85, &jpeg, &len, &err));
    CHECK(len > 100 && jpeg && jpeg[0] == 0xFF && jpeg[1] == 0xD8);
    struct image *back = NULL;
    struct image_info info = { 0 };
    CHECK_EQ_INT(0, image_decode(jpeg, len, "thumb.jpg", NULL, &back, &info, &err));
    double mean = 0;
    int mx = img_diff(t, back, &mean);
    CHECK(mx >= 0 && mean < 4);
    CHECK_EQ_INT(SB_EINVAL, image_encode_jpeg(t, 0, &jpeg, &len, NULL));
    struct image *small = image_thumbnail(t, 1000); /* never enlarges */
    CHECK(small && small->w == 256 && small->h == 171);
    image_free(small);
    image_free(back);
    free(jpeg);
    image_free(t);
    image_free(img);
}

/* ---------------------------------------------------------------------------------------- */
/* Metadata. Expected values are what `exiftool -n -json FILE` reports. */

static void test_meta(void)
{
    static const struct {
        const char *file;
        const char *taken, *tz, *subsec, *make, *model, *lens, *software;
        int64_t unix;
        double focal, focal35, fnum, expo;
        int iso, orientation, w, h;
        double lat, lon, alt;
    } cases[] = {
        { "meta_full.jpg",
          "2021-07-14T23:45:56",
          "-05:30",
          "123",
          "TestMake",
          "Test Model 1",
          "Test Lens 4.2mm f/2.8",
          "shoebox gen",
          1626306356 + 19800,
          4.2,
          26,
          2.8,
          0.004,
          800,
          6,
          16,
          8,
          -33.8598333333333,
          -70.6666666666667,
          -12.5 },
        { "Canon_40D.jpg",
          "2008-05-30T15:56:01",
          "",
          "00",
          "Canon",
          "Canon EOS 40D",
          "",
          "GIMP 2.4.5",
          1212162961,
          135,
          DNAN,
          7.1,
          0.00625,
          100,
          1,
          100,
          68,
          DNAN,
          DNAN,
          DNAN },
        { "Nikon_D70.jpg",
          "2008-03-15T09:52:01",
          "",
          "",
          "NIKON CORPORATION",
          "NIKON D70",
          "",
          "GIMP 2.4.5",
          1205574721,
          100,
          150,
          9,
          0.005,
          200,
          1,
          100,
          66,
          DNAN,
          DNAN,
          DNAN },
        { "exiftool_FujiS1Pro_gps_stub.jpg",
          "2002-07-13T15:58:28",
          "",
          "",
          "FUJIFILM",
          "FinePixS1Pro",
          "",
          "Adobe Photoshop 7.0",
          1026575908,
          DNAN,
          DNAN,
          0.640234375,
          DNAN,
          0,
          1,
          2400,
          1600,
          54.9896666666667,
          -1.91416666666667,
          DNAN },
        /* exiftool's ISO 100 here is a Composite from the Canon maker note: no EXIF ISO */
        { "flower_with_exif.webp",
          "2003-12-14T12:01:44",
          "",
          "",
          "Canon",
          "Canon PowerShot S40",
          "",
          "",
          1071403304,
          21.3125,
          DNAN,
          4.9,
          0.002,
          0,
          1,
          2272,
          1704,
          DNAN,
          DNAN,
          DNAN },
        { "exiftool_NikonD70_stub.nef",
          "2004-06-09T16:02:35",
          "",
          "00",
          "NIKON CORPORATION",
          "NIKON D70",
          "",
          "Nikon Capture Editor 4.3.1 W",
          1086796955,
          18,
          DNAN,
          3.5,
          0.05,
          200,
          1,
          0,
          0,
          DNAN,
          DNAN,
          DNAN },
        /* exiftool: Orientation 6; libtiff gives the same via the TIFF tag */
        { "bilevel_g4_orientation6.tif",
          "",
          "",
          "",
          "",
          "",
          "",
          "IrfanView",
          0,
          DNAN,
          DNAN,
          DNAN,
          DNAN,
          0,
          6,
          0,
          0,
          DNAN,
          DNAN,
          DNAN },
        /* exiftool: DateTimeOriginal 2099:09:29 10:10:10, ExposureTime and GPSLatitude
         * 4294967295. libexif abandons IFD0 at its broken JPEGInterchangeFormat entry, before
         * the ExifOffset/GPS pointers, so only the leading IFD0 strings survive (exiftool
         * recovers more); the nonsense values must in any case not come through. */
        { "broken/exif_gps_bogus_values.jpg",
          "",
          "",
          "",
          "Make",
          "XXX-XXX",
          "",
          "PIL",
          0,
          DNAN,
          DNAN,
          DNAN,
          DNAN,
          0,
          1,
          0,
          0,
          DNAN,
          DNAN,
          DNAN },
        /* Canon CR3: IFD0, EXIF and GPS IFDs in the CMT1, CMT2 and CMT4 boxes; exiftool shows the
         * lens from the maker note, the EXIF IFD has the same LensModel */
        { "Canon_EOS_R6_pruned.CR3",
          "2021-05-12T12:21:21",
          "+02:00",
          "92",
          "Canon",
          "Canon EOS R6",
          "RF70-200mm F2.8 L IS USM",
          "",
          1620814881,
          200,
          DNAN,
          25,
          0.25,
          100,
          1,
          3408,
          2272,
          DNAN,
          DNAN,
          DNAN },
        { "exiftool_CanonM50_stub.cr3",
          "2018-02-21T12:08:56",
          "+00:00",
          "21",
          "Canon",
          "Canon EOS M50",
          "EF-M15-45mm f/3.5-6.3 IS STM",
          "",
          1519214936,
          15,
          DNAN,
          3.5,
          0.0125,
          12800,
          1,
          6000,
          4000,
          DNAN,
          DNAN,
          DNAN },
        /* exiftool: DateTimeOriginal 0000:00:00 00:00:00, GPSLatitude 213: both rejected */
        { "meta_bad_gps.jpg",
          "",
          "",
          "",
          "BadMake",
          "",
          "",
          "",
          0,
          DNAN,
          DNAN,
          DNAN,
          DNAN,
          0,
          1,
          0,
          0,
          DNAN,
          DNAN,
          DNAN },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char *buf = NULL;
        size_t len = 0;
        CHECK_EQ_INT(0, sb_read_file(path_of(cases[i].file), 1 << 26, &buf, &len, NULL));
        struct photo_meta m;
        struct sb_err err = { 0 };
        fprintf(stderr, "  meta %s\n", cases[i].file);
        CHECK_EQ_INT(0, meta_read(buf, len, image_sniff(buf, len, cases[i].file), &m, &err));
        CHECK_EQ_INT(1, m.has_exif);
        CHECK_EQ_STR(cases[i].taken, m.taken_at);
        CHECK_EQ_STR(cases[i].tz, m.tz_offset);
        CHECK_EQ_STR(cases[i].subsec, m.subsec);
        CHECK_EQ_STR(cases[i].make, m.make);
        CHECK_EQ_STR(cases[i].model, m.model);
        CHECK_EQ_STR(cases[i].lens, m.lens);
        CHECK_EQ_STR(cases[i].software, m.software);
        if (cases[i].taken[0])
            CHECK_EQ_INT(cases[i].unix, m.taken_unix);
#define CHECK_OPT(want, got)                                                                       \
    do {                                                                                           \
        if (isnan(want))                                                                           \
            CHECK(isnan(got));                                                                     \
        else                                                                                       \
            CHECK_NEAR((want), (got), 1e-6);                                                       \
    } while (0)
        CHECK_OPT(cases[i].focal, m.focal_mm);
        CHECK_OPT(cases[i].focal35, m.focal35_mm);
        CHECK_OPT(cases[i].fnum, m.fnumber);
        CHECK_OPT(cases[i].expo, m.exposure_s);
        CHECK_OPT(cases[i].lat, m.gps_lat);
        CHECK_OPT(cases[i].lon, m.gps_lon);
        CHECK_OPT(cases[i].alt, m.gps_alt);
#undef CHECK_OPT
        CHECK_EQ_INT(cases[i].iso, m.iso);
        CHECK_EQ_INT(cases[i].orientation, m.orientation);
        CHECK_EQ_INT(cases[i].w, m.width);
        CHECK_EQ_INT(cases[i].h, m.height);
        free(buf);
    }
    /* no EXIF at all: fine, nothing set */
    unsigned char *buf = NULL;
    size_t len = 0;
    struct photo_meta m;
    CHECK_EQ_INT(0, sb_read_file(path_of("lossy_vp8_hopper.webp"), 1 << 26, &buf, &len, NULL));
    CHECK_EQ_INT(0, meta_read(buf, len, IMAGE_FMT_UNKNOWN, &m, NULL));
    CHECK_EQ_INT(0, m.has_exif);
    CHECK(isnan(m.gps_lat) && m.orientation == 1 && m.taken_at[0] == 0);
    free(buf);
    /* meta_parse_exif on junk */
    CHECK_EQ_INT(SB_EFORMAT, meta_parse_exif((const unsigned char *)"nonsense", 8, &m, NULL));
    CHECK_EQ_INT(0, meta_parse_exif((const unsigned char *)"II*\0\x08\0\0\0\0\0", 10, &m, NULL));
    CHECK_EQ_INT(0, m.has_exif);
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile files: every one decodes or fails with a clean error; some have a known outcome. */

static int expected_rc(const char *name)
{
    static const struct {
        const char *file;
        int rc;
    } known[] = {
        { "zero_bytes.jpg", SB_EFORMAT },
        { "text_file_named.jpg", SB_EFORMAT },
        { "gif_decompression_bomb.gif", SB_ECORRUPT }, /* truncated in the frame header */
        { "gif_zero_width.gif", SB_ECORRUPT },
        { "truncated_progressive.jpg", SB_ECORRUPT },
        { "truncated_400bytes.jpg", SB_ECORRUPT },
        { "pixel6_ultrahdr_truncated.jpg", SB_ECORRUPT },
        { "truncated_app14_segment.jpg", SB_OK }, /* PIL decodes it */
        { "truncated_image.png", SB_ECORRUPT },
        { "png_decompression_bomb_text.png", SB_OK }, /* the text is dropped, pixels fine */
        { "gif_frame_extents_bomb.gif", SB_OK },
        { "exif_multiple_app1.jpg", SB_OK },
        { "ico_decompression_bomb.ico", SB_EFORMAT },
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(known[i].file, name) == 0)
            return known[i].rc;
    return -1;
}

static void decode_dir(const char *dir, int check_known)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct image_decode_params p = image_decode_default_params();
        p.max_pixels = 50u * 1000 * 1000;
        p.min_long = 512;
        struct image *img = NULL;
        struct sb_err err = { 0 };
        int rc = image_decode_file(path, &p, &img, NULL, &err);
        if (rc) {
            CHECK(img == NULL);
            CHECK(strncmp(err.msg, "decode '", 8) == 0 || strncmp(err.msg, "read '", 6) == 0);
        } else {
            CHECK(img && img->w > 0 && img->h > 0);
        }
        fprintf(stderr, "  %-44s rc %d %s\n", e->d_name, rc, rc ? err.msg : "");
        if (check_known) {
            int want = expected_rc(e->d_name);
            if (want >= 0)
                CHECK_EQ_INT(want, rc);
        }
        image_free(img);
        unsigned char *buf = NULL;
        size_t len = 0;
        if (sb_read_file(path, 1 << 28, &buf, &len, NULL) == 0) {
            struct photo_meta m;
            CHECK_EQ_INT(0, meta_read(buf, len, IMAGE_FMT_UNKNOWN, &m, NULL));
            CHECK(m.orientation >= 1 && m.orientation <= 8);
            free(buf);
        }
        n++;
    }
    closedir(d);
    CHECK(n > 0);
}

/* Raws libraw cannot develop: a CR3 whose sensor data was stripped (libraw 0.20 cannot open
 * it) gives its largest embedded preview (PRVW 1620x1080, not THMB 160x120) with the size and
 * orientation of its EXIF; stubs whose sensor data is missing (libraw would develop whatever
 * its buffers held) fail with a clear error, the same every time. */
static void test_raw_fallbacks(void)
{
    struct image_decode_params p = image_decode_default_params();
    p.min_long = 1024;
    struct image_info info = { 0 };
    int rc;
    struct image *img = load("Canon_EOS_R6_pruned.CR3", &p, &info, &rc);
    CHECK_EQ_INT(SB_OK, rc);
    CHECK_EQ_INT(IMAGE_FMT_RAW, info.format);
    CHECK_EQ_INT(3408, info.width);
    CHECK_EQ_INT(2272, info.height);
    CHECK_EQ_INT(1, info.orientation);
    /* the preview itself, decoded as a JPEG from where it starts in the file */
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(0, sb_read_file(path_of("Canon_EOS_R6_pruned.CR3"), 1 << 26, &buf, &len, NULL));
    const size_t prvw = 102176;
    CHECK(len > prvw + 4 && buf[prvw] == 0xFF && buf[prvw + 1] == 0xD8);
    struct image *want = NULL;
    struct image_info wi = { 0 };
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_OK, image_decode(buf + prvw, len - prvw, "prvw.jpg", &p, &want, &wi, &err));
    CHECK_EQ_INT(1620, wi.width);
    CHECK_EQ_INT(1080, wi.height);
    CHECK_EQ_INT(0, img_diff(img, want, NULL));
    image_free(want);
    image_free(img);
    free(buf);
    /* the preview over the pixel limit: that error, not a picture nor libraw's */
    p.max_pixels = 1000000;
    struct sb_err big = { 0 };
    img = NULL;
    CHECK_EQ_INT(SB_ETOOBIG,
                 image_decode_file(path_of("Canon_EOS_R6_pruned.CR3"), &p, &img, NULL, &big));
    CHECK(img == NULL && strstr(big.msg, "1620x1080 pixels is over the limit") != NULL);
    p.max_pixels = image_decode_default_params().max_pixels;

    static const char *const stubs[] = { "exiftool_CanonM50_stub.cr3",
                                         "exiftool_NikonD70_stub.nef" };
    for (size_t i = 0; i < sizeof(stubs) / sizeof(stubs[0]); i++) {
        for (int run = 0; run < 2; run++) {
            struct sb_err e = { 0 };
            struct image *bad = NULL;
            struct image_info bi = { 0 };
            rc = image_decode_file(path_of(stubs[i]), &p, &bad, &bi, &e);
            fprintf(stderr, "  %s: %s\n", stubs[i], e.msg);
            CHECK_EQ_INT(SB_ECORRUPT, rc);
            CHECK(bad == NULL);
            CHECK(strstr(e.msg, "raw data cut short or corrupt") != NULL);
            CHECK(strstr(e.msg, "no embedded preview") != NULL);
        }
    }
}

static void test_broken(void)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/images/broken", data_dir);
    decode_dir(dir, 1);
    /* a 44-byte GIF whose frame claims 65535 columns: its data ends long before */
    struct image_decode_params p = image_decode_default_params();
    struct image *img = NULL;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_ECORRUPT, image_decode_file(path_of("broken/gif_decompression_bomb.gif"), &p,
                                                &img, NULL, &err));
    CHECK(img == NULL && strstr(err.msg, "truncated GIF data") != NULL);
    /* Optional: the whole shared corpus when it is around (developer machines). */
    const char *shared = getenv("SHOEBOX_SHARED_TESTDATA");
    if (shared && shared[0]) {
        static const char *const sub[] = { "broken",       "formats/jpeg", "formats/png",
                                           "formats/webp", "formats/heic", "formats/avif",
                                           "formats/tiff", "formats/gif",  "formats/raw" };
        for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
            snprintf(dir, sizeof(dir), "%s/%s", shared, sub[i]);
            decode_dir(dir, 0);
        }
    }
}

int main(void)
{
    const char *td = getenv("SHOEBOX_TESTDATA");
    snprintf(data_dir, sizeof(data_dir), "%s", td && td[0] ? td : "tests/data");
    test_sniff_files();
    test_sniff_bytes();
    test_orient_small();
    test_orientation_files();
    test_dct_scaling();
    test_against_pil();
    test_formats();
    test_max_pixels();
    test_resize();
    test_resize_fast();
    test_thumbnail_paths();
    test_jpeg_planar_thumbs();
    test_jpeg_planar_model();
    test_thumbnail_encode();
    test_meta();
    test_raw_fallbacks();
    test_broken();
    return check_exit();
}
