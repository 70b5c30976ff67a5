/* image.h - decoding photos of every format shoebox catalogs into 8-bit RGB, with EXIF
 * orientation applied, at the smallest size that still covers what the caller needs
 * (JPEG DCT scaling, RAW embedded previews); PIL-compatible resampling; JPEG encoding.
 * Inputs are untrusted bytes: every function here returns an error, never crashes.
 * All functions are thread-safe (no shared mutable state). */
#ifndef SHOEBOX_IMAGE_H
#define SHOEBOX_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct sb_err;

enum image_format {
    IMAGE_FMT_UNKNOWN = 0,
    IMAGE_FMT_JPEG,
    IMAGE_FMT_PNG,
    IMAGE_FMT_WEBP,
    IMAGE_FMT_HEIF, /* HEIC / HEIF */
    IMAGE_FMT_AVIF,
    IMAGE_FMT_TIFF,
    IMAGE_FMT_GIF,
    IMAGE_FMT_RAW, /* camera raw via libraw (CR2, NEF, ARW, DNG, RAF, ORF, RW2, CR3, ...) */
};

/* Lower-case short name: "jpeg", "png", ..., "unknown". */
const char *image_format_name(enum image_format f);

/* Recognises the format from the first bytes (at least 32 are useful; fewer is fine).
 * name may be NULL; it is only consulted to tell camera RAW files whose TIFF-like header is
 * ambiguous (a .CR2/.NEF/.DNG with a TIFF signature is RAW, a .tif is TIFF). */
enum image_format image_sniff(const unsigned char *buf, size_t len, const char *name);

/* An 8-bit RGB image, rows top to bottom, pixels interleaved R,G,B, stride = 3 * w. */
struct image {
    int w, h;
    unsigned char *px;
};

/* Allocates a w x h image (contents undefined); NULL on bad size or no memory. */
struct image *image_new(int w, int h);
void image_free(struct image *img); /* NULL is a no-op */

struct image_decode_params {
    /* The decoded image (after orientation) should have long edge >= min_long and short edge
     * >= min_short, unless the original is smaller; decoders that can scale for free (JPEG DCT
     * scaling 1/8..1, RAW embedded preview) pick the smallest output that satisfies both.
     * 0 for both means full size. */
    int min_long, min_short;
    /* Refuse images whose declared pixel count exceeds this (decompression bombs). */
    uint64_t max_pixels;
    /* Apply the EXIF orientation (1..8) so that the image is upright. */
    int apply_orientation;
};

/* min_long = min_short = 0, max_pixels = 200 MP, apply_orientation = 1. */
struct image_decode_params image_decode_default_params(void);

/* What a decode learned about the file besides the pixels. */
struct image_info {
    enum image_format format;
    int width, height; /* full-resolution size as stored, before orientation and scaling */
    int orientation;   /* EXIF orientation 1..8 (1 when absent) */
};

/* Decodes buf. On success *out is a new image the caller frees with image_free(); info (may be
 * NULL) is filled. Errors: SB_EFORMAT (not an image / unsupported), SB_ECORRUPT (truncated,
 * broken), SB_ETOOBIG (over max_pixels), SB_ENOMEM. GIF and animated WebP give their first
 * frame; alpha is dropped as PIL's convert("RGB") drops it (colour kept, not composited; TIFF
 * with unassociated alpha comes out premultiplied, i.e. on black, as libtiff's RGBA reader
 * delivers it); 16-bit is reduced to 8-bit (high byte); CMYK (Adobe-inverted, as PIL assumes)
 * and greyscale become RGB. Truncated JPEG data is SB_ECORRUPT, not a half-grey picture.
 * HEIF/AVIF come out upright from libheif's irot/imir, so their info->orientation is 1.
 * On failure info holds what was learned before it: the format, and for a JPEG whose header
 * was read its size and orientation (width and height 0 when the size is not known). */
int image_decode(const unsigned char *buf, size_t len, const char *name,
                 const struct image_decode_params *p, struct image **out, struct image_info *info,
                 struct sb_err *err);

/* Reads path (read-only) and decodes it as image_decode() does. */
int image_decode_file(const char *path, const struct image_decode_params *p, struct image **out,
                      struct image_info *info, struct sb_err *err);

/* Returns a new image rotated/flipped as EXIF orientation o (1..8) prescribes; o = 1 copies. */
struct image *image_orient(const struct image *img, int o);

/* Resizes to w x h with PIL's resampling filters, as Image.resize() computes them for RGB
 * (separable, antialiased when shrinking: the filter support grows with the scale, 8-bit
 * results rounded and clamped the way PIL's ImagingResample does). */
enum image_filter { IMAGE_FILTER_BILINEAR, IMAGE_FILTER_BICUBIC, IMAGE_FILTER_LANCZOS };
struct image *image_resize(const struct image *img, int w, int h, enum image_filter f);

/* The same filters, several times faster (SIMD, 14-bit weights, vertical pass first) but not
 * bit-exact with PIL: pixels differ from image_resize() by rounding (a level or two). For
 * thumbnails; model preprocessing keeps image_resize(). */
struct image *image_resize_fast(const struct image *img, int w, int h, enum image_filter f);

/* Scales so the long edge is at most px (never enlarges), keeping the aspect ratio: bicubic,
 * via image_resize_fast(). */
struct image *image_thumbnail(const struct image *img, int px);

