import Foundation
import MulanCore

/// The thresholds of fingerprint matching (docs/dedupe.md explains each and how they were chosen).
public struct MatchSettings: Sendable, Hashable, Codable {
    /// Items per index key: 1 (each item alone, the default) or 2 (an item and the next one).
    /// Pairs of items make rarer keys (fewer chance collisions in a huge corpus) but a copy whose
    /// item grid is shifted by half an item (a trimmed or embedded copy) shares too few of them.
    public var keyItems = 1
    /// Bits of each item that take part in index keys (all 32 by default).
    public var keyMask: UInt32 = 0xFFFF_FFFF
    /// Index one position in `sampling` (chosen by the key's hash, so a copy samples the same keys).
    public var sampling: UInt64 = 2
    /// A key held by more postings than this is a stop-word (a common item pair) and votes for nothing.
    public var maxPostingsPerKey = 64
    /// Positions of one key kept per fingerprint (a sustained note repeats its key).
    public var maxPositionsPerTrack = 2
    /// Votes (sampled keys agreeing on one offset, ±1 item) a candidate pair needs to be verified.
    public var minVotes = 2
    /// Smoothing window of the verification, in items (about 2 s).
    public var windowItems = 16
    /// An item is in a matching run when the bit error rate of the window around it is at most this.
    public var windowMaxBER = 0.2
    /// A verified span has at most this bit error rate over its whole length.
    public var spanMaxBER = 0.1
    /// A verified span lasts at least this many items (80 items, about 10 s).
    public var minSpanItems = Fingerprint.minimumItems
    /// A verified span holds at least this share of distinct items (low 4 bits ignored): two
    /// stretches of the same drone or of silence are not a match.
    public var minSpanDistinctShare = Fingerprint.minimumDistinctShare
    /// Postings per pass of the index build; more postings are split into passes by key (memory bound).
    public var maxPostingsPerPass = 40_000_000

    public init() {}
}

/// A verified match between fingerprints `a` < `b`: item `i` of `a` lines up with item `i + offset`
/// of `b`; the matching span is `aStart..<aEnd` in `a` (and shifted by `offset` in `b`).
public struct VerifiedMatch: Sendable, Hashable {
    public var a: Int
    public var b: Int
    public var offset: Int
    public var aStart: Int
    public var aEnd: Int
    public var bitErrorRate: Double
    public var votes: Int

    public var bStart: Int { aStart + offset }
    public var bEnd: Int { aEnd + offset }
    public var length: Int { aEnd - aStart }
}

/// What matching did, for the report and the benchmark.
public struct MatchStatistics: Sendable, Codable {
    public var fingerprints = 0
    public var items = 0
    public var postings = 0
    public var passes = 0
    public var stopWordKeys = 0
    public var candidateVotes = 0
    public var candidatePairs = 0
    public var verifiedPairs = 0
    public var indexSeconds = 0.0
    public var verifySeconds = 0.0

    enum CodingKeys: String, CodingKey {
        case fingerprints, items, postings, passes
        case stopWordKeys = "stop_word_keys", candidateVotes = "candidate_votes", candidatePairs = "candidate_pairs"
        case verifiedPairs = "verified_pairs", indexSeconds = "index_seconds", verifySeconds = "verify_seconds"
    }
}

/// Finds fingerprints that share audio without comparing all pairs:
///
/// 1. **Index**: every position `i` of every fingerprint gives a key, a 64-bit hash of item `i`
///    (or of items `i` and `i + 1`, `keyItems` = 2); one key in `sampling` is kept (those whose hash
///    is 0 mod `sampling`, so two copies keep the same keys). Postings (key, fingerprint, position)
///    are sorted by key, in passes by key range when they are many.
/// 2. **Vote**: within a key, each pair of postings from different fingerprints votes for the
///    offset between their positions. Keys held by more than `maxPostingsPerKey` postings are skipped.
///    Only pairs that share keys are ever looked at, so the work grows with the number of items
///    plus the number of true (and stop-listed) collisions, not with the square of the corpus.
/// 3. **Verify**: for a pair's best offset (±1), the items are XORed along the alignment; the
///    longest run whose smoothed bit error rate stays low is the shared span, accepted when it is
///    long enough, clean enough and not near-constant.
public struct Matcher: Sendable {
    public var settings: MatchSettings

