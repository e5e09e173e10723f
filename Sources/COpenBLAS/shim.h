#ifndef MULAN_COPENBLAS_SHIM_H
#define MULAN_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface (cblas_sgemm, …) and its thread control (openblas_set_num_threads).
// Nothing here needs wrapping: the header imports as is.
#include <cblas.h>
// glibc's mallopt, for the tensor module's allocation policy (Tensor.keepFreedMemory): Swift's Glibc
// module does not export <malloc.h>.
#include <malloc.h>
#endif
