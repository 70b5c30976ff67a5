/* merge_heap.h - the priority queue of BPE merge candidates that the CLIP tokenizer and the
 * tokenizer.json BPE share: a binary min-heap ordered by merge rank, then by the position of
 * the left symbol (HF merges the lowest rank first, leftmost on ties). */
#ifndef SHOEBOX_MODEL_MERGE_HEAP_H
#define SHOEBOX_MODEL_MERGE_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct merge_ent {
    uint32_t rank;
    int32_t pos; /* left symbol */
    int32_t new_id;
    int32_t right_id; /* the right symbol's id when pushed (lets callers skip stale entries) */
};

/* Adds x to the heap h of *n entries; h must have room for one more. */
void merge_heap_push(struct merge_ent *h, size_t *n, struct merge_ent x);
/* Removes and returns the first entry; *n must be > 0. */
struct merge_ent merge_heap_pop(struct merge_ent *h, size_t *n);

#endif
