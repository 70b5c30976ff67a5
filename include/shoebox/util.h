/* util.h - small helpers shared by every module: checked arithmetic, number parsing,
 * whole-file reads and atomic writes, monotonic time, string buffers. */
#ifndef SHOEBOX_UTIL_H
#define SHOEBOX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;

/* Checked size arithmetic: false (and *out untouched) on overflow. */
bool sb_mul_size(size_t a, size_t b, size_t *out);
bool sb_mul3_size(size_t a, size_t b, size_t c, size_t *out);
bool sb_add_size(size_t a, size_t b, size_t *out);

/* Parses all of s as a base-10 integer in [lo, hi]. Returns SB_OK or SB_EINVAL. */
int sb_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out, struct sb_err *err);
/* Parses all of s as a finite float in [lo, hi]. Returns SB_OK or SB_EINVAL. */
int sb_parse_f32(const char *s, float lo, float hi, float *out, struct sb_err *err);

/* read(2) of up to n bytes into buf, again when interrupted (EINTR): *got bytes (0 at the end
 * of the file); an error names path ("read 'path': why"). */
int sb_read_some(int fd, void *buf, size_t n, size_t *got, const char *path, struct sb_err *err);
/* The size of the regular file open as fd (path names it in errors); SB_EINVAL when it is not
 * a regular file, SB_ETOOBIG when it is over max bytes. */
int sb_fd_size(int fd, const char *path, size_t max, size_t *size, struct sb_err *err);
/* Memory the system can give without swapping: /proc/meminfo's MemAvailable, else the free
 * physical pages; 0 when neither is known. */
uint64_t sb_mem_available(void);
/* Reads a whole file (at most max bytes, else SB_ETOOBIG). *out is malloc'd (NUL-terminated,
 * the NUL not counted in *len); the caller frees it. */
int sb_read_file(const char *path, size_t max, unsigned char **out, size_t *len,
                 struct sb_err *err);
/* Writes data to path atomically: a temp file in the same folder, fsync, rename(2). */
int sb_write_file_atomic(const char *path, const void *data, size_t len, struct sb_err *err);
/* mkdir -p with mode 0755. */
int sb_mkdirs(const char *path, struct sb_err *err);

/* Monotonic seconds. */
double sb_now(void);

/* Growable NUL-terminated string with a cap (default 64 MiB). */
struct sb_buf {
    char *data;
    size_t len, cap;
    bool failed; /* set once an append ran out of memory or hit the cap; later appends no-op */
};
void sb_buf_init(struct sb_buf *b);
void sb_buf_release(struct sb_buf *b);
void sb_buf_append(struct sb_buf *b, const char *s, size_t n);
void sb_buf_puts(struct sb_buf *b, const char *s);
void sb_buf_printf(struct sb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A copy of s with every byte that is not part of valid UTF-8 replaced by U+FFFD (file names
 * may be any bytes; JSON must be UTF-8). The caller frees it; NULL when out of memory. */
char *sb_utf8_clean(const char *s);

/* strdup that returns NULL on NULL input. */
char *sb_strdup(const char *s);

/* The widest x86 vector ISA shoebox's own kernels may use. SHOEBOX_MAX_ISA caps it: "avx2"
 * (no AVX-512, so no bf16 or AMX kernels either) or "c" (no hand-written SIMD), to test and
 * time on one machine the paths other CPUs take; unset or "avx512": no cap. Kernels still
 * check the CPU's features: this only says which ones they may use. Read once. */
enum sb_isa { SB_ISA_C, SB_ISA_AVX2, SB_ISA_AVX512 };
enum sb_isa sb_isa_max(void);

#endif
