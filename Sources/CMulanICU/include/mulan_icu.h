#ifndef MULAN_ICU_H
#define MULAN_ICU_H
// A C boundary for ICU. ICU renames every C function with a version suffix
// (unorm2_normalize -> unorm2_normalize_72) through macros that Swift cannot
// see, and ICU's headers clash with Foundation's bundled ICU; so this header
// includes no ICU header and exposes plain, unsuffixed functions instead.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Normalization forms understood by mulan_icu_normalize.
typedef enum {
    MULAN_ICU_NFC = 0,
    MULAN_ICU_NFD = 1,
    MULAN_ICU_NFKC = 2,
    MULAN_ICU_NFKD = 3,
    MULAN_ICU_NFKC_CASEFOLD = 4,
} mulan_icu_form;

/// Normalizes UTF-16 `src` (length `len`) into `dst` (capacity `cap` units)
/// with unorm2_normalize. Returns the length of the result; when it is larger
/// than `cap` nothing useful was written and the caller retries with a larger
/// buffer. `*error` receives the ICU UErrorCode (0 or negative: success).
int32_t mulan_icu_normalize(mulan_icu_form form, const uint16_t *src, int32_t len,
                            uint16_t *dst, int32_t cap, int32_t *error);

/// The ICU library version as "major.minor" (u_getVersion), written into `buf`.
void mulan_icu_version(char *buf, int32_t cap);

/// The Unicode version in which `c` was assigned (u_charAge), as major << 8 | minor;
/// 0 for unassigned code points.
int32_t mulan_icu_char_age(uint32_t c);

/// Sentence boundaries of UTF-16 `text` by ICU's sentence break iterator (ubrk_open(UBRK_SENTENCE)
/// for `locale`, e.g. "en"). Writes up to `cap` boundary offsets (UTF-16 units, ending with `len`)
/// and returns how many there are (which may exceed `cap`), or -1 on error.
int32_t mulan_icu_sentence_breaks(const char *locale, const uint16_t *text, int32_t len,
                                  int32_t *boundaries, int32_t cap);

/// The ICU script code (UScriptCode) of a code point (uscript_getScript); -1 on error.
int32_t mulan_icu_script(uint32_t c);

/// The long name of an ICU script code ("Latin", "Cyrillic", "Han", "Common", …).
const char *mulan_icu_script_name(int32_t code);

/// The human-readable name of an ICU UErrorCode (u_errorName).
const char *mulan_icu_error_name(int32_t error);

#ifdef __cplusplus
}
#endif
#endif
