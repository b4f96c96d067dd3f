#ifndef GPT_CDNNL_SHIM_H
#define GPT_CDNNL_SHIM_H
// oneDNN's C interface (Debian's libdnnl-dev, 2.6, built with the OpenMP runtime). It ships no pkg-config file;
// the header is in /usr/include and the library in the default search path.
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_config.h>
#include <oneapi/dnnl/dnnl_version.h>

// The wrapper (Compute/BF16Matmul.swift) uses oneDNN 2.x's operation descriptors (removed in 3.0), and keeps
// oneDNN on the calling thread through OpenMP (a TBB or threadpool build would start threads of its own).
#if DNNL_VERSION_MAJOR != 2
#error "swift-gpt needs oneDNN 2.x (Debian 12's libdnnl-dev 2.6); this oneDNN is a different major version"
#endif
#if DNNL_CPU_RUNTIME != DNNL_RUNTIME_OMP
#error "swift-gpt needs oneDNN built with the OpenMP CPU runtime (Debian 12's libdnnl-dev)"
#endif

// OpenMP's thread-count setter (libgomp, which libdnnl links). Declared here because omp.h lives in GCC's private
// include directory, which clang does not search. The toolkit calls oneDNN from its own threads, one product
// part per thread, and each of those threads asks OpenMP for a team of one.
void omp_set_num_threads(int);
#endif
