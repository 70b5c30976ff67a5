/* merge_heap.c - see merge_heap.h. */
#include "merge_heap.h"

#include <stdbool.h>

static bool less(const struct merge_ent *a, const struct merge_ent *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void swap(struct merge_ent *a, struct merge_ent *b)
{
    struct merge_ent t = *a;
    *a = *b;
    *b = t;
}

void merge_heap_push(struct merge_ent *h, size_t *n, struct merge_ent x)
{
    size_t i = (*n)++;
    h[i] = x;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!less(&h[i], &h[p]))
            break;
        swap(&h[i], &h[p]);
        i = p;
    }
}

struct merge_ent merge_heap_pop(struct merge_ent *h, size_t *n)
{
    struct merge_ent top = h[0];
    h[0] = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && less(&h[l], &h[m]))
            m = l;
        if (r < *n && less(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        swap(&h[i], &h[m]);
        i = m;
    }
    return top;
}
