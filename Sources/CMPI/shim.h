#ifndef GPT_CMPI_SHIM_H
#define GPT_CMPI_SHIM_H
// Open MPI's C interface. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are macros that expand to the
// addresses of global objects, which Swift cannot import; these accessors expose the ones the toolkit uses.
#include <mpi.h>

static inline MPI_Comm gpt_MPI_COMM_WORLD(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype gpt_MPI_FLOAT(void) { return MPI_FLOAT; }
static inline MPI_Datatype gpt_MPI_DOUBLE(void) { return MPI_DOUBLE; }
static inline MPI_Datatype gpt_MPI_BYTE(void) { return MPI_BYTE; }
static inline MPI_Datatype gpt_MPI_INT64_T(void) { return MPI_INT64_T; }
static inline MPI_Op gpt_MPI_SUM(void) { return MPI_SUM; }
static inline MPI_Op gpt_MPI_MAX(void) { return MPI_MAX; }
static inline MPI_Op gpt_MPI_MIN(void) { return MPI_MIN; }
static inline MPI_Errhandler gpt_MPI_ERRORS_RETURN(void) { return MPI_ERRORS_RETURN; }
static inline void *gpt_MPI_IN_PLACE(void) { return MPI_IN_PLACE; }
static inline MPI_Datatype gpt_MPI_DATATYPE_NULL(void) { return MPI_DATATYPE_NULL; }
static inline int gpt_MPI_SUCCESS(void) { return MPI_SUCCESS; }
static inline int gpt_MPI_THREAD_FUNNELED(void) { return MPI_THREAD_FUNNELED; }
static inline int gpt_MPI_MAX_ERROR_STRING(void) { return MPI_MAX_ERROR_STRING; }

#endif
