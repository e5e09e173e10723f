import Foundation

internal import CMulanEBUR128

/// Times loudness on 30-s clips, side by side in one process (for bench/truepeak-vs-libebur128.sh,
/// through `mulan-ingest truepeak-bench`): libebur128 with `I | LRA | TRUE_PEAK` (the meter before
/// issue 18) and with `I | LRA`, our `TruePeakMeter` and `GatedLoudnessMeter` (I + LRA) alone, and
/// `LoudnessMeter` (both of ours) as ingest runs it now. libebur128's true peak costs the difference
/// of its two modes. One thread, CPU time of the thread, medians over `repeats` passes over all clips.
public enum TruePeakBenchmark {
    public struct Result: Codable, Sendable {
        public var sampleRate: Int
        public var clipSeconds: Double
        public var clips: Int
        public var repeats: Int
        /// Median CPU seconds per clip.
        public var libebur128Full: Double
        public var libebur128WithoutTruePeak: Double
        public var libebur128TruePeak: Double
        public var ours: Double
        /// `GatedLoudnessMeter` (I + LRA), against `libebur128WithoutTruePeak`.
        public var oursGated: Double
        public var loudnessMeter: Double
        /// libebur128's true-peak time over ours.
        public var speedup: Double
        /// libebur128 I|LRA|TP over LoudnessMeter (I|LRA + ours), per clip.
        public var meterSpeedup: Double
        /// libebur128 I + LRA over `GatedLoudnessMeter`, per clip.
        public var gatedSpeedup: Double
        /// The largest |ours − ebur128_true_peak| over the clips, dB.
        public var maxDifferenceDB: Double
        /// The largest difference of integrated loudness or range from libebur128's, LU.
        public var maxGatedDifferenceLU: Double
    }

    /// Music-like clips: a few harmonic notes changing every 0.25 s, a decaying click every
    /// 0.5 s, and seeded noise; peaks near −3 dBFS.
    public static func clip(_ index: Int, seconds: Double, sampleRate: Int) -> [Float] {
        let n = Int(seconds * Double(sampleRate))
        var state = UInt64(index &+ 1) &* 0x9E37_79B9_7F4A_7C15
        func random() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
        var out = [Float](repeating: 0, count: n)
        let note = max(1, sampleRate / 4)
        var f0 = 220.0
        for i in 0..<n {
            if i % note == 0 { f0 = 110 * pow(2, Double(Int(random() * 36)) / 12) }
            let t = Double(i) / Double(sampleRate)
            var v = 0.0
            for h in 1...4 where f0 * Double(h) < Double(sampleRate) / 2 {
                v += 0.18 / Double(h) * sin(2 * Double.pi * f0 * Double(h) * t)
            }
            let sinceClick = Double(i % (sampleRate / 2)) / Double(sampleRate)
            v += 0.25 * exp(-sinceClick * 60) * (random() * 2 - 1)
            v += 0.02 * (random() * 2 - 1)
            out[i] = Float(v)
        }
        return out
    }

    public static func run(clips count: Int = 8, seconds: Double = 30, sampleRate: Int = 16000,
                           repeats: Int = 5) -> Result {
        let clips = (0..<max(1, count)).map { clip($0, seconds: seconds, sampleRate: sampleRate) }
        let full = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue | EBUR128_MODE_TRUE_PEAK.rawValue)
        let base = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue)
        /// libebur128's integrated loudness, range and (mode `full`) true peak of one clip.
        func measured(_ samples: [Float], mode: Int32) -> (integrated: Double, range: Double, peak: Double) {
            guard let state = ebur128_init(1, UInt(sampleRate), mode) else { return (.nan, .nan, .nan) }
            var owned: UnsafeMutablePointer<ebur128_state>? = state
            defer { ebur128_destroy(&owned) }
            _ = ebur128_set_channel(state, 0, Int32(EBUR128_CENTER.rawValue))
            _ = samples.withUnsafeBufferPointer { ebur128_add_frames_float(state, $0.baseAddress, $0.count) }
            var integrated = 0.0, range = 0.0, peak = 0.0
            _ = ebur128_loudness_global(state, &integrated)
            _ = ebur128_loudness_range(state, &range)
            if mode == full { _ = ebur128_true_peak(state, 0, &peak) }
            return (integrated, range, peak)
        }
        /// The true peak (mode `full`), else integrated + range (so that neither call is dropped).
        func libebur128(_ samples: [Float], mode: Int32) -> Double {
            let m = measured(samples, mode: mode)
            return mode == full ? m.peak : m.integrated + 1000 * m.range
        }
        func gated(_ samples: [Float]) -> (integrated: Double, range: Double) {
            guard var meter = GatedLoudnessMeter(sampleRate: sampleRate) else { return (.nan, .nan) }
            samples.withUnsafeBufferPointer { meter.feed($0) }
            return (meter.integrated, meter.range)
        }
        var maxDifference = 0.0, maxGatedDifference = 0.0
        for c in clips {
            let reference = measured(c, mode: full)
            let ours = Double(c.withUnsafeBufferPointer { TruePeakMeter.measure($0, sampleRate: sampleRate) })
            maxDifference = max(maxDifference, abs(20 * log10(ours) - 20 * log10(reference.peak)))
            let mine = gated(c)
            maxGatedDifference = max(maxGatedDifference, abs(mine.integrated - reference.integrated),
                                     abs(mine.range - reference.range))
        }
        var sink = 0.0
        func time(_ body: ([Float]) -> Double) -> Double {
            var passes: [Double] = []
            for _ in 0..<max(1, repeats) {
                let start = threadCPU()
                for c in clips { sink += body(c) }
                passes.append((threadCPU() - start) / Double(clips.count))
            }
            passes.sort()
            return passes[passes.count / 2]
        }
        // Interleaved, so that a disturbance hits all of them alike.
        var fullTimes: [Double] = [], baseTimes: [Double] = [], oursTimes: [Double] = [], gatedTimes: [Double] = []
        var meterTimes: [Double] = []
        for _ in 0..<3 {
            fullTimes.append(time { libebur128($0, mode: full) })
            baseTimes.append(time { libebur128($0, mode: base) })
            oursTimes.append(time { c in Double(c.withUnsafeBufferPointer { TruePeakMeter.measure($0, sampleRate: sampleRate) }) })
            gatedTimes.append(time { c in let r = gated(c); return r.integrated + 1000 * r.range })
            meterTimes.append(time { LoudnessMeter.measure($0, sampleRate: sampleRate).truePeakDB ?? 0 })
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let f = median(fullTimes), b = median(baseTimes), o = median(oursTimes), m = median(meterTimes)
        let g = median(gatedTimes)
        if sink.isNaN { print("") }   // keeps the measured calls
        return Result(sampleRate: sampleRate, clipSeconds: seconds, clips: clips.count, repeats: repeats,
                      libebur128Full: f, libebur128WithoutTruePeak: b, libebur128TruePeak: f - b, ours: o,
                      oursGated: g, loudnessMeter: m, speedup: o > 0 ? (f - b) / o : 0,
                      meterSpeedup: m > 0 ? f / m : 0, gatedSpeedup: g > 0 ? b / g : 0,
                      maxDifferenceDB: maxDifference, maxGatedDifferenceLU: maxGatedDifference)
    }

    private static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}
