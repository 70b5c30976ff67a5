/* exif.c - EXIF metadata via libexif: locating the EXIF block in each container format and
 * turning the tags shoebox catalogs into struct photo_meta. Values are checked (dates, GPS
 * ranges, zero denominators) because cameras and editors write nonsense surprisingly often. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <libexif/exif-data.h>
#include <libheif/heif.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/demux.h>

/* libexif takes an unsigned int length; TIFF files and raws are handed over up to this many
 * bytes (their IFDs and tag data sit near the start; pixel data follows). */
#define EXIF_MAX_BLOCK ((size_t)64 << 20)

void photo_meta_init(struct photo_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->focal_mm = (double)NAN;
    m->focal35_mm = (double)NAN;
    m->fnumber = (double)NAN;
    m->exposure_s = (double)NAN;
    m->gps_lat = (double)NAN;
    m->gps_lon = (double)NAN;
    m->gps_alt = (double)NAN;
    m->orientation = 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Tag access */

/* Where the tags are: IFD0, the EXIF sub-IFD and the GPS sub-IFD. For most files these are the
 * IFDs of one EXIF block; a Canon CR3 keeps each in a TIFF of its own (CMT1, CMT2, CMT4). */
struct exif_view {
    ExifContent *ifd0, *exif, *gps;
};

/* Tags other than GPS ones are looked up in the EXIF sub-IFD, then IFD0 (never IFD1, which
 * describes the thumbnail). */
static ExifEntry *find_tag(const struct exif_view *v, int tag)
{
    ExifEntry *e = v->exif ? exif_content_get_entry(v->exif, (ExifTag)tag) : NULL;
    if (!e && v->ifd0)
        e = exif_content_get_entry(v->ifd0, (ExifTag)tag);
    return e;
}

static ExifEntry *find_gps(const struct exif_view *v, int tag)
{
    return v->gps ? exif_content_get_entry(v->gps, (ExifTag)tag) : NULL;
}

/* Component i of a numeric entry as a double; 0 when absent, not numeric or a zero
 * denominator (a rational 0/0 means "unknown" in practice). */
static int entry_num(ExifEntry *e, unsigned i, double *out)
{
    if (!e || !e->data || i >= e->components || !e->parent || !e->parent->parent)
        return 0;
    ExifByteOrder o = exif_data_get_byte_order(e->parent->parent); /* its own block's order */
    size_t fs = exif_format_get_size(e->format);
    if (fs == 0 || (size_t)(i + 1) * fs > e->size)
        return 0;
    const unsigned char *p = e->data + (size_t)i * fs;
    switch (e->format) {
    case EXIF_FORMAT_BYTE:
        *out = p[0];
        return 1;
    case EXIF_FORMAT_SBYTE:
        *out = (signed char)p[0];
        return 1;
    case EXIF_FORMAT_SHORT:
        *out = exif_get_short(p, o);
        return 1;
    case EXIF_FORMAT_SSHORT:
        *out = exif_get_sshort(p, o);
        return 1;
    case EXIF_FORMAT_LONG:
        *out = exif_get_long(p, o);
        return 1;
    case EXIF_FORMAT_SLONG:
        *out = exif_get_slong(p, o);
        return 1;
    case EXIF_FORMAT_RATIONAL: {
        ExifRational r = exif_get_rational(p, o);
        if (r.denominator == 0)
            return 0;
        *out = (double)r.numerator / (double)r.denominator;
        return 1;
    }
    case EXIF_FORMAT_SRATIONAL: {
        ExifSRational r = exif_get_srational(p, o);
        if (r.denominator == 0)
            return 0;
        *out = (double)r.numerator / (double)r.denominator;
        return 1;
    }
    default:
        return 0;
    }
}

/* Copies a text entry into dst: up to the first NUL, trailing spaces trimmed, invalid UTF-8
 * bytes replaced by '?'. Returns 1 when something non-empty was copied. */
static int entry_str(ExifEntry *e, char *dst, size_t cap)
{
    dst[0] = 0;
    if (!e || !e->data || cap == 0)
        return 0;
    if (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED &&
        e->format != EXIF_FORMAT_BYTE)
        return 0;
    size_t n = 0;
    while (n < e->size && e->data[n])
        n++;
    while (n > 0 && (e->data[n - 1] == ' ' || e->data[n - 1] == '\t'))
        n--;
    size_t i = 0, o = 0;
    const unsigned char *s = e->data;
    while (i < n && o + 1 < cap) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = k != 0 && i + k <= n && o + k < cap;
        for (size_t j = 1; ok && j < k; j++)
            ok = (s[i + j] & 0xC0) == 0x80;
        if (ok && k == 2 && c < 0xC2)
            ok = 0; /* overlong */
        if (ok && k == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0)))
            ok = 0; /* overlong or a surrogate */
        if (ok && k == 4 &&
            ((c == 0xF0 && s[i + 1] < 0x90) || c > 0xF4 || (c == 0xF4 && s[i + 1] >= 0x90)))
            ok = 0;
        if (ok && k == 1 && c < 0x20 && c != '\t')
            ok = 0; /* control characters */
        if (!ok) {
            dst[o++] = '?';
            i++;
            continue;
        }
        memcpy(dst + o, s + i, k);
        o += k;
        i += k;
    }
    dst[o] = 0;
    while (o > 0 && dst[o - 1] == ' ')
        dst[--o] = 0;
    return o > 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Dates */

