/* internal.h - the packed 6-bit codes of the first pass and their dot-product kernels, shared
 * by topk.c (scan) and store.c (file layout); tests compare the kernels with each other.
 *
 * A row's codes are c[i] in [-31, 31] with row ~ scale * c, stored as u[i] = c[i] + 32 in
 * [1, 63], in blocks of 64 dimensions (the last block padded with u = 32, i.e. c = 0). A block
 * is 48 bytes: 32 bytes whose low nibble is u[j] >> 2 and high nibble u[32 + j] >> 2
 * (j = 0..31), then 16 bytes whose bit pair 2t..2t+1 of byte j is u[16t + j] & 3 (t = 0..3).
 * The split lets a SIMD kernel rebuild 64 codes with a few shifts and masks. */
#ifndef SHOEBOX_SEARCH_INTERNAL_H
#define SHOEBOX_SEARCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define SEARCH_C6_DIMS  64 /* dimensions per block */
#define SEARCH_C6_BYTES 48 /* bytes per block */
#define SEARCH_C6_BIAS  32 /* u = c + SEARCH_C6_BIAS */

/* Sum over nblocks * 64 dimensions of u[i] * q[i] (q padded with zeros to whole blocks). */
typedef int32_t (*search_dot6_fn)(const uint8_t *codes, const int8_t *q, size_t nblocks);

struct search_dot6_kernel {
    const char *name;
    search_dot6_fn fn;
};

/* The kernels this CPU can run, portable first and the one the scan uses last; returns how
 * many were written to out (at most cap). */
size_t search_dot6_kernels(struct search_dot6_kernel *out, size_t cap);

/* Packs one row of codes c[0..dim) (each in [-31, 31]) into blocks. */
void search_c6_pack(const int8_t *c, int dim, uint8_t *out);

#endif
