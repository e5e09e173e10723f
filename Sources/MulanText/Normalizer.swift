internal import CMulanICU

/// Unicode normalization through ICU (`unorm2_normalize`, via the CMulanICU C target).
public enum UnicodeNormalizer {
    public enum Form: Sendable {
        case nfc, nfd, nfkc, nfkd, nfkcCasefold

        var icu: mulan_icu_form {
            switch self {
            case .nfc: MULAN_ICU_NFC
            case .nfd: MULAN_ICU_NFD
            case .nfkc: MULAN_ICU_NFKC
            case .nfkd: MULAN_ICU_NFKD
            case .nfkcCasefold: MULAN_ICU_NFKC_CASEFOLD
            }
        }
    }

    public struct ICUError: Error, CustomStringConvertible {
        public let code: Int32
        public var description: String {
            "ICU normalization failed: \(String(cString: mulan_icu_error_name(code)))"
        }
    }

    /// The ICU version linked at run time, e.g. "72.1".
    public static var icuVersion: String {
        var buffer = [CChar](repeating: 0, count: 32)
        buffer.withUnsafeMutableBufferPointer { mulan_icu_version($0.baseAddress, 32) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Returns `text` in normalization form `form`.
    public static func normalize(_ text: String, form: Form) throws(ICUError) -> String {
        let source = Array(text.utf16)
        if source.isEmpty { return "" }
        var capacity = source.count * 2 + 16
        while true {
            var output = [UInt16](repeating: 0, count: capacity)
            var error: Int32 = 0
            let length = source.withUnsafeBufferPointer { src in
                output.withUnsafeMutableBufferPointer { dst in
                    mulan_icu_normalize(form.icu, src.baseAddress, Int32(src.count),
                                        dst.baseAddress, Int32(capacity), &error)
                }
            }
            if error > 0 { throw ICUError(code: error) }
            if Int(length) <= capacity {
                return String(decoding: output[0..<Int(length)], as: UTF16.self)
            }
            capacity = Int(length)
        }
    }
}
