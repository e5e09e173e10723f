import Foundation

/// Equal-width bins over a range fixed in advance, filled by streaming values (or by counts that
/// SQL grouped), so memory does not depend on how many values there are.
public struct Histogram: Sendable, Equatable {
    /// The left edge of the first bin.
    public let lower: Double
    public let width: Double
    public private(set) var counts: [Int]

    public init(lower: Double, width: Double, bins: Int) {
        self.lower = lower
        self.width = width > 0 && width.isFinite ? width : 1
        self.counts = Array(repeating: 0, count: max(1, bins))
    }

    /// Bins of a round width (1, 2 or 5 × 10ᵏ) covering `minimum…maximum` with about `target`
    /// bins. For integer data the edges fall halfway between integers, so each integer sits in the
    /// middle of its bin. A `minimumWidth` (a measurement's resolution) makes bins at least that wide
    /// and centres them on multiples of their width, so that values equal to within rounding (clips
    /// normalized to −20 LUFS read −20.0000003 or −19.9999998) share one bin instead of straddling an
    /// edge; data narrower than one bin that still straddles one gets one bin centred on it.
    public static func covering(_ minimum: Double, _ maximum: Double, target: Int = 40, integer: Bool = false,
                                minimumWidth: Double = 0) -> Histogram {
        let lo = minimum.isFinite ? minimum : 0
        let hi = maximum.isFinite ? max(maximum, lo) : lo
        var width = hi > lo ? LinearScale.niceStep((hi - lo) / Double(max(1, target)))
                            : LinearScale.niceStep(max(abs(lo), 1) / 20)
        if integer { width = max(1, width.rounded(.up)) }
        if minimumWidth > 0 && width < minimumWidth { width = LinearScale.niceStep(minimumWidth) }
        var lower = (lo / width).rounded(.down) * width
        if integer {
            lower -= 0.5
        } else if minimumWidth > 0 {
            lower = (lo / width).rounded() * width - width / 2
            if hi - lo < width && lower + width <= hi { lower = (lo + hi) / 2 - width / 2 }
        } else if hi == lo {
            lower = lo - width / 2   // one bin centred on the only value
        }
        if lower > lo { lower -= width }
        let bins = Int(((hi - lower) / width).rounded(.down)) + 1
        return Histogram(lower: lower, width: width, bins: min(bins, 4 * max(1, target)))
    }

    public var upper: Double { lower + width * Double(counts.count) }
    public var total: Int { counts.reduce(0, +) }

    /// The bin of `value`; values outside the range go to the first or the last bin.
    public func bin(of value: Double) -> Int {
        guard value.isFinite else { return value < 0 ? 0 : counts.count - 1 }
        let k = ((value - lower) / width).rounded(.down)
        return Int(min(max(k, 0), Double(counts.count - 1)))
    }

    public mutating func add(_ value: Double, count: Int = 1) {
        counts[bin(of: value)] += count
    }

    /// Adds `count` to bin `index` (as grouped by SQL), clamped into the range.
    public mutating func add(bin index: Int, count: Int) {
        counts[min(max(index, 0), counts.count - 1)] += count
    }

    /// The edges of bin `index`.
    public func edges(_ index: Int) -> (lower: Double, upper: Double) {
        (lower + width * Double(index), lower + width * Double(index + 1))
    }
}

/// Keeps at most about `limit` points of a series of unknown length, in a fixed way: every
/// `stride`-th point, the stride doubling whenever the kept points would exceed the limit; the
/// last point is always kept. The same input gives the same points.
struct DecimatedSeries {
    let limit: Int
    private(set) var points: [(x: Double, y: Double)] = []
    private var stride = 1
    private var seen = 0
    private var last: (x: Double, y: Double)?

    init(limit: Int = 1500) { self.limit = max(2, limit) }

    mutating func append(x: Double, y: Double) {
        guard x.isFinite, y.isFinite else { return }
        if seen % stride == 0 {
            points.append((x, y))
            if points.count > limit {
                points = points.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
                stride *= 2
            }
        }
        seen += 1
        last = (x, y)
    }

    /// The kept points plus the last one, ordered by x.
    var result: [(x: Double, y: Double)] {
        var all = points
        if let last, all.last.map({ $0.x != last.x || $0.y != last.y }) ?? true { all.append(last) }
        return all.enumerated().sorted { ($0.element.x, $0.offset) < ($1.element.x, $1.offset) }.map(\.element)
    }

    var isEmpty: Bool { seen == 0 }
}