static int64_t days_from_civil(int64_t y, unsigned mo, unsigned d)
{
    /* Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian. */
    y -= mo <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (mo + (mo > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* "YYYY:MM:DD HH:MM:SS" (also '-' in the date, 'T' as separator) -> ISO text and seconds. */
static int parse_exif_date(const char *s, char iso[32], int64_t *secs)
{
    if (strlen(s) < 19)
        return 0;
    int y, mo, d, h, mi, se;
    char ds = s[4];
    if ((ds != ':' && ds != '-') || s[7] != ds || (s[10] != ' ' && s[10] != 'T') || s[13] != ':' ||
        s[16] != ':')
        return 0;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return 0;
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (y < 1800 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || se > 60)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return 0;
    snprintf(iso, 32, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, se);
    *secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    return 1;
}

/* "+02:00" / "-05:30" -> seconds east of UTC. */
static int parse_offset(const char *s, int *secs)
{
    int h, m;
    if (strlen(s) < 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !digits(s + 1, 2, &h) ||
        !digits(s + 4, 2, &m) || h > 14 || m > 59)
        return 0;
    *secs = (h * 3600 + m * 60) * (s[0] == '-' ? -1 : 1);
    return 1;
}

static void read_time(const struct exif_view *d, struct photo_meta *m)
{
    static const struct {
        int tag, offset_tag;
    } sources[] = {
        { EXIF_TAG_DATE_TIME_ORIGINAL, EXIF_TAG_OFFSET_TIME_ORIGINAL },
        { EXIF_TAG_DATE_TIME_DIGITIZED, EXIF_TAG_OFFSET_TIME_DIGITIZED },
        { EXIF_TAG_DATE_TIME, EXIF_TAG_OFFSET_TIME },
    };
    char text[64];
    for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
        int64_t secs;
        if (!entry_str(find_tag(d, sources[i].tag), text, sizeof(text)) ||
            !parse_exif_date(text, m->taken_at, &secs))
            continue;
        m->taken_unix = secs;
        int off;
        if (entry_str(find_tag(d, sources[i].offset_tag), text, sizeof(text)) &&
            parse_offset(text, &off)) {
            snprintf(m->tz_offset, sizeof(m->tz_offset), "%.6s", text);
            m->taken_unix = secs - off;
        }
        if (i == 0 && entry_str(find_tag(d, EXIF_TAG_SUB_SEC_TIME_ORIGINAL), text, sizeof(text))) {
            size_t n = 0;
            while (n < sizeof(m->subsec) - 1 && text[n] >= '0' && text[n] <= '9')
                n++;
            if (n > 0 && text[n] == 0) {
                memcpy(m->subsec, text, n);
                m->subsec[n] = 0;
            }
        }
        return;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* GPS */

static double gps_coord(const struct exif_view *d, int tag, int ref_tag, char neg_ref, double limit)
{
    ExifEntry *e = find_gps(d, tag);
    if (!e || e->format != EXIF_FORMAT_RATIONAL || e->components < 1)
        return (double)NAN;
    double v = 0, div = 1;
    for (unsigned i = 0; i < e->components && i < 3; i++) {
        double c;
        if (!entry_num(e, i, &c)) {
            if (i == 0)
                return (double)NAN;
            break; /* some writers leave seconds as 0/0 */
        }
        if (i > 0 && (c < 0 || c >= 60))
            return (double)NAN;
        v += c / div;
        div *= 60;
    }
    if (!isfinite(v) || v < 0 || v > limit)
        return (double)NAN;
    char ref[8];
    if (entry_str(find_gps(d, ref_tag), ref, sizeof(ref)) && (ref[0] == neg_ref))
        v = -v;
    return v;
}

static void read_gps(const struct exif_view *d, struct photo_meta *m)
{
    double lat = gps_coord(d, EXIF_TAG_GPS_LATITUDE, EXIF_TAG_GPS_LATITUDE_REF, 'S', 90.0);
    double lon = gps_coord(d, EXIF_TAG_GPS_LONGITUDE, EXIF_TAG_GPS_LONGITUDE_REF, 'W', 180.0);
    if (isnan(lat) || isnan(lon))
        return; /* half a position is no position */
    m->gps_lat = lat;
    m->gps_lon = lon;
    double alt;
    ExifEntry *ae = find_gps(d, EXIF_TAG_GPS_ALTITUDE);
    if (ae && ae->format == EXIF_FORMAT_RATIONAL && entry_num(ae, 0, &alt) && isfinite(alt) &&
        alt >= 0 && alt <= 100000.0) {
        double ref = 0;
        if (entry_num(find_gps(d, EXIF_TAG_GPS_ALTITUDE_REF), 0, &ref) && ref == 1)
            alt = -alt; /* GPSAltitudeRef 1: below sea level */
        m->gps_alt = alt;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Parsing */

static double positive_num(ExifEntry *e)
{
    double v;
    if (!entry_num(e, 0, &v) || !isfinite(v) || v <= 0)
        return (double)NAN;
    return v;
}

static void fill_meta(const struct exif_view *d, struct photo_meta *m)
{
    double v;
    read_time(d, m);
    entry_str(find_tag(d, EXIF_TAG_MAKE), m->make, sizeof(m->make));
    entry_str(find_tag(d, EXIF_TAG_MODEL), m->model, sizeof(m->model));
    entry_str(find_tag(d, EXIF_TAG_SOFTWARE), m->software, sizeof(m->software));
    if (!entry_str(find_tag(d, EXIF_TAG_LENS_MODEL), m->lens, sizeof(m->lens)))
        entry_str(find_tag(d, EXIF_TAG_LENS_MAKE), m->lens, sizeof(m->lens));
    m->focal_mm = positive_num(find_tag(d, EXIF_TAG_FOCAL_LENGTH));
    m->focal35_mm = positive_num(find_tag(d, EXIF_TAG_FOCAL_LENGTH_IN_35MM_FILM));
    m->fnumber = positive_num(find_tag(d, EXIF_TAG_FNUMBER));
    m->exposure_s = positive_num(find_tag(d, EXIF_TAG_EXPOSURE_TIME));
    if (entry_num(find_tag(d, EXIF_TAG_ISO_SPEED_RATINGS), 0, &v) && v > 0 && v < 1e7)
        m->iso = (int)v;
    ExifEntry *oe = d->ifd0 ? exif_content_get_entry(d->ifd0, EXIF_TAG_ORIENTATION) : NULL;
    if (entry_num(oe, 0, &v) && v >= 1 && v <= 8)
        m->orientation = (int)v;
    if (entry_num(find_tag(d, EXIF_TAG_PIXEL_X_DIMENSION), 0, &v) && v > 0 && v < 1e9)
        m->width = (int)v;
    if (entry_num(find_tag(d, EXIF_TAG_PIXEL_Y_DIMENSION), 0, &v) && v > 0 && v < 1e9)
        m->height = (int)v;
    read_gps(d, m);
}

static int has_entries(ExifData *d)
{
    for (int i = 0; i < EXIF_IFD_COUNT; i++)
        if (d->ifd[i] && d->ifd[i]->count > 0)
            return 1;
    return 0;
}

/* One EXIF block (APP1 form "Exif\0\0" + TIFF, or a bare TIFF header) parsed by libexif into
 * *out (NULL when nothing parsed, which is no error). */
static int load_block(const unsigned char *buf, size_t len, ExifData **out, struct sb_err *err)
{
    *out = NULL;
    if (!buf || len < 8)
        return sb_fail(err, SB_EFORMAT, "exif: block too short");
    const unsigned char *p = buf;
    unsigned char *copy = NULL;
    size_t n = len;
    if (n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) {
        /* as is */
    } else if (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0) {
        /* libexif wants the APP1 form: prefix "Exif\0\0". */
        if (n > EXIF_MAX_BLOCK - 6)
            n = EXIF_MAX_BLOCK - 6;
        copy = malloc(n + 6);
        if (!copy)
            return sb_fail(err, SB_ENOMEM, "exif: out of memory");
        memcpy(copy, "Exif\0\0", 6);
        memcpy(copy + 6, p, n);
        p = copy;
        n += 6;
    } else {
        return sb_fail(err, SB_EFORMAT, "exif: no TIFF header");
    }
    if (n > EXIF_MAX_BLOCK)
        n = EXIF_MAX_BLOCK;
    ExifData *d = exif_data_new();
    if (!d) {
        free(copy);
        return sb_fail(err, SB_ENOMEM, "exif: out of memory");
    }
    /* Keep tags libexif does not know (OffsetTime* in older tables), and do not let it "fix"
     * the data by inventing mandatory tags with default values. */
    exif_data_unset_option(d, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_unset_option(d, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(d, p, (unsigned int)n);
    free(copy);
    if (!has_entries(d)) {
        exif_data_unref(d);
        return SB_OK;
    }
    *out = d;
    return SB_OK;
}

int meta_parse_exif(const unsigned char *buf, size_t len, struct photo_meta *m, struct sb_err *err)
{
    photo_meta_init(m);
    ExifData *d;
    int rc = load_block(buf, len, &d, err);
    if (rc || !d)
        return rc; /* nothing parsed: has_exif stays 0 */
    struct exif_view v = { d->ifd[EXIF_IFD_0], d->ifd[EXIF_IFD_EXIF], d->ifd[EXIF_IFD_GPS] };
    m->has_exif = 1;
    fill_meta(&v, m);
    exif_data_unref(d);
    return SB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Finding the EXIF block in each container */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* PNG: the eXIf chunk (before or after IDAT), CRCs not checked. */
static int png_find_exif(const unsigned char *buf, size_t len, size_t *off, size_t *n)
{
    size_t i = 8;
    while (i + 8 <= len) {
        uint32_t clen = be32(buf + i);
        const unsigned char *type = buf + i + 4;
        size_t start = i + 8;
        if (clen > len - start)
            return 0;
        if (memcmp(type, "eXIf", 4) == 0) {
            *off = start;
            *n = clen;
            return 1;
        }
        if (memcmp(type, "IEND", 4) == 0)
            return 0;
        if (len - start - clen < 4)
            return 0;
        i = start + clen + 4;
    }
    return 0;
}

static int parse_or_empty(const unsigned char *b, size_t n, struct photo_meta *m)
{
    /* Malformed EXIF yields whatever parsed (an empty meta here): not an error for callers. */
    struct sb_err e;
    if (meta_parse_exif(b, n, m, &e) != SB_OK)
        photo_meta_init(m);
    return SB_OK;
}

static int read_webp(const unsigned char *buf, size_t len, struct photo_meta *m)
{
    WebPData data = { buf, len };
    WebPDemuxState st;
    WebPDemuxer *dm = WebPDemuxPartial(&data, &st);
    if (!dm)
        return SB_OK;
    WebPChunkIterator it;
    if (WebPDemuxGetChunk(dm, "EXIF", 1, &it)) {
        parse_or_empty(it.chunk.bytes, it.chunk.size, m);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dm);
    return SB_OK;
}

static int read_heif(const unsigned char *buf, size_t len, struct photo_meta *m)
{
    struct heif_context *ctx = heif_context_alloc();
    struct heif_image_handle *h = NULL;
    unsigned char *blk = NULL;
    if (!ctx)
        goto out;
    struct heif_error he = heif_context_read_from_memory_without_copy(ctx, buf, len, NULL);
    if (he.code != heif_error_Ok)
        goto out;
    he = heif_context_get_primary_image_handle(ctx, &h);
    if (he.code != heif_error_Ok)
        goto out;
    heif_item_id id;
    if (heif_image_handle_get_list_of_metadata_block_IDs(h, "Exif", &id, 1) < 1)
        goto out;
    size_t n = heif_image_handle_get_metadata_size(h, id);
    if (n < 8 || n > EXIF_MAX_BLOCK)
        goto out;
    blk = malloc(n);
    if (!blk)
        goto out;
    he = heif_image_handle_get_metadata(h, id, blk);
    if (he.code != heif_error_Ok)
        goto out;
    /* ISO 23008-12 Annex A: a 4-byte big-endian offset to the TIFF header, counted from the
     * end of that field (usually 6, skipping "Exif\0\0", or 0). */
    uint32_t skip = be32(blk);
    if (skip <= n - 4)
        parse_or_empty(blk + 4 + skip, n - 4 - skip, m);
out:
    free(blk);
    if (h)
        heif_image_handle_release(h);
    if (ctx)
        heif_context_free(ctx);
    return SB_OK;
}

/* Fujifilm RAF: a big-endian header whose bytes 84..91 locate an embedded JPEG with EXIF. */
static int read_raf(const unsigned char *buf, size_t len, struct photo_meta *m)
{
    if (len < 92)
        return SB_OK;
    uint32_t off = be32(buf + 84), n = be32(buf + 88);
    if (off > len || n > len - off)
        return SB_OK;
    size_t eo, en;
    if (img_jpeg_find_exif(buf + off, n, &eo, &en))
        parse_or_empty(buf + off + eo, en, m);
    return SB_OK;
}

/* Panasonic RW2 ("IIU\0") and Olympus ORF ("IIRO"/"IIRS"/"MMOR") are TIFF with a bent magic
 * number: straighten it on a copy of the header part. */
static int read_bent_tiff(const unsigned char *buf, size_t len, struct photo_meta *m)
{
    size_t n = len < EXIF_MAX_BLOCK - 6 ? len : EXIF_MAX_BLOCK - 6;
    unsigned char *copy = malloc(n + 6);
    if (!copy)
        return SB_ENOMEM;
    memcpy(copy, "Exif\0\0", 6);
    memcpy(copy + 6, buf, n);
    if (copy[6] == 'I') {
        copy[8] = 42;
        copy[9] = 0;
    } else {
        copy[8] = 0;
        copy[9] = 42;
    }
    parse_or_empty(copy, n + 6, m);
    free(copy);
    return SB_OK;
}

/* ISO-BMFF: the payload of the first box of this type among the boxes in buf[0, len) (for
 * "uuid", the one with this user type, whose 16 bytes are skipped). */
static int bmff_find(const unsigned char *buf, size_t len, const char type[4],
                     const unsigned char *uuid, size_t *off, size_t *n)
{
    size_t i = 0;
    while (len - i >= 8) {
        uint64_t size = be32(buf + i);
        size_t hdr = 8;
        if (size == 1) {
            if (len - i < 16)
                return 0;
            size = (uint64_t)be32(buf + i + 8) << 32 | be32(buf + i + 12);
            hdr = 16;
        } else if (size == 0) {
            size = len - i; /* to the end */
        }
        if (size < hdr || size > len - i)
            return 0;
        if (memcmp(buf + i + 4, type, 4) == 0) {
            size_t start = i + hdr, end = i + (size_t)size;
            if (uuid) {
                if (end - start < 16 || memcmp(buf + start, uuid, 16) != 0)
                    goto next;
                start += 16;
            }
            *off = start;
            *n = end - start;
            return 1;
        }
    next:
        i += (size_t)size;
    }
    return 0;
}

/* Canon CR3: moov holds a Canon uuid box whose CMT1, CMT2 and CMT4 boxes are TIFF blocks with
 * IFD0, the EXIF sub-IFD and the GPS sub-IFD each as their first IFD. */
static int read_cr3(const unsigned char *buf, size_t len, struct photo_meta *m)
{
    static const unsigned char canon[16] = { 0x85, 0xc0, 0xb6, 0x87, 0x82, 0x0f, 0x11, 0xe0,
                                             0x81, 0x11, 0xf4, 0xce, 0x46, 0x2b, 0x6a, 0x48 };
    static const char *const names[3] = { "CMT1", "CMT2", "CMT4" };
    size_t mo, mn, uo, un;
    if (!bmff_find(buf, len, "moov", NULL, &mo, &mn) ||
        !bmff_find(buf + mo, mn, "uuid", canon, &uo, &un))
        return SB_OK;
    const unsigned char *u = buf + mo + uo;
    ExifData *d[3] = { NULL, NULL, NULL };
    int any = 0;
    for (int i = 0; i < 3; i++) {
        size_t o, n;
        struct sb_err e;
        if (bmff_find(u, un, names[i], NULL, &o, &n) && load_block(u + o, n, &d[i], &e) == SB_OK)
            any |= d[i] != NULL;
    }
    if (any) {
        struct exif_view v = { d[0] ? d[0]->ifd[EXIF_IFD_0] : NULL,
                               d[1] ? d[1]->ifd[EXIF_IFD_0] : NULL,
                               d[2] ? d[2]->ifd[EXIF_IFD_0] : NULL };
        m->has_exif = 1;
        fill_meta(&v, m);
    }
    for (int i = 0; i < 3; i++)
        if (d[i])
            exif_data_unref(d[i]);
    return SB_OK;
}

int meta_read(const unsigned char *buf, size_t len, enum image_format fmt, struct photo_meta *m,
              struct sb_err *err)
{
    photo_meta_init(m);
    if (!buf || len == 0)
        return SB_OK;
    if (fmt == IMAGE_FMT_UNKNOWN)
        fmt = image_sniff(buf, len, NULL);
    size_t off, n;
    switch (fmt) {
    case IMAGE_FMT_JPEG:
        if (img_jpeg_find_exif(buf, len, &off, &n))
            return parse_or_empty(buf + off, n, m);
        return SB_OK;
    case IMAGE_FMT_PNG:
        if (png_find_exif(buf, len, &off, &n))
            return parse_or_empty(buf + off, n, m);
        return SB_OK;
    case IMAGE_FMT_WEBP:
        return read_webp(buf, len, m);
    case IMAGE_FMT_HEIF:
    case IMAGE_FMT_AVIF:
        return read_heif(buf, len, m);
    case IMAGE_FMT_TIFF:
    case IMAGE_FMT_RAW:
        if (len >= 4 && (memcmp(buf, "II*\0", 4) == 0 || memcmp(buf, "MM\0*", 4) == 0))
            return parse_or_empty(buf, len, m);
        if (len >= 15 && memcmp(buf, "FUJIFILMCCD-RAW", 15) == 0)
            return read_raf(buf, len, m);
        if (len >= 8 && (memcmp(buf, "IIU\0", 4) == 0 || memcmp(buf, "IIRO", 4) == 0 ||
                         memcmp(buf, "IIRS", 4) == 0 || memcmp(buf, "MMOR", 4) == 0)) {
            int rc = read_bent_tiff(buf, len, m);
            if (rc)
                return sb_fail(err, rc, "exif: out of memory");
        }
        if (len >= 12 && memcmp(buf + 4, "ftyp", 4) == 0)
            return read_cr3(buf, len, m);
        return SB_OK; /* other raws: not read yet */
    case IMAGE_FMT_GIF:
    case IMAGE_FMT_UNKNOWN:
        break;
    }
    return SB_OK;
}

int img_exif_orientation(const unsigned char *buf, size_t len, enum image_format fmt)
{
    struct photo_meta m;
    if (meta_read(buf, len, fmt, &m, NULL) != SB_OK)
        return 1;
    return m.orientation;
}