/* JPEG thumbnails without an RGB image (the indexer's path when only thumbnails need the
 * pixels): decodes DCT-scaled (the smallest scale whose long edge covers t[0].px) straight to
 * the Y, Cb and Cr planes, resizes each plane with image_resize_fast()'s bicubic, turns them
 * upright (EXIF orientation) and encodes each size as 4:2:0 JPEG: no colour conversion either
 * way and half the samples to resize. t[i] gets image_thumbnail()'s size for t[i].px, made
 * from t[i - 1] (from the decode for i = 0), like the RGB path. Fills info as image_decode()
 * does. Sets *planar to 0 and returns SB_OK, doing nothing, when buf is not a 3-component
 * YCbCr JPEG with a known sampling (or its header does not parse): decode to RGB instead,
 * which reports any error. On failure the t[i].jpeg are NULL and info is filled as far as
 * image_decode() fills it on failure. */
struct image_thumb {
    int px;              /* in: the long edge */
    unsigned char *jpeg; /* out: malloc'd JPEG, the caller frees it */
    size_t len;
    int w, h; /* out: upright size */
};
int image_jpeg_thumbnails(const unsigned char *buf, size_t len, const char *name,
                          uint64_t max_pixels, int quality, struct image_thumb *t, int n,
                          int *planar, struct image_info *info, struct sb_err *err);

/* A model's input picture made from the same planes as the thumbnails (the indexer's embed
 * stage: each photo decoded once). size() is given the upright size of the DCT-scaled decode
 * and sets the upright size the model's preprocessing resizes that to and its filter (see
 * clip_preprocess_size()); it returns 0 when the preprocessing does not resize, and the photo
 * is then left to the RGB path. */
struct image_model_input {
    int min_short; /* the decode's short edge covers this (as image_decode_params.min_short) */
    int (*size)(void *user, int w, int h, int *out_w, int *out_h, enum image_filter *f);
    void *user;
};

/* image_jpeg_thumbnails() with, when mi is not NULL, *model set to a new upright RGB image of
 * mi->size()'s size: each plane resized in stored orientation with image_resize_fast()'s
 * filter (the chroma sampled where the luma geometry puts it), turned upright, converted to
 * RGB as libjpeg converts (JFIF YCbCr). Not bit-exact with decoding to RGB and image_resize()
 * (a level or two; tests/test_image.c test_jpeg_planar_model bounds it): for the indexer, not
 * for reference embeddings. n may be 0 when mi is given (no thumbnails). *planar 0 (nothing
 * done, SB_OK) as image_jpeg_thumbnails, or when mi->size() declines. On failure *model is
 * NULL. */
int image_jpeg_planes(const unsigned char *buf, size_t len, const char *name, uint64_t max_pixels,
                      int quality, struct image_thumb *t, int n, const struct image_model_input *mi,
                      struct image **model, int *planar, struct image_info *info,
                      struct sb_err *err);

/* Encodes as baseline JPEG (quality 1..100). *out is malloc'd; the caller frees it. */
int image_encode_jpeg(const struct image *img, int quality, unsigned char **out, size_t *len,
                      struct sb_err *err);

/* ------------------------------------------------------------------------------------------ */
/* Metadata (EXIF) */

enum meta_time_source {
    META_TIME_NONE = 0,
    META_TIME_EXIF,    /* DateTimeOriginal (or DateTimeDigitized / DateTime) */
    META_TIME_TAKEOUT, /* Google Takeout JSON sidecar photoTakenTime */
    META_TIME_MTIME,   /* file modification time */
};

/* Photo metadata. Strings are NUL-terminated, empty when absent; numbers are NaN / 0 when
 * absent as each comment says. */
struct photo_meta {
    char taken_at[32];  /* "YYYY-MM-DDTHH:MM:SS" local time as written by the camera, or "" */
    char tz_offset[8];  /* "+02:00" from OffsetTimeOriginal, or "" when unknown */
    int64_t taken_unix; /* seconds since epoch: UTC when the offset is known, else the local
                           time read as UTC; valid when taken_at is set */
    char subsec[8];     /* SubSecTimeOriginal digits, or "" */
    char make[64], model[64], lens[96], software[64];
    double focal_mm;                  /* NaN when absent */
    double focal35_mm;                /* NaN when absent */
    double fnumber;                   /* NaN when absent */
    double exposure_s;                /* NaN when absent */
    int iso;                          /* 0 when absent */
    double gps_lat, gps_lon, gps_alt; /* NaN when absent or out of range */
    int orientation;                  /* 1..8, 1 when absent or invalid */
    int width, height; /* EXIF PixelX/YDimension (0 when absent); not trusted for decoding */
    int has_exif;      /* 1 when an EXIF block was found and parsed */
};

/* Sets every field to its "absent" value. */
void photo_meta_init(struct photo_meta *m);

/* Parses EXIF from a whole file's bytes of any supported format (JPEG APP1, TIFF and
 * TIFF-based RAW, PNG eXIf, WebP EXIF chunk, HEIF/AVIF Exif item). Missing EXIF is not an
 * error (returns SB_OK with has_exif = 0); malformed EXIF yields whatever parsed cleanly. */
int meta_read(const unsigned char *buf, size_t len, enum image_format fmt, struct photo_meta *m,
              struct sb_err *err);

/* Parses a raw EXIF/TIFF block (starting with "Exif\0\0" or directly with "II*\0"/"MM\0*").
 * Exposed for fuzzing. */
int meta_parse_exif(const unsigned char *buf, size_t len, struct photo_meta *m, struct sb_err *err);

#endif
