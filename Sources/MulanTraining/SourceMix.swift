import MulanCore

/// How a batch divides among the sources: `tags=2,descriptions=2,playlists=1,aset=1` (MuLan's
/// 2:2:1:1) by default. Weights are relative; a source with weight 0 is never drawn.
///
/// Each batch's per-source counts come from rounding the cumulative targets (largest remainder), so
/// over many batches every source gets exactly its share, and each batch is within one example of it.
public struct SourceMix: Sendable, Equatable, Codable, CustomStringConvertible {
    public private(set) var weights: [TextSource: Double]

    public static let muLan = SourceMix(weights: [.tags: 2, .descriptions: 2, .playlists: 1, .aset: 1])

    public init(weights: [TextSource: Double]) {
        self.weights = weights.filter { $0.value > 0 }
    }

    /// Parses `name=weight,…`; names are the four sources.
    public init(parsing text: String) throws(MulanError) {
        var w: [TextSource: Double] = [:]
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let source = TextSource(rawValue: kv[0]) else {
                throw MulanError(.usage, "--mix: '\(part)' is not SOURCE=WEIGHT",
                                 hint: "sources are tags, descriptions, playlists, aset; e.g. tags=2,descriptions=2,playlists=1,aset=1")
            }
            guard let value = Double(kv[1]), value >= 0, value.isFinite else {
                throw MulanError(.usage, "--mix: the weight of \(source.rawValue) must be a number ≥ 0, got '\(kv[1])'")
            }
            guard w[source] == nil else { throw MulanError(.usage, "--mix names \(source.rawValue) twice") }
            w[source] = value
        }
        self.init(weights: w)
        guard !weights.isEmpty else { throw MulanError(.usage, "--mix gives no source a weight above 0") }
    }

    /// Sources with a positive weight, in the fixed order tags, descriptions, playlists, aset.
    public var sources: [TextSource] { TextSource.allCases.filter { weights[$0] != nil } }

    /// Shares summing to 1.
    public var shares: [TextSource: Double] {
        let total = weights.values.reduce(0, +)
        return weights.mapValues { $0 / total }
    }

    /// The mix without the sources not in `available` (their weight goes to the others in proportion).
    public func restricted(to available: Set<TextSource>) -> SourceMix {
        SourceMix(weights: weights.filter { available.contains($0.key) })
    }

    /// Examples per source in batch number `batch` (0-based) of `size` examples.
    public func quotas(batchSize size: Int, batch: Int) -> [TextSource: Int] {
        let before = cumulative(Int64(size) * Int64(batch))
        let after = cumulative(Int64(size) * Int64(batch + 1))
        var q: [TextSource: Int] = [:]
        for s in sources { q[s] = max(0, Int(after[s, default: 0] - before[s, default: 0])) }
        // Clamping can only add; take any excess from the largest quota so the batch is full-sized.
        var excess = q.values.reduce(0, +) - size
        while excess > 0, let top = q.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key })?.key {
            q[top]! -= 1
            excess -= 1
        }
        return q
    }

    /// Integer counts for `total` examples by largest remainder, ties to the earlier source.
    private func cumulative(_ total: Int64) -> [TextSource: Int64] {
        let shares = self.shares
        var counts: [TextSource: Int64] = [:]
        var remainders: [(TextSource, Double)] = []
        for s in sources {
            let exact = Double(total) * shares[s]!
            let whole = Int64(exact.rounded(.down))
            counts[s] = whole
            remainders.append((s, exact - Double(whole)))
        }
        var left = total - counts.values.reduce(0, +)
        for (s, _) in remainders.sorted(by: { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }) where left > 0 {
            counts[s]! += 1
            left -= 1
        }
        return counts
    }

    public var description: String {
        sources.map { s in "\(s.rawValue)=\(Self.format(weights[s]!))" }.joined(separator: ",")
    }

    private static func format(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : String(v)
    }
}
