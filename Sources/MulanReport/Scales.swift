import Foundation

/// Maps data values onto pixels along one axis and chooses the ticks to label.
protocol Scale {
    var lower: Double { get }
    var upper: Double { get }
    /// The pixel position of `value` (the range's ends for the domain's ends).
    func position(_ value: Double) -> Double
    /// Values to mark with a tick and a label, inside the domain.
    var ticks: [Double] { get }
    /// A tick's label.
    func tickLabel(_ value: Double) -> String
    /// Whether the scale can show `value` at all (a log scale cannot show 0).
    func accepts(_ value: Double) -> Bool
}

/// A linear scale whose domain is widened to "nice" round numbers (steps of 1, 2 or 5 × 10ᵏ).
struct LinearScale: Scale {
    let lower: Double
    let upper: Double
    let step: Double
    let from: Double
    let to: Double

    /// A domain covering `lower…upper` with about `tickCount` ticks, mapped onto `from…to` (pixels).
    /// `minimumStep` keeps ticks apart by at least that much (1 for integer data).
    init(covering lower: Double, _ upper: Double, tickCount: Int = 6, from: Double, to: Double, nice: Bool = true,
         minimumStep: Double = 0) {
        var lo = lower.isFinite ? lower : 0
        var hi = upper.isFinite ? upper : 1
        if hi < lo { swap(&lo, &hi) }
        if hi == lo {
            // A single value: a small symmetric window around it (or 0…1 around zero).
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
            if lower >= 0 && lo < 0 { lo = 0 }
        }
        let step = max(Self.niceStep((hi - lo) / Double(max(1, tickCount))), minimumStep)
        if nice {
            lo = (lo / step).rounded(.down) * step
            hi = (hi / step).rounded(.up) * step
        }
        self.lower = lo
        self.upper = hi
        self.step = step
        self.from = from
        self.to = to
    }

    /// 1 when every value is a whole number (counts, steps), so that no tick falls between them; else 0.
    static func minimumStep(for values: some Sequence<Double>) -> Double {
        values.allSatisfy { !$0.isFinite || $0 == $0.rounded() } ? 1 : 0
    }

    /// The round number (1, 2 or 5 × 10ᵏ) nearest above `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw.isFinite, raw > 0 else { return 1 }
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
        return nice * magnitude
    }

    func position(_ value: Double) -> Double {
        upper == lower ? from : from + (value - lower) / (upper - lower) * (to - from)
    }

    var ticks: [Double] {
        var result: [Double] = []
        let first = (lower / step - 1e-9).rounded(.up)
        let last = (upper / step + 1e-9).rounded(.down)
        guard first <= last, last - first < 1000 else { return [lower, upper] }
        var k = first
        while k <= last {
            // k·step rather than accumulating, so 0.1 + 0.2 errors never reach a label.
            let v = k * step
            result.append(abs(v) < step * 1e-9 ? 0 : v)
            k += 1
        }
        return result
    }

    func tickLabel(_ value: Double) -> String { TickFormat.label(value, step: step) }

    func accepts(_ value: Double) -> Bool { value.isFinite }
}

/// A base-10 logarithmic scale over whole decades; ticks at each power of ten (and at 2 and 5
/// between them when the domain spans at most two decades).
struct LogScale: Scale {
    let lower: Double
    let upper: Double
    let from: Double
    let to: Double

    init(covering lower: Double, _ upper: Double, from: Double, to: Double) {
        let lo = lower > 0 && lower.isFinite ? lower : 1
        let hi = upper > 0 && upper.isFinite ? max(upper, lo) : lo
        var a = (log10(lo) + 1e-9).rounded(.down)
        var b = (log10(hi) - 1e-9).rounded(.up)
        if b <= a { b = a + 1 }
        if a > b - 1 { a = b - 1 }
        self.lower = pow(10, a)
        self.upper = pow(10, b)
        self.from = from
        self.to = to
    }

    func position(_ value: Double) -> Double {
        let a = log10(lower), b = log10(upper)
        let v = log10(max(value, lower * 1e-3))
        return from + (v - a) / (b - a) * (to - from)
    }

    var ticks: [Double] {
        let a = Int(log10(lower).rounded()), b = Int(log10(upper).rounded())
        var result: [Double] = []
        for e in a...b {
            let base = pow(10, Double(e))
            result.append(base)
            if b - a <= 2 && e < b { result += [2 * base, 5 * base] }
        }
        return result
    }

    func tickLabel(_ value: Double) -> String { TickFormat.label(value, step: value) }

    func accepts(_ value: Double) -> Bool { value.isFinite && value > 0 }
}

/// Tick labels: as many decimals as the step needs, and k/M/G suffixes for large round values.
enum TickFormat {
    static func label(_ value: Double, step: Double) -> String {
        if value == 0 { return "0" }
        let magnitude = abs(value)
        for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e4, "k")] where magnitude >= limit {
            let scaled = value / (limit == 1e4 ? 1e3 : limit)
            let scaledStep = step / (limit == 1e4 ? 1e3 : limit)
            var text = Markup.fixed(scaled, decimals: decimals(for: scaledStep))
            // "1M" rather than "1.0M": a suffix already says the label is rounded.
            if text.contains(".") {
                while text.hasSuffix("0") { text.removeLast() }
                if text.hasSuffix(".") { text.removeLast() }
            }
            return text + suffix
        }
        return Markup.fixed(value, decimals: decimals(for: step))
    }

    /// Digits after the point needed to tell ticks `step` apart (0 for steps of 1 and more).
    static func decimals(for step: Double) -> Int {
        guard step.isFinite, step > 0, step < 1 else { return 0 }
        var d = 0
        var s = step
        while d < 8 && abs(s - s.rounded()) > 1e-6 * max(1, abs(s)) {
            s *= 10
            d += 1
        }
        return d
    }
}
