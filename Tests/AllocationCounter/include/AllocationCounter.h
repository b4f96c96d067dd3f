#ifndef GPT_ALLOCATION_COUNTER_H
#define GPT_ALLOCATION_COUNTER_H
#include <stddef.h>
/// Heap allocations made by the process so far (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign).
/// Linked into the test binary only: its definitions of those functions take the place of the C library's.
size_t gpt_allocation_count(void);
/// 1 when allocations are counted; 0 in an AddressSanitizer build, whose allocator takes their place.
int gpt_allocation_counting(void);
#endif
