#include "mulan_icu.h"
#include <unicode/unorm2.h>
#include <unicode/uversion.h>
#include <unicode/utypes.h>
#include <unicode/uchar.h>
#include <unicode/ubrk.h>
#include <unicode/uscript.h>
#include <stdio.h>

static const UNormalizer2 *instance(mulan_icu_form form, UErrorCode *status) {
    switch (form) {
    case MULAN_ICU_NFC: return unorm2_getNFCInstance(status);
    case MULAN_ICU_NFD: return unorm2_getNFDInstance(status);
    case MULAN_ICU_NFKC: return unorm2_getNFKCInstance(status);
    case MULAN_ICU_NFKD: return unorm2_getNFKDInstance(status);
    case MULAN_ICU_NFKC_CASEFOLD: return unorm2_getNFKCCasefoldInstance(status);
    }
    *status = U_ILLEGAL_ARGUMENT_ERROR;
    return NULL;
}

int32_t mulan_icu_normalize(mulan_icu_form form, const uint16_t *src, int32_t len,
                            uint16_t *dst, int32_t cap, int32_t *error) {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2 *norm = instance(form, &status);
    if (U_FAILURE(status)) { *error = status; return 0; }
    int32_t n = unorm2_normalize(norm, (const UChar *)src, len, (UChar *)dst, cap, &status);
    // A too-small buffer is reported through the returned length, not as an error.
    if (status == U_BUFFER_OVERFLOW_ERROR) status = U_ZERO_ERROR;
    *error = status;
    return n;
}

void mulan_icu_version(char *buf, int32_t cap) {
    UVersionInfo v;
    u_getVersion(v);
    snprintf(buf, (size_t)cap, "%d.%d", v[0], v[1]);
}

const char *mulan_icu_error_name(int32_t error) {
    return u_errorName((UErrorCode)error);
}

int32_t mulan_icu_char_age(uint32_t c) {
    UVersionInfo v;
    u_charAge((UChar32)c, v);
    return ((int32_t)v[0] << 8) | v[1];
}

int32_t mulan_icu_sentence_breaks(const char *locale, const uint16_t *text, int32_t len,
                                  int32_t *boundaries, int32_t cap) {
    UErrorCode status = U_ZERO_ERROR;
    UBreakIterator *it = ubrk_open(UBRK_SENTENCE, locale, (const UChar *)text, len, &status);
    if (U_FAILURE(status)) return -1;
    int32_t n = 0;
    ubrk_first(it);
    for (int32_t b = ubrk_next(it); b != UBRK_DONE; b = ubrk_next(it)) {
        if (n < cap) boundaries[n] = b;
        n++;
    }
    ubrk_close(it);
    return n;
}

int32_t mulan_icu_script(uint32_t c) {
    UErrorCode status = U_ZERO_ERROR;
    UScriptCode code = uscript_getScript((UChar32)c, &status);
    return U_FAILURE(status) ? -1 : (int32_t)code;
}

const char *mulan_icu_script_name(int32_t code) {
    const char *name = uscript_getName((UScriptCode)code);
    return name ? name : "Unknown";
}
