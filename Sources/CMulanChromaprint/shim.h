#ifndef MULAN_CCHROMAPRINT_SHIM_H
#define MULAN_CCHROMAPRINT_SHIM_H
#include <chromaprint.h>
#endif
