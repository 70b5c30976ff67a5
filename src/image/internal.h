/* internal.h - private helpers shared by the image module's decoders.
 * Every decoder returns pixels in the file's stored orientation and reports the EXIF/TIFF
 * orientation in info->orientation; image_decode() applies it afterwards, so the rotation code
 * lives in one place (image.c). */
#ifndef SHOEBOX_IMAGE_INTERNAL_H
#define SHOEBOX_IMAGE_INTERNAL_H

#include "shoebox/image.h"

#include <stddef.h>
#include <stdint.h>

struct sb_err;

/* The name used in messages: the caller's name, or "<memory>". */
const char *img_label(const char *name);

/* Checks w x h against the limits (positive, fits an int-indexed RGB buffer, <= max_pixels).
 * Returns SB_OK, SB_ECORRUPT (zero/negative size) or SB_ETOOBIG, with a message. */
int img_check_size(int64_t w, int64_t h, uint64_t max_pixels, const char *name, struct sb_err *err);

/* A decoder: buf/len are the whole file; fills *out (stored orientation) and info. */
typedef int (*img_decoder_fn)(const unsigned char *buf, size_t len, const char *name,
                              const struct image_decode_params *p, struct image **out,
                              struct image_info *info, struct sb_err *err);

int img_decode_jpeg(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err);
int img_decode_png(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err);
int img_decode_webp(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err);
int img_decode_heif(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err);
int img_decode_tiff(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err);
int img_decode_gif(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err);
int img_decode_raw(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err);

/* Orientation 1..8 from the file's EXIF (via meta_read), 1 when absent or unreadable. */
int img_exif_orientation(const unsigned char *buf, size_t len, enum image_format fmt);

/* Locates the first APP1 "Exif\0\0" segment of a JPEG; off and n cover the payload starting at
 * "Exif". Returns 1 when found. Tolerates junk before SOI. */
int img_jpeg_find_exif(const unsigned char *buf, size_t len, size_t *off, size_t *n);

/* Offset of the SOI marker (FF D8 FF) within the first bytes of buf, or -1. */
int64_t img_jpeg_find_soi(const unsigned char *buf, size_t len);

/* Case-insensitive: does name end with ext (".nef")? NULL name is never a match. */
int img_name_has_ext(const char *name, const char *ext);

/* Turns W x H pixels of bpp bytes (1 or 3; rows sstride bytes apart, a whole number of
 * pixels) as EXIF orientation o prescribes into dst (H x W for o >= 5, rows dstride bytes
 * apart); o outside 1..8 copies. */
void img_orient_px(unsigned char *dst, size_t dstride, const unsigned char *src, size_t sstride,
                   int W, int H, int bpp, int o);

/* image_thumbnail's size for w x h and a long edge of at most px (never larger than w x h). */
void img_thumb_size(int w, int h, int px, int *tw, int *th);

/* Tests: which code image_resize_fast() and img_resize_fast_plane() use, all giving the same
 * bytes: 0 scalar, 1 SSE2/SSSE3, 2 (the default) AVX2 too; each only where the CPU has it. */
void img_resize_fast_set_simd(int level);

/* One axis of img_resize_fast_plane: in samples to out samples; output sample i is centred
 * at (i + 0.5 - shift) * step input samples when step > 0, else at (i + 0.5) * in / out (PIL's
 * geometry; shift unused). The filter is stretched by width when width > 0, else by the
 * scale (as PIL does). */
struct img_axis {
    int in, out;
    double step, shift, width;
};

/* image_resize_fast's code on bare pixels of bpp bytes (1: a plane, 3: RGB): src rows sstride
 * bytes apart, dst rows dstride apart. Returns 0, -1 when out of memory or given bad
 * arguments, 1 when the filter's weights do not fit 16 bits (never for the filters here). */
int img_resize_fast_plane(const unsigned char *src, size_t sstride, unsigned char *dst,
                          size_t dstride, struct img_axis x, struct img_axis y, int bpp,
                          enum image_filter f);

#endif
