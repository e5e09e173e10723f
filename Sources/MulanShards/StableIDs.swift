import Foundation
import MulanCatalog
import MulanCore

/// Ids in a sample's JSON that name the same track, clip and raw text whichever catalog (or worker
/// part) holds them: the first 8 bytes of SHA-256 over NUL-separated fields, big-endian, with the
/// top bit cleared (a non-negative 63-bit integer).
///
/// - track: `"track" ␀ track_id`
/// - clip: `"clip" ␀ track_id ␀ clip_index`
/// - raw text: `"text" ␀ track_id ␀ origin ␀ origin_file ␀ origin_line ␀ n`, where n counts the
///   track's earlier raw texts with the same origin, file and line (0 for the first).
public enum StableIDs {
    public static func of(_ fields: [String]) -> Int {
        let hex = SHA256Digest.hex(of: Array(fields.joined(separator: "\u{0}").utf8))
        return Int((UInt64(hex.prefix(16), radix: 16) ?? 0) & 0x7FFF_FFFF_FFFF_FFFF)
    }

    public static func track(_ trackID: String) -> Int { of(["track", trackID]) }

    public static func clip(track: String, index: Int) -> Int { of(["clip", track, String(index)]) }

    /// The stable id of each raw text of a track, by its catalog row id.
    static func rawTexts(of track: String, in store: ShardSourceStore) throws(MulanError) -> [Int: Int] {
        var ids: [Int: Int] = [:]
        var seen: [String: Int] = [:]
        for text in try store.rawTextOrigins(track: track) {
            let fields = ["text", track, text.origin ?? "", text.originFile ?? "", String(text.originLine ?? 0)]
            let place = fields.joined(separator: "\u{0}")
            let n = seen[place, default: 0]
            seen[place] = n + 1
            ids[text.id] = of(fields + [String(n)])
        }
        return ids
    }
}
