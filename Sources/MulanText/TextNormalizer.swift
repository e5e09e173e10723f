internal import CMulanICU

/// Normalizes weak text through ICU: NFKC, removal of control and format characters (tab and
/// newline become spaces), whitespace folded to single spaces, trimmed. Also splits text into
/// sentences (ICU's sentence break iterator) and names its dominant script (uscript_getScript).
public enum TextNormalizer {
    /// NFKC, no control or format characters, single spaces, trimmed.
    public static func normalize(_ text: String) -> String {
        let nfkc = (try? UnicodeNormalizer.normalize(text, form: .nfkc)) ?? text
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for s in nfkc.unicodeScalars {
            let category = s.properties.generalCategory
            if s.properties.isWhitespace || s == "\t" || s == "\n" {
                pendingSpace = !out.isEmpty
                continue
            }
            switch category {
            case .control, .format, .surrogate, .privateUse, .unassigned:
                continue
            default:
                break
            }
            if s == "\u{FFFD}" { continue }
            if pendingSpace { out.append(" "); pendingSpace = false }
            out.append(s)
        }
        return String(out)
    }

    /// The sentences of `text` by ICU's sentence break iterator, each normalized; empty ones dropped.
    public static func sentences(_ text: String, locale: String = "en") -> [String] {
        let units = Array(text.utf16)
        if units.isEmpty { return [] }
        var cap = max(16, units.count / 20)
        var boundaries = [Int32](repeating: 0, count: cap)
        var n: Int32 = 0
        while true {
            n = units.withUnsafeBufferPointer { u in
                boundaries.withUnsafeMutableBufferPointer { b in
                    mulan_icu_sentence_breaks(locale, u.baseAddress, Int32(u.count), b.baseAddress, Int32(cap))
                }
            }
            if n < 0 { return [normalize(text)].filter { !$0.isEmpty } }
            if Int(n) <= cap { break }
            cap = Int(n)
            boundaries = [Int32](repeating: 0, count: cap)
        }
        var result: [String] = []
        var start = 0
        for b in boundaries.prefix(Int(n)) {
            let sentence = normalize(String(decoding: units[start..<Int(b)], as: UTF16.self))
            if !sentence.isEmpty { result.append(sentence) }
            start = Int(b)
        }
        return result
    }

    /// The script of most letters in `text` ("Latin", "Cyrillic", "Han", …), ignoring Common and
    /// Inherited characters; "Common" when there are no letters.
    public static func dominantScript(_ text: String) -> String {
        var counts: [Int32: Int] = [:]
        for s in text.unicodeScalars where s.properties.isAlphabetic {
            let code = mulan_icu_script(s.value)
            if code > 1 { counts[code, default: 0] += 1 }  // 0 Common, 1 Inherited
        }
        guard let best = counts.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }) else {
            return "Common"
        }
        return String(cString: mulan_icu_script_name(best.key))
    }
}
