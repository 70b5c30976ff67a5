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

/* Tests: 0 makes image_resize_fast() use its scalar code (the same bytes), 1 (the default)
 * its SIMD code where the CPU has it. */
void img_resize_fast_set_simd(int on);

#endif
