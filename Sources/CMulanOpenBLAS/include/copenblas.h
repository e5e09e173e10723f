#ifndef MULAN_COPENBLAS_H
#define MULAN_COPENBLAS_H
// What the tensor module needs below Swift, beside OpenBLAS itself:
// - the CPU's vector features, read with CPUID and XGETBV (instructions Swift cannot issue), so that
//   MulanTensor can choose OpenBLAS's kernel family before it loads the library (OpenBLASLibrary.swift);
// - the file a loaded symbol comes from (dladdr);
// - glibc's mallopt, for the tensor module's allocation policy (Tensor.keepFreedMemory): Swift's Glibc
//   module does not export <malloc.h>.
// OpenBLAS is not linked: MulanTensor loads libopenblas.so.0 with dlopen once its core is chosen,
// because OpenBLAS reads OPENBLAS_CORETYPE in its library constructor, before main() could set it.
#include <malloc.h>
#include <stdbool.h>

/// x86-64 vector features as CPUID reports them, and whether the OS saves the registers they use.
/// All false on other architectures.
typedef struct {
    bool x86;
    bool avx, fma, avx2;
    bool avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512bf16;
    /// XCR0 says the OS saves YMM state (bits 1, 2), and ZMM and opmask state too (bits 5, 6, 7).
    bool os_ymm, os_zmm;
} mulan_cpu_features;

/// Reads the features of the CPU this runs on (CPUID leaves 1, 7.0 and 7.1; XGETBV 0).
mulan_cpu_features mulan_read_cpu_features(void);

/// The path of the shared object that holds `symbol` (glibc's dladdr, a GNU extension Swift's Glibc
/// module leaves out), or NULL.
const char *mulan_library_path(const void *symbol);

#endif
