internal import CMulanICU

/// BERT uncased WordPiece tokenization, id for id as Hugging Face `tokenizers`'
/// `BertWordPieceTokenizer(vocab, lowercase=True)` does it:
///
/// 1. clean: drop NUL, U+FFFD and every character of general category C* (Cc, Cf, Cs, Co, Cn)
///    except tab, CR and LF; turn White_Space characters into spaces;
/// 2. put spaces around CJK ideographs;
/// 3. strip accents: NFD (ICU), then drop nonspacing marks (Mn);
/// 4. lowercase (full Unicode mapping);
/// 5. split on whitespace, and on punctuation (ASCII 33–47, 58–64, 91–96, 123–126 and every
///    P* category), each punctuation character becoming a word of its own;
/// 6. WordPiece: greedy longest match first with `##` continuations; a word longer than 100
///    Unicode scalars, or with a part no piece matches, becomes `[UNK]`.
///
/// Pure-ASCII lines take a byte-level fast path. Not thread-safe (it keeps scratch buffers and
/// per-character caches): use one per thread.
public final class BertTokenizer {
    public let vocabulary: WordPieceVocabulary
    public let maxScalarsPerWord = 100

    private var word: [UInt8] = []
    private var scalars: [UInt32] = []
    private var utf16: [UInt16] = []
    private var normalized: [UInt16] = []
    private var normalizedCount = 0
    private var info: [UInt32: ScalarInfo] = [:]

    /// What steps 1–5 need to know of a non-ASCII scalar.
    private struct ScalarInfo {
        var removed: Bool      // dropped by cleaning
        var whitespace: Bool
        var cjk: Bool
        var mark: Bool         // Mn: dropped when stripping accents
        var punctuation: Bool
        var lower: [UInt32]    // full lowercase mapping
    }

    public init(vocabulary: WordPieceVocabulary) {
        self.vocabulary = vocabulary
        word.reserveCapacity(256)
    }

    // ASCII classes: 0 keep, 1 whitespace, 2 punctuation, 3 removed (control).
    private static let asciiClass: [UInt8] = (0..<128).map { b -> UInt8 in
        switch b {
        case 9, 10, 13, 32: 1
        case 0..<32, 127: 3
        case 33...47, 58...64, 91...96, 123...126: 2
        default: 0
        }
    }

    /// The ids of one line (no [CLS]/[SEP] unless `special`).
    public func encode(_ text: String, special: Bool = false) -> [Int32] {
        var out: [Int32] = []
        var copy = text
        copy.withUTF8 { encode(utf8: $0, special: special, into: &out) }
        return out
    }

    /// Appends the ids of UTF-8 `bytes` (invalid sequences count as U+FFFD, which cleaning drops).
    public func encode(utf8 bytes: UnsafeBufferPointer<UInt8>, special: Bool = false, into out: inout [Int32]) {
        if special, let cls = vocabulary.clsID { out.append(cls) }
        if !encodeASCII(bytes, into: &out) {
            encodeUnicode(bytes, into: &out)
        }
        if special, let sep = vocabulary.sepID { out.append(sep) }
    }

    // MARK: ASCII fast path

    /// Tokenizes a pure-ASCII line; returns false (having appended nothing) at the first non-ASCII byte.
    private func encodeASCII(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) -> Bool {
        for b in bytes where b >= 0x80 { return false }
        word.removeAll(keepingCapacity: true)
        for b in bytes {
            switch Self.asciiClass[Int(b)] {
            case 0:
                word.append(b >= 65 && b <= 90 ? b + 32 : b)
            case 1:
                flushWord(scalarCount: word.count, into: &out)
            case 2:
                flushWord(scalarCount: word.count, into: &out)
                word.append(b)
                flushWord(scalarCount: 1, into: &out)
            default:
                break
            }
        }
        flushWord(scalarCount: word.count, into: &out)
        return true
    }

    @inline(__always)
    private func flushWord(scalarCount: Int, into out: inout [Int32]) {
        if word.isEmpty { return }
        word.withUnsafeBufferPointer {
            vocabulary.appendPieces(of: $0, scalarCount: scalarCount, maxScalars: maxScalarsPerWord, to: &out)
        }
        word.removeAll(keepingCapacity: true)
    }

    // MARK: General path

    /// Hugging Face `tokenizers` takes general categories (for cleaning, accent stripping and
    /// punctuation) from tables of Unicode 8.0: a character assigned later has no category there
    /// (it is kept as a letter would be), and these few changed category since 8.0.
    static let categoryAsOfUnicode8: [UInt32: Unicode.GeneralCategory] = [
        0x166D: .otherPunctuation,   // CANADIAN SYLLABICS CHI SIGN: now So
        0x1734: .nonspacingMark,     // HANUNOO SIGN PAMUDPOD: now Mc
        0x1885: .otherLetter,        // MONGOLIAN LETTER ALI GALI BALUDA: now Mn
        0x1886: .otherLetter,        // MONGOLIAN LETTER ALI GALI THREE BALUDA: now Mn
        0xA9BD: .spacingMark,        // JAVANESE CONSONANT SIGN KERET: now Mn
        0x111C9: .otherPunctuation,  // SHARADA SANDHI MARK: now Mn
    ]

    /// The category a scalar had in Unicode 8.0, or nil when it was not yet assigned.
    static func category8(_ s: Unicode.Scalar) -> Unicode.GeneralCategory? {
        if let changed = categoryAsOfUnicode8[s.value] { return changed }
        let age = mulan_icu_char_age(s.value)
        if age == 0 || age > (8 << 8) { return nil }
        return s.properties.generalCategory
    }

