/* internal.h - what the OCR module's files share. */
#ifndef SHOEBOX_OCR_INTERNAL_H
#define SHOEBOX_OCR_INTERNAL_H

struct image;

/* ocr_gate_score(), also giving the stroky cells in horizontal runs (*hcells: upright text)
 * and in vertical runs (*vcells: text turned by 90 degrees, or tall letters). */
int ocr_gate_measure(const struct image *rgb, int *hcells, int *vcells);

#endif
