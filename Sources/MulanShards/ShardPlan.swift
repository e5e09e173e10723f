import Foundation
import MulanCore

/// How samples are assigned to splits: fractions by a stable hash of the track id, unless the
/// manifest gave the track a split.
public struct SplitSpec: Sendable, Hashable {
    public var fractions: [(name: String, share: Double)]

    public static func == (a: SplitSpec, b: SplitSpec) -> Bool {
        a.fractions.map(\.name) == b.fractions.map(\.name) && a.fractions.map(\.share) == b.fractions.map(\.share)
    }
    public func hash(into h: inout Hasher) { for f in fractions { h.combine(f.name); h.combine(f.share) } }

    public static let `default` = SplitSpec(fractions: [("train", 0.98), ("valid", 0.01), ("test", 0.01)])

    /// Parses `train=0.98,valid=0.01,test=0.01`; shares must be positive and sum to 1.
    public init(parsing text: String) throws(MulanError) {
        var parts: [(String, Double)] = []
        for item in text.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let share = Double(kv[1]), share > 0, Self.isSafeName(kv[0]) else {
                throw MulanError(.usage, "--split must look like train=0.98,valid=0.01,test=0.01, got \"\(text)\"")
            }
            parts.append((kv[0], share))
        }
        let total = parts.reduce(0) { $0 + $1.1 }
        guard !parts.isEmpty, abs(total - 1) < 1e-6 else {
            throw MulanError(.usage, "--split shares must add up to 1 (they add up to \(total))")
        }
        fractions = parts
    }

    public init(fractions: [(name: String, share: Double)]) { self.fractions = fractions }

    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 32 && s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    /// The split of a track: its manifest split when given (validation/val → valid), else by hash.
    public func split(trackID: String, manifestSplit: String?) -> String {
        if let m = manifestSplit?.lowercased().trimmingCharacters(in: .whitespaces), !m.isEmpty {
            switch m {
            case "validation", "val", "dev": return "valid"
            case "training": return "train"
            case "eval", "evaluation": return "test"
            default: return Self.isSafeName(m) ? m : "train"
            }
        }
        let u = Double(ShardKeys.trackHash(trackID) >> 11) / Double(1 << 53)
        var acc = 0.0
        for f in fractions {
            acc += f.share
            if u < acc { return f.name }
        }
        return fractions.last?.name ?? "train"
    }
}

/// Sample keys and shuffle order.
public enum ShardKeys {
    /// The first 8 bytes of SHA-256(track id), as a number (the hash that also assigns tracks to workers).
    public static func trackHash(_ trackID: String) -> UInt64 { WorkerSlice.trackHash(trackID) }

    /// A WebDataset key: safe characters only, no dots, stable for a track id and clip index.
    public static func key(trackID: String, clipIndex: Int) -> String {
        let hex = SHA256Digest.hex(of: Array(trackID.utf8)).prefix(16)
        let index = String(clipIndex)
        return "\(hex)_\(String(repeating: "0", count: max(0, 4 - index.count)))\(index)"
    }

    /// The shuffle rank of a sample for a seed (a mixed 64-bit hash of seed and key).
    public static func rank(key: String, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var z = h &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