    public init(settings: MatchSettings = MatchSettings()) { self.settings = settings }

    struct Posting {
        var key: UInt64
        var track: UInt32
        var position: UInt32
    }

    struct Vote {
        var pair: UInt64
        var offset: Int32
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    func key(_ items: UnsafeBufferPointer<UInt32>, _ i: Int) -> UInt64 {
        settings.keyItems == 1 ? Self.mix(UInt64(items[i] & settings.keyMask))
            : Self.mix(UInt64(items[i] & settings.keyMask) << 32 | UInt64(items[i + 1] & settings.keyMask))
    }

    /// Every verified match among `fingerprints` (each pair once, `a` < `b`, best span only).
    public func match(_ fingerprints: [[UInt32]], statistics: inout MatchStatistics) -> [VerifiedMatch] {
        let started = Date()
        statistics.fingerprints = fingerprints.count
        statistics.items = fingerprints.reduce(0) { $0 + $1.count }
        let sampling = max(1, settings.sampling)
        // Count the sampled postings to choose the number of passes.
        var total = 0
        let width = max(1, min(2, settings.keyItems))
        for fp in fingerprints where fp.count >= width {
            fp.withUnsafeBufferPointer { items in
                for i in 0...(items.count - width) where key(items, i) % sampling == 0 { total += 1 }
            }
        }
        statistics.postings = total
        let passes = max(1, (total + settings.maxPostingsPerPass - 1) / max(1, settings.maxPostingsPerPass))
        statistics.passes = passes
        var votes: [Vote] = []
        var postings: [Posting] = []
        for pass in 0..<passes {
            postings.removeAll(keepingCapacity: true)
            for (t, fp) in fingerprints.enumerated() where fp.count >= width {
                fp.withUnsafeBufferPointer { items in
                    for i in 0...(items.count - width) {
                        let k = key(items, i)
                        guard k % sampling == 0, Int((k >> 40) % UInt64(passes)) == pass else { continue }
                        postings.append(Posting(key: k, track: UInt32(t), position: UInt32(i)))
                    }
                }
            }
            postings.sort { ($0.key, $0.track, $0.position) < ($1.key, $1.track, $1.position) }
            collectVotes(postings, into: &votes, statistics: &statistics)
        }
        postings = []
        statistics.candidateVotes = votes.count
        votes.sort { ($0.pair, $0.offset) < ($1.pair, $1.offset) }
        statistics.indexSeconds = Date().timeIntervalSince(started)

        let verifyStarted = Date()
        var matches: [VerifiedMatch] = []
        var i = 0
        while i < votes.count {
            var j = i
            while j < votes.count && votes[j].pair == votes[i].pair { j += 1 }
            // Best offset: most votes within ±1 item.
            var best = (votes: 0, offset: Int32(0))
            var lo = i
            var k = i
            while k < j {
                var end = k
                while end < j && votes[end].offset == votes[k].offset { end += 1 }
                while votes[lo].offset < votes[k].offset - 1 { lo += 1 }
                var hi = end
                while hi < j && votes[hi].offset <= votes[k].offset + 1 { hi += 1 }
                if hi - lo > best.votes { best = (hi - lo, votes[k].offset) }
                k = end
            }
            if best.votes >= settings.minVotes {
                statistics.candidatePairs += 1
                let a = Int(votes[i].pair >> 32), b = Int(votes[i].pair & 0xFFFF_FFFF)
                if var m = verify(fingerprints[a], fingerprints[b], around: Int(best.offset)) {
                    m.a = a
                    m.b = b
                    m.votes = best.votes
                    matches.append(m)
                }
            }
            i = j
        }
        statistics.verifiedPairs = matches.count
        statistics.verifySeconds = Date().timeIntervalSince(verifyStarted)
        return matches
    }

