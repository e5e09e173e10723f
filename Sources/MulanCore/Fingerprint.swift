import Foundation

/// A track's raw Chromaprint fingerprint, or why it has none that can be matched.
///
/// `items` are Chromaprint's raw 32-bit sub-fingerprints, one every `itemSeconds` (4096/3 samples
/// at Chromaprint's internal 11025 Hz: about 0.124 s). Only `ok` fingerprints take part in
/// duplicate matching; the other statuses are recorded with a sentence saying why.
public struct Fingerprint: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable {
        /// Usable for matching.
        case ok
        /// Too little audio to give `minimumItems` items (about 10 s).
        case tooShort = "too-short"
        /// The audio fed is digital silence or below `silenceDB`.
        case silent
        /// Near-constant: too few distinct items for a match to mean anything (a drone, a tone).
        case lowInformation = "low-information"
        /// Chromaprint refused the audio (the detail has the call that failed).
        case failed
    }

    /// Chromaprint's algorithm id (`CHROMAPRINT_ALGORITHM_DEFAULT` is 1, "TEST2").
    public var algorithm: Int
    /// The rate of the mono audio fed to Chromaprint (it resamples to 11025 Hz itself).
    public var sampleRate: Int
    /// Seconds of audio fed.
    public var durationSeconds: Double
    /// Seconds per item.
    public var itemSeconds: Double
    public var items: [UInt32]
    public var status: Status
    public var detail: String?

    public init(algorithm: Int, sampleRate: Int, durationSeconds: Double, itemSeconds: Double, items: [UInt32],
                status: Status, detail: String? = nil) {
        self.algorithm = algorithm
        self.sampleRate = sampleRate
        self.durationSeconds = durationSeconds
        self.itemSeconds = itemSeconds
        self.items = items
        self.status = status
        self.detail = detail
    }

    /// The fewest items a matchable fingerprint has: 80 items, about 10 s (the shortest span
    /// mulan-dedupe accepts as a match).
    public static let minimumItems = 80
    /// Audio whose RMS level (after the downmix gain) is below this is silent (dBFS).
    public static let silenceDB = -60.0
    /// A fingerprint with fewer distinct items (low 4 bits ignored) than this share of its length
    /// is near-constant.
    public static let minimumDistinctShare = 0.1

    /// Items as little-endian bytes (the catalog's `raw` BLOB).
    public var littleEndianBytes: [UInt8] { Self.littleEndianBytes(items) }

    public static func littleEndianBytes(_ items: [UInt32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: items.count * 4)
        for (i, v) in items.enumerated() {
            bytes[4 * i] = UInt8(truncatingIfNeeded: v)
            bytes[4 * i + 1] = UInt8(truncatingIfNeeded: v >> 8)
            bytes[4 * i + 2] = UInt8(truncatingIfNeeded: v >> 16)
            bytes[4 * i + 3] = UInt8(truncatingIfNeeded: v >> 24)
        }
        return bytes
    }

    /// Items from little-endian bytes (a trailing partial item is ignored).
    public static func items(littleEndian bytes: [UInt8]) -> [UInt32] {
        (0..<(bytes.count / 4)).map { i in
            UInt32(bytes[4 * i]) | UInt32(bytes[4 * i + 1]) << 8 | UInt32(bytes[4 * i + 2]) << 16
                | UInt32(bytes[4 * i + 3]) << 24
        }
    }

    /// The status that items of an audible, successfully fingerprinted stream deserve: too short,
    /// near-constant, or ok (with the reason as a sentence).
    public static func judge(_ items: [UInt32], itemSeconds: Double) -> (Status, String?) {
        if items.count < minimumItems {
            return (.tooShort, "\(items.count) fingerprint items (\(String(format: "%.1f", Double(items.count) * itemSeconds)) s) "
                    + "are fewer than the \(minimumItems) a match needs")
        }
        let distinct = Set(items.map { $0 & 0xFFFF_FFF0 }).count
        if Double(distinct) < minimumDistinctShare * Double(items.count) {
            return (.lowInformation, "only \(distinct) distinct items of \(items.count): the audio is near-constant "
                    + "(a drone, a tone or noise), so it is never matched")
        }
        return (.ok, nil)
    }
}
