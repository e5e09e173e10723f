import Foundation

/// Integrated loudness and loudness range of a mono float stream fed in chunks (ITU-R BS.1770-4,
/// EBU Tech 3341/3342), computed as libebur128 1.2.6 computes them in its exact (non-histogram)
/// mode for one channel weighted 1.0 — our own code since issue 18: libebur128's scalar filter and
/// its re-summing of every 400 ms and 3 s block were 6–10 % of a clip's ingest time.
///
/// - K-weighting: the high-shelf pre-filter (f0 1681.974450955533 Hz, gain 3.999843853973347 dB,
///   Q 0.7071752369554196, shelf exponent 0.4996667741545416) and the RLB high-pass (f0
///   38.13547087602444 Hz, Q 0.5003270373238773), derived for the sample rate by the bilinear
///   transform and multiplied into one 4th-order filter, run in Double in direct form II from a
///   zero state.
/// - 100 ms is `(rate + 5) / 10` samples. Every completed 100 ms sub-block closes a 400 ms gating
///   block (the last four sub-blocks) once four exist; the 3 s short-term blocks (the last thirty)
///   close at 3 s, 4 s, 5 s, … A block's energy is its mean square; blocks below the −70 LUFS
///   absolute gate are not kept. Samples after the last complete sub-block count in no block.
/// - Integrated: the mean energy of the kept gating blocks at or above a relative gate 10 LU below
///   their mean, as LUFS (10·log10(energy) − 0.691); −∞ when no block passes.
/// - Range: the kept short-term energies at or above 20 LU below their mean, sorted; the
///   difference of the loudness at indices ⌊(n−1)·0.95 + 0.5⌋ and ⌊(n−1)·0.1 + 0.5⌋; 0 when none.
///
/// Sums run in a different order from libebur128's (per sub-block, two accumulators), so values
/// differ from it in the last bits (`GatedLoudnessTests` require 1e-6 LU and measure ~1e-13); they
/// do not depend on how the stream is cut into chunks (the same arithmetic for every sample). The
/// filter state is flushed to zero below the smallest normal Double after every sub-block, as
/// libebur128 does where it cannot set flush-to-zero, so a fade to digital silence does not run on
/// denormals for long.
public struct GatedLoudnessMeter: Sendable {
    public let sampleRate: Int
    /// Samples in 100 ms.
    public let subBlockSamples: Int
    private let b0, b1, b2, b3, b4: Double
    private let a1, a2, a3, a4: Double
    private var v1 = 0.0, v2 = 0.0, v3 = 0.0, v4 = 0.0
    private var inSubBlock = 0
    /// Σ y² of the current sub-block's samples at even and at odd positions.
    private var evenSum = 0.0, oddSum = 0.0
    /// Σ y² of the last 30 sub-blocks, by sub-block number mod 30.
    private var recent = [Double](repeating: 0, count: 30)
    private var subBlocks = 0
    /// Energies of the gating (400 ms) and short-term (3 s) blocks at or above the absolute gate.
    private(set) var gatingBlocks: [Double] = []
    private(set) var shortTermBlocks: [Double] = []

    /// The energy of −70 LUFS.
    static let absoluteGate = pow(10, (-70 + 0.691) / 10)

    /// The rates libebur128 accepts (16 Hz … 2.8224 MHz); nil outside them.
    public init?(sampleRate: Int) {
        guard sampleRate >= 16, sampleRate <= 2_822_400 else { return nil }
        self.sampleRate = sampleRate
        subBlockSamples = (sampleRate + 5) / 10
        let rate = Double(sampleRate)
        // The pre-filter (a high shelf).
        var f0 = 1681.974450955533, q = 0.7071752369554196
        var k = tan(Double.pi * f0 / rate)
        let vh = pow(10, 3.999843853973347 / 20)
        let vb = pow(vh, 0.4996667741545416)
        let d = 1 + k / q + k * k
        let pb = [(vh + vb * k / q + k * k) / d, 2 * (k * k - vh) / d, (vh - vb * k / q + k * k) / d]
        let pa = [1, 2 * (k * k - 1) / d, (1 - k / q + k * k) / d]
        // The RLB high-pass.
        f0 = 38.13547087602444
        q = 0.5003270373238773
        k = tan(Double.pi * f0 / rate)
        let e = 1 + k / q + k * k
        let rb = [1.0, -2, 1]
        let ra = [1, 2 * (k * k - 1) / e, (1 - k / q + k * k) / e]
        func product(_ x: [Double], _ y: [Double]) -> [Double] {
            [x[0] * y[0], x[0] * y[1] + x[1] * y[0], x[0] * y[2] + x[1] * y[1] + x[2] * y[0],
             x[1] * y[2] + x[2] * y[1], x[2] * y[2]]
        }
        let b = product(pb, rb), a = product(pa, ra)
        (b0, b1, b2, b3, b4) = (b[0], b[1], b[2], b[3], b[4])
        (a1, a2, a3, a4) = (a[1], a[2], a[3], a[4])
        gatingBlocks.reserveCapacity(320)
        shortTermBlocks.reserveCapacity(32)
    }

