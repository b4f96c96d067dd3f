#ifndef GPT_COPENBLAS_SHIM_H
#define GPT_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface. Its header also declares the OpenBLAS extensions
// openblas_set_num_threads, openblas_get_num_threads and openblas_get_corename.
#include <cblas.h>
#endif
