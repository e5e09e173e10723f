#define _GNU_SOURCE
#include <dlfcn.h>
#include "copenblas.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <stdint.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    // XGETBV with ECX = 0 reads XCR0; only valid when CPUID.1:ECX.OSXSAVE is set (checked by the caller).
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

mulan_cpu_features mulan_read_cpu_features(void) {
    mulan_cpu_features f = {0};
    f.x86 = true;
    unsigned int eax, ebx, ecx, edx;
    unsigned int max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf < 1) return f;
    __cpuid(1, eax, ebx, ecx, edx);
    bool osxsave = (ecx >> 27) & 1;
    f.fma = (ecx >> 12) & 1;
    f.avx = (ecx >> 28) & 1;
    if (osxsave) {
        uint64_t xcr0 = read_xcr0();
        f.os_ymm = (xcr0 & 0x6) == 0x6;
        f.os_zmm = f.os_ymm && (xcr0 & 0xE0) == 0xE0;
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        unsigned int subleaves = eax;
        f.avx2 = (ebx >> 5) & 1;
        f.avx512f = (ebx >> 16) & 1;
        f.avx512dq = (ebx >> 17) & 1;
        f.avx512cd = (ebx >> 28) & 1;
        f.avx512bw = (ebx >> 30) & 1;
        f.avx512vl = (ebx >> 31) & 1;
        if (subleaves >= 1) {
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            f.avx512bf16 = (eax >> 5) & 1;
        }
    }
    return f;
}
#else
mulan_cpu_features mulan_read_cpu_features(void) {
    mulan_cpu_features f = {0};
    return f;
}
#endif

const char *mulan_library_path(const void *symbol) {
    Dl_info info;
    if (dladdr(symbol, &info) == 0) return 0;
    return info.dli_fname;
}
