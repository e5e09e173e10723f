import Foundation
import MulanCore

/// Matching on synthetic fingerprints, for the scaling benchmark (bench/dedupe-match.sh): random
/// items, with a share of noisy copies (each bit flipped with probability `bitErrorRate`, a random
/// part of the original at a random position) planted. Reports time, peak memory and how many
/// planted pairs were found.
public enum SyntheticBenchmark {
    public struct Result: Codable, Sendable {
        public var fingerprints: Int
        public var itemsPerFingerprint: Int
        public var planted: Int
        public var found: Int
        public var falsePairs: Int
        public var generateSeconds: Double
        public var matchSeconds: Double
        public var peakRSSMiB: Double
        public var statistics: MatchStatistics

        enum CodingKeys: String, CodingKey {
            case fingerprints, itemsPerFingerprint = "items_per_fingerprint", planted, found, falsePairs = "false_pairs"
            case generateSeconds = "generate_seconds", matchSeconds = "match_seconds", peakRSSMiB = "peak_rss_mib", statistics
        }
    }

    public static func run(count: Int, items: Int, duplicateShare: Double, bitErrorRate: Double, seed: UInt64,
                           settings: MatchSettings = MatchSettings()) -> Result {
        let started = Date()
        var rng = SplitMix64(seed: seed)
        var fingerprints: [[UInt32]] = []
        fingerprints.reserveCapacity(count)
        var planted = Set<UInt64>()
        for i in 0..<count {
            if i > 0 && rng.uniform() < duplicateShare {
                let original = Int(rng.next() % UInt64(i))
                let source = fingerprints[original]
                let length = max(Fingerprint.minimumItems + 20, Int(Double(source.count) * (0.6 + 0.4 * rng.uniform())))
                let start = Int(rng.next() % UInt64(max(1, source.count - length + 1)))
                var copy = Array(source[start..<min(source.count, start + length)])
                for k in copy.indices {
                    var flips: UInt32 = 0
                    for bit in 0..<32 where rng.uniform() < bitErrorRate { flips |= 1 << UInt32(bit) }
                    copy[k] ^= flips
                }
                fingerprints.append(copy)
                planted.insert(UInt64(original) << 32 | UInt64(i))
            } else {
                fingerprints.append((0..<items).map { _ in UInt32(truncatingIfNeeded: rng.next()) })
            }
        }
        let generated = Date()
        var statistics = MatchStatistics()
        let matches = Matcher(settings: settings).match(fingerprints, statistics: &statistics)
        let matched = Date()
        // A copy of a copy also matches the first original: count pairs in the planted closure as found.
        var uf = UnionFind(count)
        for p in planted { uf.union(Int(p >> 32), Int(p & 0xFFFF_FFFF)) }
        let found = Set(matches.map { UInt64($0.a) << 32 | UInt64($0.b) }).intersection(planted).count
        let falsePairs = matches.filter { uf.find($0.a) != uf.find($0.b) }.count
        return Result(fingerprints: count, itemsPerFingerprint: items, planted: planted.count, found: found,
                      falsePairs: falsePairs, generateSeconds: generated.timeIntervalSince(started),
                      matchSeconds: matched.timeIntervalSince(generated), peakRSSMiB: Double(PeakMemory.residentBytes()) / 1048576,
                      statistics: statistics)
    }
}
