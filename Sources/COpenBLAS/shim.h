#ifndef MULAN_COPENBLAS_SHIM_H
#define MULAN_COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface (cblas_sgemm, …) and its thread control (openblas_set_num_threads).
// Nothing here needs wrapping: the header imports as is.
#include <cblas.h>
#endif
