#ifndef MULAN_CEBUR128_SHIM_H
#define MULAN_CEBUR128_SHIM_H
// libebur128 (Debian libebur128-dev), the reference EBU R128 / ITU-R BS.1770 implementation.
// Its API is plain functions and enums: nothing needs wrapping, so the shim only includes it.
#include <ebur128.h>
#endif
