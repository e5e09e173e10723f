import Foundation
import MulanCore

/// Decoded training clips kept in memory (`mulan-train --decoded-cache MIB`), so that a clip drawn
/// again in a later epoch is not decoded again.
///
/// A 30-s clip at 16 kHz is 480,000 samples. A clip of 16-bit FLAC (mulan-ingest's default) decodes
/// to k / 32768 for integers k: the cache keeps k (2 bytes a sample, 960,000 bytes for that clip) and
/// gives back exactly the floats the decoder gave. A clip whose samples are not all on that grid
/// (24-bit FLAC, `--flac-bits 24`) is kept as the decoded floats (4 bytes a sample). Clips are kept in
/// the order they are first drawn while the stored samples stay within `capacityBytes`; past the limit
/// a clip is decoded each time it is drawn, so results do not depend on the limit. Safe to use from
/// the front end's worker threads.
final class DecodedClipCache: @unchecked Sendable {   // every access holds `lock`
    struct Key: Hashable {
        var shard: Int
        var offset: Int
    }

    /// A kept clip: 16-bit levels, or the floats themselves.
    private enum Kept {
        case levels([Int16])
        case floats([Float])

        var samples: [Float] {
            switch self {
            case .levels(let k): DecodedClipCache.floats(k)
            case .floats(let x): x
            }
        }
    }

    let capacityBytes: Int
    private var clips: [Key: Kept] = [:]
    private var bytes = 0
    private let lock = NSLock()
    private var hits = 0
    private var misses = 0

    init(capacityMiB: Int) { capacityBytes = capacityMiB << 20 }

    /// The samples of a clip, decoded by `decode` unless kept.
    func samples(_ key: Key, decode: () throws(MulanError) -> [Float]) throws(MulanError) -> [Float] {
        lock.lock()
        let kept = clips[key]
        if kept != nil { hits += 1 } else { misses += 1 }
        lock.unlock()
        if let kept { return kept.samples }
        let decoded = try decode()
        // Levels when every sample is on the 16-bit grid, else the floats (not worked out when even
        // levels would not fit).
        lock.lock()
        let mayFit = bytes + decoded.count * MemoryLayout<Int16>.size <= capacityBytes
        lock.unlock()
        let levels = mayFit ? Self.levels(decoded) : nil
        let entry = levels.map(Kept.levels) ?? .floats(decoded)
        let size = levels != nil ? decoded.count * MemoryLayout<Int16>.size : decoded.count * MemoryLayout<Float>.size
        lock.lock()
        if clips[key] == nil && bytes + size <= capacityBytes {
            clips[key] = entry
            bytes += size
        }
        lock.unlock()
        return decoded
    }

    /// Clips kept, their bytes, and the draws served from the cache or decoded.
    var statistics: DecodedCacheStatistics {
        lock.lock()
        defer { lock.unlock() }
        return DecodedCacheStatistics(capacityBytes: capacityBytes, clips: clips.count, bytes: bytes, hits: hits, misses: misses)
    }

    /// k with x = k / 32768 for every sample, or nil when a sample is not on that grid.
    static func levels(_ x: [Float]) -> [Int16]? {
        var out = [Int16](repeating: 0, count: x.count)
        let exact = x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                var ok = true
                for i in 0..<xp.count {
                    let scaled = xp[i] * 32768
                    guard scaled >= -32768, scaled <= 32767, scaled == scaled.rounded() else {
                        ok = false
                        break
                    }
                    op[i] = Int16(scaled)
                }
                return ok
            }
        }
        return exact ? out : nil
    }

    /// k / 32768 of every level: the floats `levels` came from.
    static func floats(_ k: [Int16]) -> [Float] {
        [Float](unsafeUninitializedCapacity: k.count) { buffer, count in
            k.withUnsafeBufferPointer { kp in
                for i in 0..<kp.count { buffer[i] = Float(kp[i]) / 32768 }
            }
            count = k.count
        }
    }
}

/// How the decoded-clip cache did in a run (`decoded_cache` in summary.json).
public struct DecodedCacheStatistics: Codable, Sendable, Equatable {
    /// The limit (`--decoded-cache` MiB).
    public var capacityBytes: Int
    /// Clips kept, and their bytes.
    public var clips: Int
    public var bytes: Int
    /// Draws served from the cache, and draws decoded.
    public var hits: Int
    public var misses: Int

    enum CodingKeys: String, CodingKey { case capacityBytes = "capacity_bytes", clips, bytes, hits, misses }
}
