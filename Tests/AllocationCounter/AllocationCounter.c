// Counts heap allocations, for the test that a training step allocates nothing. The functions below replace the
// C library's in the test binary (the dynamic linker prefers the executable's definitions) and forward to glibc's
// internal entry points, so no lookup (dlsym) is needed and nothing can recurse.
#include "AllocationCounter.h"
#include <errno.h>
#include <stdint.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPT_UNDER_ASAN 1
#endif
#endif

#ifdef GPT_UNDER_ASAN
// AddressSanitizer replaces the allocator itself (and fails its own start-up checks if the program does too):
// nothing is counted in a sanitized build.
size_t gpt_allocation_count(void) { return 0; }
int gpt_allocation_counting(void) { return 0; }
#else
int gpt_allocation_counting(void) { return 1; }

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static size_t count;

size_t gpt_allocation_count(void) { return __atomic_load_n(&count, __ATOMIC_SEQ_CST); }

static inline void counted(void) { __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED); }

void *malloc(size_t n) { counted(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { counted(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { counted(); return __libc_realloc(p, n); }
void *memalign(size_t alignment, size_t n) { counted(); return __libc_memalign(alignment, n); }
void *aligned_alloc(size_t alignment, size_t n) { counted(); return __libc_memalign(alignment, n); }

int posix_memalign(void **out, size_t alignment, size_t n) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    counted();
    void *p = __libc_memalign(alignment, n);
    if (!p && n) return ENOMEM;
    *out = p;
    return 0;
}
#endif
