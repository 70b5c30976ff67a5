/* sniff.c - format recognition from the first bytes of a file (the extension is consulted only
 * to tell TIFF-based camera raws from plain TIFF). */
#include "internal.h"

#include <string.h>

const char *image_format_name(enum image_format f)
{
    switch (f) {
    case IMAGE_FMT_JPEG:
        return "jpeg";
    case IMAGE_FMT_PNG:
        return "png";
    case IMAGE_FMT_WEBP:
        return "webp";
    case IMAGE_FMT_HEIF:
        return "heif";
    case IMAGE_FMT_AVIF:
        return "avif";
    case IMAGE_FMT_TIFF:
        return "tiff";
    case IMAGE_FMT_GIF:
        return "gif";
    case IMAGE_FMT_RAW:
        return "raw";
    case IMAGE_FMT_UNKNOWN:
        break;
    }
    return "unknown";
}

static int has_prefix(const unsigned char *buf, size_t len, const char *magic, size_t n)
{
    return len >= n && memcmp(buf, magic, n) == 0;
}

/* TIFF-container raws that carry a plain TIFF signature: only the extension tells them. */
static const char *const tiff_raw_exts[] = {
    ".cr2", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2", ".pef",
    ".srw", ".raf", ".3fr", ".erf", ".kdc", ".dcr", ".mef", ".mos", ".iiq", ".rwl",
};

static int is_raw_name(const char *name)
{
    for (size_t i = 0; i < sizeof(tiff_raw_exts) / sizeof(tiff_raw_exts[0]); i++)
        if (img_name_has_ext(name, tiff_raw_exts[i]))
            return 1;
    return 0;
}

enum brand_kind { BRAND_OTHER, BRAND_HEIF, BRAND_AVIF, BRAND_CRX, BRAND_MIF };

static enum brand_kind brand_kind(const unsigned char *b)
{
    static const char *const heif[] = { "heic", "heix", "hevc", "hevx",
                                        "heim", "heis", "hevm", "hevs" };
    if (memcmp(b, "avif", 4) == 0 || memcmp(b, "avis", 4) == 0)
        return BRAND_AVIF;
    if (memcmp(b, "crx ", 4) == 0)
        return BRAND_CRX;
    if (memcmp(b, "mif1", 4) == 0 || memcmp(b, "msf1", 4) == 0)
        return BRAND_MIF;
    for (size_t i = 0; i < sizeof(heif) / sizeof(heif[0]); i++)
        if (memcmp(b, heif[i], 4) == 0)
            return BRAND_HEIF;
    return BRAND_OTHER;
}

/* ISO-BMFF: the ftyp box's major brand decides; a generic major brand (mif1, msf1, or an
 * unknown one) defers to the compatible brands. */
static enum image_format sniff_ftyp(const unsigned char *buf, size_t len)
{
    if (len < 16 || memcmp(buf + 4, "ftyp", 4) != 0)
        return IMAGE_FMT_UNKNOWN;
    uint32_t box =
        (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
    size_t end = box < 16 ? 16 : box;
    if (end > len)
        end = len;
    enum brand_kind major = brand_kind(buf + 8);
    int any_avif = 0, any_heif = 0, any_mif = 0, any_crx = major == BRAND_CRX;
    for (size_t off = 16; off + 4 <= end; off += 4) {
        enum brand_kind k = brand_kind(buf + off);
        any_avif |= k == BRAND_AVIF;
        any_heif |= k == BRAND_HEIF;
        any_mif |= k == BRAND_MIF;
        any_crx |= k == BRAND_CRX;
    }
    if (any_crx)
        return IMAGE_FMT_RAW;
    if (major == BRAND_AVIF)
        return IMAGE_FMT_AVIF;
    if (major == BRAND_HEIF)
        return IMAGE_FMT_HEIF;
    if (any_avif)
        return IMAGE_FMT_AVIF;
    if (major == BRAND_MIF || any_heif || any_mif)
        return IMAGE_FMT_HEIF;
    return IMAGE_FMT_UNKNOWN;
}

enum image_format image_sniff(const unsigned char *buf, size_t len, const char *name)
{
    if (!buf || len < 3)
        return IMAGE_FMT_UNKNOWN;
    if (buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return IMAGE_FMT_JPEG;
    if (has_prefix(buf, len, "\x89PNG\r\n\x1a\n", 8))
        return IMAGE_FMT_PNG;
    if (has_prefix(buf, len, "GIF87a", 6) || has_prefix(buf, len, "GIF89a", 6))
        return IMAGE_FMT_GIF;
    if (len >= 12 && memcmp(buf, "RIFF", 4) == 0 && memcmp(buf + 8, "WEBP", 4) == 0)
        return IMAGE_FMT_WEBP;
    if (has_prefix(buf, len, "FUJIFILMCCD-RAW", 15))
        return IMAGE_FMT_RAW;
    /* Panasonic RW2 ("IIU\0") and Olympus ORF ("IIRO", "IIRS", "MMOR") bend the TIFF magic. */
    if (has_prefix(buf, len, "IIU\0", 4) || has_prefix(buf, len, "IIRO", 4) ||
        has_prefix(buf, len, "IIRS", 4) || has_prefix(buf, len, "MMOR", 4))
        return IMAGE_FMT_RAW;
    if (has_prefix(buf, len, "\0MRM", 4) || has_prefix(buf, len, "FOVb", 4))
        return IMAGE_FMT_RAW; /* Minolta MRW, Sigma X3F */
    if (has_prefix(buf, len, "II*\0", 4) || has_prefix(buf, len, "MM\0*", 4)) {
        if (len >= 10 && buf[8] == 'C' && buf[9] == 'R')
            return IMAGE_FMT_RAW; /* Canon CR2 marks itself at offset 8 */
        return is_raw_name(name) ? IMAGE_FMT_RAW : IMAGE_FMT_TIFF;
    }
    if (has_prefix(buf, len, "II+\0", 4) || has_prefix(buf, len, "MM\0+", 4))
        return IMAGE_FMT_TIFF; /* BigTIFF */
    return sniff_ftyp(buf, len);
}