    private func scalarInfo(_ v: UInt32) -> ScalarInfo {
        if let cached = info[v] { return cached }
        let s = Unicode.Scalar(v)!
        let category = Self.category8(s)
        var removed = v == 0 || v == 0xFFFD
        var punctuation = v < 128 && Self.asciiClass[Int(v)] == 2
        switch category {
        case .control?, .format?, .surrogate?, .privateUse?:
            removed = removed || !(v == 9 || v == 10 || v == 13)
        case .connectorPunctuation?, .dashPunctuation?, .closePunctuation?, .finalPunctuation?,
             .initialPunctuation?, .otherPunctuation?, .openPunctuation?:
            punctuation = true
        default:
            break
        }
        let cjk = (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v)
            || (0x20000...0x2A6DF).contains(v) || (0x2A700...0x2B73F).contains(v)
            || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
        let result = ScalarInfo(removed: removed, whitespace: s.properties.isWhitespace, cjk: cjk,
                                mark: category == .nonspacingMark, punctuation: punctuation,
                                lower: s.properties.lowercaseMapping.unicodeScalars.map(\.value))
        info[v] = result
        return result
    }

    private func encodeUnicode(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [Int32]) {
        // 1–2: clean and space out CJK ideographs, as UTF-16 for ICU.
        utf16.removeAll(keepingCapacity: true)
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                let v = s.value
                if v < 128 {
                    switch Self.asciiClass[Int(v)] {
                    case 3: continue loop
                    case 1: utf16.append(32)
                    default: utf16.append(UInt16(v))
                    }
                    continue loop
                }
                let i = scalarInfo(v)
                if i.removed { continue loop }
                if i.whitespace { utf16.append(32); continue loop }
                if i.cjk { utf16.append(32) }
                if v < 0x10000 {
                    utf16.append(UInt16(v))
                } else {
                    utf16.append(UInt16(0xD800 + ((v - 0x10000) >> 10)))
                    utf16.append(UInt16(0xDC00 + ((v - 0x10000) & 0x3FF)))
                }
                if i.cjk { utf16.append(32) }
            case .emptyInput:
                break loop
            case .error:
                continue loop  // U+FFFD, which cleaning removes
            }
        }
        // 3: NFD through ICU.
        nfd()
        // 3–5: strip marks, lowercase, split into words, WordPiece.
        word.removeAll(keepingCapacity: true)
        var count = 0
        var i = 0
        let n = normalizedCount
        while i < n {
            var v = UInt32(normalized[i])
            if UTF16.isLeadSurrogate(normalized[i]), i + 1 < n, UTF16.isTrailSurrogate(normalized[i + 1]) {
                v = 0x10000 + ((v - 0xD800) << 10) + (UInt32(normalized[i + 1]) - 0xDC00)
                i += 2
            } else {
                i += 1
            }
            if v < 128 {
                switch Self.asciiClass[Int(v)] {
                case 1:
                    flushWord(scalarCount: count, into: &out); count = 0
                case 2:
                    flushWord(scalarCount: count, into: &out)
                    word.append(UInt8(v))
                    flushWord(scalarCount: 1, into: &out); count = 0
                case 3:
                    break
                default:
                    word.append(v >= 65 && v <= 90 ? UInt8(v + 32) : UInt8(v))
                    count += 1
                }
                continue
            }
            let info = scalarInfo(v)
            if info.mark { continue }
            for l in info.lower {
                // Lowercasing never yields whitespace; it may yield punctuation only where the
                // character already was punctuation, so the split test uses the lowered scalar.
                let li = l < 128 ? nil : scalarInfo(l)
                let isPunct = l < 128 ? Self.asciiClass[Int(l)] == 2 : li!.punctuation
                let isSpace = l < 128 ? Self.asciiClass[Int(l)] == 1 : li!.whitespace
                if isSpace {
                    flushWord(scalarCount: count, into: &out); count = 0
                } else if isPunct {
                    flushWord(scalarCount: count, into: &out)
                    appendUTF8(l)
                    flushWord(scalarCount: 1, into: &out); count = 0
                } else {
                    appendUTF8(l)
                    count += 1
                }
            }
        }
        flushWord(scalarCount: count, into: &out)
    }

    @inline(__always)
    private func appendUTF8(_ v: UInt32) {
        switch v {
        case 0..<0x80:
            word.append(UInt8(v))
        case 0x80..<0x800:
            word.append(UInt8(0xC0 | (v >> 6)))
            word.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            word.append(UInt8(0xE0 | (v >> 12)))
            word.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            word.append(UInt8(0x80 | (v & 0x3F)))
        default:
            word.append(UInt8(0xF0 | (v >> 18)))
            word.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            word.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            word.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    /// `normalized[0..<normalizedCount]` = NFD(`utf16`) through ICU's unorm2_normalize.
    private func nfd() {
        let needed = utf16.count * 4 + 16
        if normalized.count < needed { normalized = [UInt16](repeating: 0, count: needed) }
        while true {
            var error: Int32 = 0
            let length = utf16.withUnsafeBufferPointer { src in
                normalized.withUnsafeMutableBufferPointer { dst in
                    mulan_icu_normalize(MULAN_ICU_NFD, src.baseAddress, Int32(src.count),
                                        dst.baseAddress, Int32(dst.count), &error)
                }
            }
            if error > 0 {  // cannot happen for well-formed UTF-16; keep the text as it is
                normalized = utf16
                normalizedCount = utf16.count
                return
            }
            if Int(length) <= normalized.count {
                normalizedCount = Int(length)
                return
            }
            normalized = [UInt16](repeating: 0, count: Int(length))
        }
    }
}
