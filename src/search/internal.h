/* internal.h - the packed 6-bit codes of the first pass and their dot-product kernels, shared
 * by topk.c (scan) and store.c (file layout); tests compare the kernels with each other.
 *
 * A row's codes are c[i] in [-31, 31] with row ~ scale * c, stored as u[i] = c[i] + 32 in
 * [1, 63], in blocks of 64 dimensions (the last block padded with u = 32, i.e. c = 0). A block
 * is 48 bytes read as one little-endian 384-bit number with u[j] in bits 6j..6j+5: every 3 bytes
 * hold 4 codes, every 6 bytes 8. A SIMD kernel spreads each 6 bytes over 8 and picks the codes
 * out with one shift per byte (AVX-512 VBMI's vpmultishiftqb) or a few shifts and masks. */
#ifndef SHOEBOX_SEARCH_INTERNAL_H
#define SHOEBOX_SEARCH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define SEARCH_C6_DIMS  64 /* dimensions per block */
#define SEARCH_C6_BYTES 48 /* bytes per block */
#define SEARCH_C6_BIAS  32 /* u = c + SEARCH_C6_BIAS */

/* For each of nrows consecutive rows of nblocks blocks starting at codes: out[2r] = sum over
 * the nblocks * 64 dimensions of u[i] * qa[i] and out[2r + 1] the same with qb, where qa = q
 * and qb = q + nblocks * 64 (the query's two int8 parts, padded with zeros to whole blocks). */
typedef void (*search_dot6_fn)(const uint8_t *codes, size_t nrows, const int8_t *q, size_t nblocks,
                               int32_t *out);

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
