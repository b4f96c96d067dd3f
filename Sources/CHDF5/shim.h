#ifndef GPT_CHDF5_SHIM_H
#define GPT_CHDF5_SHIM_H
// The HDF5 C library. Many of its constants are macros that expand to
// function calls or casts (H5T_NATIVE_FLOAT is `H5OPEN H5T_NATIVE_FLOAT_g`),
// which Swift cannot import; these accessors expose the ones we use.
#include <hdf5.h>

static inline hid_t gpt_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t gpt_H5S_ALL(void) { return H5S_ALL; }
static inline hid_t gpt_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline hid_t gpt_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t gpt_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t gpt_H5P_DATASET_XFER(void) { return H5P_DATASET_XFER; }

static inline hid_t gpt_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t gpt_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t gpt_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t gpt_H5T_NATIVE_UINT64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t gpt_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t gpt_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t gpt_H5T_IEEE_F64LE(void) { return H5T_IEEE_F64LE; }
static inline hid_t gpt_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t gpt_H5T_STD_U64LE(void) { return H5T_STD_U64LE; }
static inline hid_t gpt_H5T_STD_U8LE(void) { return H5T_STD_U8LE; }
static inline hid_t gpt_H5T_STD_I32LE(void) { return H5T_STD_I32LE; }
static inline hid_t gpt_H5T_C_S1(void) { return H5T_C_S1; }
static inline size_t gpt_H5T_VARIABLE(void) { return H5T_VARIABLE; }

static inline unsigned gpt_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned gpt_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline unsigned gpt_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned gpt_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }

static inline H5Z_filter_t gpt_H5Z_FILTER_FLETCHER32(void) { return H5Z_FILTER_FLETCHER32; }

/// Turns off HDF5's automatic printing of error stacks to stderr (the
/// library reports errors through return values, and we word them ourselves)
/// and its clean-up at process exit. Call before any other HDF5 function.
///
/// The clean-up must go: when H5Fclose fails (a full disk: the final flush
/// cannot be written), HDF5 1.10 leaves the file's identifier registered with
/// its shared state already freed, and the clean-up that exit() runs
/// (H5_term_library -> H5F__close_cb) dereferences it: SIGSEGV after the
/// error was reported. Every file this package writes is closed explicitly,
/// so skipping the clean-up loses nothing.
static inline void gpt_h5_silence_errors(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/// The library's version, for checkpoint metadata.
static inline void gpt_h5_version(unsigned *major, unsigned *minor, unsigned *release) {
    H5get_libversion(major, minor, release);
}
#endif