    /// Feeds samples (full scale 1), each multiplied by `gain` in Float first when it is not 1.
    public mutating func feed(_ chunk: UnsafeBufferPointer<Float>, gain: Float = 1) {
        guard var p = chunk.baseAddress else { return }
        var left = chunk.count
        while left > 0 {
            let take = min(subBlockSamples - inSubBlock, left)
            filter(p, take, gain: gain)
            inSubBlock += take
            p += take
            left -= take
            if inSubBlock == subBlockSamples { closeSubBlock() }
        }
    }

    /// One sample through the filter: the state shifts, the K-weighted output comes back.
    /// v0 = x − a1·v1 − …: the part without v1 does not wait for the previous sample.
    @inline(__always)
    private func step(_ x: Double, _ s1: inout Double, _ s2: inout Double, _ s3: inout Double,
                      _ s4: inout Double) -> Double {
        let t = x - a2 * s2 - a3 * s3 - a4 * s4
        let w = t.addingProduct(-a1, s1)
        let y = b0 * w + b1 * s1 + b2 * s2 + b3 * s3 + b4 * s4
        s4 = s3; s3 = s2; s2 = s1; s1 = w
        return y
    }

    /// Adds the squares of the K-weighted outputs of `count` samples (× `gain`, exact when it is 1)
    /// to the sub-block's two sums: samples at even positions of the sub-block to one, odd to the
    /// other, each in order, so that the values do not depend on how the stream was chunked.
    @inline(__always)
    private mutating func filter(_ x: UnsafePointer<Float>, _ count: Int, gain: Float) {
        var (s1, s2, s3, s4) = (v1, v2, v3, v4)
        var even = evenSum, odd = oddSum
        var i = 0
        if inSubBlock & 1 == 1 && count > 0 {
            let y = step(Double(x[0] * gain), &s1, &s2, &s3, &s4)
            odd += y * y
            i = 1
        }
        while i + 1 < count {
            let y0 = step(Double(x[i] * gain), &s1, &s2, &s3, &s4)
            let y1 = step(Double(x[i + 1] * gain), &s1, &s2, &s3, &s4)
            even += y0 * y0
            odd += y1 * y1
            i += 2
        }
        if i < count {
            let y = step(Double(x[i] * gain), &s1, &s2, &s3, &s4)
            even += y * y
        }
        (v1, v2, v3, v4) = (s1, s2, s3, s4)
        (evenSum, oddSum) = (even, odd)
    }

    private mutating func closeSubBlock() {
        recent[subBlocks % 30] = evenSum + oddSum
        subBlocks += 1
        (evenSum, oddSum) = (0, 0)
        inSubBlock = 0
        let tiny = Double.leastNormalMagnitude
        if abs(v1) < tiny { v1 = 0 }
        if abs(v2) < tiny { v2 = 0 }
        if abs(v3) < tiny { v3 = 0 }
        if abs(v4) < tiny { v4 = 0 }
        if subBlocks >= 4 {
            let energy = lastSubBlocks(4) / Double(4 * subBlockSamples)
            if energy >= Self.absoluteGate { gatingBlocks.append(energy) }
        }
        if subBlocks >= 30 && subBlocks % 10 == 0 {
            let energy = lastSubBlocks(30) / Double(30 * subBlockSamples)
            if energy >= Self.absoluteGate { shortTermBlocks.append(energy) }
        }
    }

    private func lastSubBlocks(_ n: Int) -> Double {
        var sum = 0.0
        for j in (subBlocks - n)..<subBlocks { sum += recent[j % 30] }
        return sum
    }

    static func lufs(_ energy: Double) -> Double { 10 * log10(energy) - 0.691 }

    /// Integrated loudness (LUFS) of everything fed so far; −∞ when every block is below a gate.
    public var integrated: Double {
        guard !gatingBlocks.isEmpty else { return -.infinity }
        let relativeGate = gatingBlocks.reduce(0, +) / Double(gatingBlocks.count) * 0.1
        var sum = 0.0, count = 0
        for energy in gatingBlocks where energy >= relativeGate {
            sum += energy
            count += 1
        }
        return count == 0 ? -.infinity : Self.lufs(sum / Double(count))
    }

    /// Loudness range (LU) of everything fed so far; 0 with no short-term block above the gates.
    public var range: Double {
        guard !shortTermBlocks.isEmpty else { return 0 }
        let sorted = shortTermBlocks.sorted()
        let relativeGate = sorted.reduce(0, +) / Double(sorted.count) * 0.01
        guard let first = sorted.firstIndex(where: { $0 >= relativeGate }) else { return 0 }
        let kept = sorted[first...]
        let n = kept.count
        let high = kept[first + Int(Double(n - 1) * 0.95 + 0.5)]
        let low = kept[first + Int(Double(n - 1) * 0.1 + 0.5)]
        return Self.lufs(high) - Self.lufs(low)
    }
}
