#ifndef GPT_CDNNL_SHIM_H
#define GPT_CDNNL_SHIM_H
// oneDNN's C interface (Debian's libdnnl-dev, 2.6, built with the OpenMP runtime). It ships no pkg-config file;
// the header is in /usr/include and the library in the default search path.
#include <oneapi/dnnl/dnnl.h>

// OpenMP's thread-count setter (libgomp, which libdnnl links). Declared here because omp.h lives in GCC's private
// include directory, which clang does not search. The toolkit calls oneDNN from its own threads, one product
// part per thread, and each of those threads asks OpenMP for a team of one.
void omp_set_num_threads(int);
#endif
