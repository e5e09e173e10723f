import Foundation

/// The true peak (ITU-R BS.1770-4 Annex 2) of a mono float stream fed in chunks, measured as
/// libebur128 1.2.6's `ebur128_true_peak` measures it, by a vectorized polyphase interpolator of
/// our own (libebur128's scalar one spent most of a clip's loudness time; issue 18):
///
/// - oversampling by 4 below 96 kHz, by 2 below 192 kHz, none from 192 kHz (the sample peak);
/// - one 49-tap low-pass FIR: tap j (0…48) is sinc((j − 24)/F) under a Hann window
///   0.5·(1 − cos(2πj/48)); tap j belongs to phase j mod F with delay ⌊j/F⌋, and taps with
///   |c| ≤ 1e-6 are dropped. At 4× each of phases 1–3 keeps 12 taps (delays 0…11); phase 0 keeps
///   only the centre tap, 1.0, so its outputs are the input samples delayed, which the sample
///   peak covers;
/// - the filter starts from zeros and is not flushed: every input sample gives F outputs from it
///   and the samples before it, nothing more after the last;
/// - the result is the larger of the largest |output| and the sample peak.
///
/// Outputs are summed in Float (libebur128 sums in Double, then rounds each output to Float): a
/// few ulp apart, far below the 0.01 dB the tests allow (`TruePeakTests`). No allocation after
/// `init`; 8 outputs of every phase at a time (SIMD8), one pass over the samples.
public struct TruePeakMeter: Sendable {
    public let sampleRate: Int
    /// Output samples per input sample: 4, 2 or 1.
    public let factor: Int
    /// Phases whose outputs are not plain copies of input samples.
    let phases: Int
    /// Taps per phase (dense; a dropped tap is 0).
    let taps: Int
    /// `coefficients[t * phases + p]`: phase p's weight of the sample t before the current one.
    let coefficients: [Float]
    /// The last `taps − 1` samples, then room for a block: the kernel reads back `taps − 1`.
    private var work: [Float]
    private var peak: Float = 0
    static let block = 4096

    public init(sampleRate: Int) {
        self.sampleRate = sampleRate
        let factor = sampleRate < 96000 ? 4 : sampleRate < 192000 ? 2 : 1
        self.factor = factor
        // The 49-tap design, as libebur128 computes it (in Double), split into phases.
        let length = 49
        var byPhase = [[(delay: Int, c: Double)]](repeating: [], count: factor)
        if factor > 1 {
            for j in 0..<length {
                let m = Double(j) - Double(length - 1) / 2
                var c = 1.0
                if abs(m) > 1e-6 { c = sin(m * Double.pi / Double(factor)) / (m * Double.pi / Double(factor)) }
                c *= 0.5 * (1 - cos(2 * Double.pi * Double(j) / Double(length - 1)))
                if abs(c) > 1e-6 { byPhase[j % factor].append((j / factor, c)) }
            }
        }
        // A phase of one unit tap copies input samples: the sample peak measures those.
        let interpolating = byPhase.filter { !($0.count == 1 && $0[0].c == 1) && !$0.isEmpty }
        let taps = max(1, (interpolating.flatMap { $0.map(\.delay) }.max() ?? 0) + 1)
        var coefficients = [Float](repeating: 0, count: taps * max(interpolating.count, 1))
        for (p, phase) in interpolating.enumerated() {
            for tap in phase { coefficients[tap.delay * interpolating.count + p] = Float(tap.c) }
        }
        self.phases = interpolating.count
        self.taps = taps
        self.coefficients = coefficients
        work = [Float](repeating: 0, count: taps - 1 + Self.block)
    }

    /// Feeds finite samples (full scale 1).
    public mutating func feed(_ chunk: UnsafeBufferPointer<Float>) {
        guard let source = chunk.baseAddress else { return }
        let history = taps - 1
        var offset = 0
        var found = peak
        coefficients.withUnsafeBufferPointer { h in
            work.withUnsafeMutableBufferPointer { w in
                let base = w.baseAddress!
                while offset < chunk.count {
                    let n = min(Self.block, chunk.count - offset)
                    (base + history).update(from: source + offset, count: n)
                    found = max(found, Self.extremes(base + history, count: n, taps: taps, phases: phases, h.baseAddress!))
                    // Keep the last `history` samples (regions may overlap when n < history).
                    memmove(base, base + n, history * MemoryLayout<Float>.stride)
                    offset += n
                }
            }
        }
        peak = found
    }

    /// The true peak of everything fed so far (linear, full scale 1; 0 for silence).
    public var truePeak: Float { peak }

    /// The true peak of a whole clip.
    public static func measure(_ samples: UnsafeBufferPointer<Float>, sampleRate: Int) -> Float {
        var meter = TruePeakMeter(sampleRate: sampleRate)
        meter.feed(samples)
        return meter.truePeak
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// max |y| over the interpolated outputs and the samples of x[0..<count], reading back to
    /// x[−(taps − 1)]. Running maxima and minima by compare-and-replace: `pointwiseMax` (NaN-aware,
    /// lane by lane) made the whole kernel 10× slower.
    private static func extremes(_ x: UnsafePointer<Float>, count: Int, taps: Int, phases: Int,
                                 _ h: UnsafePointer<Float>) -> Float {
        var hi = SIMD8<Float>(repeating: 0), lo = SIMD8<Float>(repeating: 0)
        var n = 0
        if phases == 3 {
            while n + 8 <= count {
                let current = load(x + n)
                var a0 = current * h[0], a1 = current * h[1], a2 = current * h[2]
                var t = 1
                while t < taps {
                    let v = load(x + n - t)
                    a0 += v * h[3 * t]
                    a1 += v * h[3 * t + 1]
                    a2 += v * h[3 * t + 2]
                    t += 1
                }
                hi.replace(with: current, where: current .> hi)
                lo.replace(with: current, where: current .< lo)
                hi.replace(with: a0, where: a0 .> hi)
                lo.replace(with: a0, where: a0 .< lo)
                hi.replace(with: a1, where: a1 .> hi)
                lo.replace(with: a1, where: a1 .< lo)
                hi.replace(with: a2, where: a2 .> hi)
                lo.replace(with: a2, where: a2 .< lo)
                n += 8
            }
        } else {
            while n + 8 <= count {
                let current = load(x + n)
                hi.replace(with: current, where: current .> hi)
                lo.replace(with: current, where: current .< lo)
                for p in 0..<phases {
                    var a = current * h[p]
                    var t = 1
                    while t < taps {
                        a += load(x + n - t) * h[t * phases + p]
                        t += 1
                    }
                    hi.replace(with: a, where: a .> hi)
                    lo.replace(with: a, where: a .< lo)
                }
                n += 8
            }
        }
        var result = max(hi.max(), -lo.min())
        while n < count {
            result = max(result, abs(x[n]))
            for p in 0..<phases {
                var a: Float = 0
                for t in 0..<taps { a += x[n - t] * h[t * phases + p] }
                result = max(result, abs(a))
            }
            n += 1
        }
        return result
    }
}