    private func collectVotes(_ postings: [Posting], into votes: inout [Vote], statistics: inout MatchStatistics) {
        var start = 0
        var group: [Posting] = []
        while start < postings.count {
            var end = start + 1
            while end < postings.count && postings[end].key == postings[start].key { end += 1 }
            defer { start = end }
            if end - start < 2 { continue }
            // Keep at most maxPositionsPerTrack positions per fingerprint (they come sorted).
            group.removeAll(keepingCapacity: true)
            var run = 0
            for p in start..<end {
                run = p > start && postings[p].track == postings[p - 1].track ? run + 1 : 0
                if run < settings.maxPositionsPerTrack { group.append(postings[p]) }
            }
            if group.count > settings.maxPostingsPerKey {
                statistics.stopWordKeys += 1
                continue
            }
            for x in 0..<group.count {
                for y in (x + 1)..<max(x + 1, group.count) where group[y].track != group[x].track {
                    // group is sorted by track, so group[x].track < group[y].track.
                    let pair = UInt64(group[x].track) << 32 | UInt64(group[y].track)
                    votes.append(Vote(pair: pair, offset: Int32(Int(group[y].position) - Int(group[x].position))))
                }
            }
        }
    }

    /// Verifies `a` against `b` near `offset` (item i of a ↔ item i + offset of b): the longest run
    /// of items whose smoothed bit error rate is low, if it passes the span tests.
    public func verify(_ a: [UInt32], _ b: [UInt32], around offset: Int) -> VerifiedMatch? {
        var best: VerifiedMatch?
        for off in (offset - 1)...(offset + 1) {
            guard let m = span(a, b, offset: off) else { continue }
            if let current = best, current.length > m.length || (current.length == m.length && current.bitErrorRate <= m.bitErrorRate) {
                continue
            }
            best = m
        }
        return best
    }

    func span(_ a: [UInt32], _ b: [UInt32], offset: Int) -> VerifiedMatch? {
        let lo = max(0, -offset), hi = min(a.count, b.count - offset)
        let n = hi - lo
        guard n >= settings.minSpanItems else { return nil }
        var errors = [Int32](repeating: 0, count: n)
        for i in 0..<n { errors[i] = Int32((a[lo + i] ^ b[lo + i + offset]).nonzeroBitCount) }
        // Prefix sums for window error rates.
        var prefix = [Int](repeating: 0, count: n + 1)
        for i in 0..<n { prefix[i + 1] = prefix[i] + Int(errors[i]) }
        let half = settings.windowItems / 2
        var bestRun = (start: 0, end: 0)
        var runStart = -1
        for i in 0...n {
            var good = false
            if i < n {
                let w0 = max(0, i - half), w1 = min(n, i + half)
                let ber = Double(prefix[w1] - prefix[w0]) / Double(32 * max(1, w1 - w0))
                good = ber <= settings.windowMaxBER
            }
            if good {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestRun.end - bestRun.start { bestRun = (runStart, i) }
                runStart = -1
            }
        }
        let length = bestRun.end - bestRun.start
        guard length >= settings.minSpanItems else { return nil }
        let ber = Double(prefix[bestRun.end] - prefix[bestRun.start]) / Double(32 * length)
        guard ber <= settings.spanMaxBER else { return nil }
        let distinct = Set(a[(lo + bestRun.start)..<(lo + bestRun.end)].map { $0 & 0xFFFF_FFF0 }).count
        guard Double(distinct) >= settings.minSpanDistinctShare * Double(length) else { return nil }
        return VerifiedMatch(a: 0, b: 0, offset: offset, aStart: lo + bestRun.start, aEnd: lo + bestRun.end,
                             bitErrorRate: ber, votes: 0)
    }
}

/// Union-find over 0..<n with path halving and union by size.
public struct UnionFind: Sendable {
    var parent: [Int]
    var size: [Int]

    public init(_ n: Int) {
        parent = Array(0..<n)
        size = [Int](repeating: 1, count: n)
    }

    public mutating func find(_ x: Int) -> Int {
        var x = x
        while parent[x] != x {
            parent[x] = parent[parent[x]]
            x = parent[x]
        }
        return x
    }

    public mutating func union(_ a: Int, _ b: Int) {
        var ra = find(a), rb = find(b)
        if ra == rb { return }
        if size[ra] < size[rb] { swap(&ra, &rb) }
        parent[rb] = ra
        size[ra] += size[rb]
    }
}
