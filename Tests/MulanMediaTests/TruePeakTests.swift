import CMulanEBUR128
import Foundation
import MulanMedia
import Testing

/// Our vectorized `TruePeakMeter` against libebur128's own `ebur128_true_peak` (called here through
/// its C API, TRUE_PEAK mode) on the same samples: it must agree within 0.01 dB at every rate ingest
/// writes, on tones, inter-sample peaks, noise, bursts and clips shorter than the filter.
/// (Against the ffmpeg CLI's `ebur128=peak=true`: LoudnessTests, which measure through LoudnessMeter.)
@Suite("True peak against libebur128")
struct TruePeakTests {
    static let tolerance = 0.01

    /// libebur128's true peak (linear), the samples fed in chunks of `chunk`.
    static func libebur128(_ samples: [Float], rate: Int, chunk: Int = 4096) -> Double? {
        guard let state = ebur128_init(1, UInt(rate), Int32(EBUR128_MODE_TRUE_PEAK.rawValue)) else { return nil }
        defer { var s: UnsafeMutablePointer<ebur128_state>? = state; ebur128_destroy(&s) }
        forEachChunk(of: samples, size: chunk) { _ = ebur128_add_frames_float(state, $0.baseAddress, $0.count) }
        var peak = 0.0
        guard ebur128_true_peak(state, 0, &peak) == Int32(EBUR128_SUCCESS.rawValue) else { return nil }
        return peak
    }

    static func ours(_ samples: [Float], rate: Int, chunk: Int = 0) -> Double {
        if chunk == 0 { return Double(samples.withUnsafeBufferPointer { TruePeakMeter.measure($0, sampleRate: rate) }) }
        var meter = TruePeakMeter(sampleRate: rate)
        forEachChunk(of: samples, size: chunk) { meter.feed($0) }
        return Double(meter.truePeak)
    }

    static func dB(_ x: Double) -> Double { 20 * log10(x) }

    /// A deterministic generator (SplitMix64), so failures can be replayed.
    struct Noise {
        var state: UInt64
        mutating func next() -> Float {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(Double(z >> 11) / Double(1 << 53) * 2 - 1)
        }
    }

    static let rates = [16000, 22050, 24000, 32000, 44100, 48000]

    static func signals(rate: Int) -> [(name: String, samples: [Float])] {
        let fs = Double(rate)
        func tone(_ f: Double, _ a: Double, seconds: Double, phase: Double = 0) -> [Float] {
            (0..<Int(seconds * fs)).map { Float(a * sin(2 * Double.pi * f * Double($0) / fs + phase)) }
        }
        var noise = Noise(state: UInt64(rate))
        let white = (0..<(3 * rate)).map { _ in 0.5 * noise.next() }
        // Noise averaged over 4 samples: most energy below fs/8.
        var smooth = [Float](repeating: 0, count: 3 * rate)
        for i in 3..<white.count { smooth[i] = (white[i] + white[i - 1] + white[i - 2] + white[i - 3]) * 0.6 }
        let bursts = (0..<(4 * rate)).map { i -> Float in
            let t = Double(i) / fs
            return t.truncatingRemainder(dividingBy: 1) < 0.25 ? Float(0.8 * sin(2 * Double.pi * 3000 * t)) : 0
        }
        // A single full-scale sample and a step: the interpolator's impulse and step responses.
        var impulse = [Float](repeating: 0, count: 200)
        impulse[100] = 1
        let step = [Float](repeating: 0, count: 50) + [Float](repeating: 0.9, count: 150)
        return [
            ("997 Hz at -20 dBFS", tone(997, 0.1, seconds: 2)),
            ("100 Hz at -6 dBFS", tone(100, 0.5, seconds: 2)),
            ("fs/4 with 45 degree phase (inter-sample peaks)", tone(fs / 4, 0.5, seconds: 1, phase: Double.pi / 4)),
            ("fs/4 at 0 dBFS, 45 degree phase (true peak over full scale)", tone(fs / 4, 1, seconds: 1, phase: Double.pi / 4)),
            ("near Nyquist (0.45 fs)", tone(0.45 * fs, 0.7, seconds: 1, phase: 0.3)),
            ("white noise", white),
            ("smoothed noise", smooth),
            ("tone bursts with pauses", bursts),
            ("impulse", impulse),
            ("step", step),
            ("silence", [Float](repeating: 0, count: 1000)),
            ("one sample", [0.7]),
            ("five samples", [0.1, -0.9, 0.8, -0.2, 0.5]),
            ("eleven samples", Array(white.prefix(11))),
            ("thirteen samples", Array(white.prefix(13))),
            ("twenty samples, last one the peak", [Float](repeating: 0.1, count: 19) + [-0.95]),
            ("0.1 s of noise", Array(white.prefix(rate / 10))),
        ]
    }

    @Test(arguments: rates)
    func agreesWithLibebur128(rate: Int) throws {
        var largest = 0.0
        for (name, samples) in Self.signals(rate: rate) {
            let reference = try #require(Self.libebur128(samples, rate: rate))
            let ours = Self.ours(samples, rate: rate)
            if reference == 0 {
                #expect(ours == 0, "\(name) at \(rate) Hz: \(ours) for silence")
                continue
            }
            let difference = abs(Self.dB(ours) - Self.dB(reference))
            largest = max(largest, difference)
            #expect(difference <= Self.tolerance,
                    "\(name) at \(rate) Hz: ours \(Self.dB(ours)) dBTP, libebur128 \(Self.dB(reference)) dBTP")
            // Fed in uneven chunks (smaller than the filter, and crossing its blocks): the same value.
            for chunk in [1, 7, 997, 5000] {
                #expect(Self.ours(samples, rate: rate, chunk: chunk) == ours, "\(name) at \(rate) Hz in chunks of \(chunk)")
            }
        }
        print("true peak at \(rate) Hz: largest difference from libebur128 \(String(format: "%.6f", largest)) dB")
    }

    /// The fs/4 sine at 45°: every sample is ±0.354 (−9.0 dBFS), the waveform's peak 0.5. The 4×
    /// interpolator finds it (libebur128's design reads about 0.1 dB high); a sample peak would not.
    @Test func findsThePeakBetweenSamples() {
        let samples = (0..<16000).map { Float(0.5 * sin(2 * Double.pi * 4000 * Double($0) / 16000 + Double.pi / 4)) }
        let peak = Self.dB(Self.ours(samples, rate: 16000))
        #expect(abs(peak - Self.dB(0.5)) < 0.15, "\(peak)")
        #expect(Self.dB(Double(samples.map(abs).max()!)) < -8.9)
    }

    /// 2× from 96 kHz, the sample peak from 192 kHz, as libebur128.
    @Test(arguments: [88200, 96000, 176400, 192000])
    func otherFactors(rate: Int) throws {
        let meter = TruePeakMeter(sampleRate: rate)
        #expect(meter.factor == (rate < 96000 ? 4 : rate < 192000 ? 2 : 1))
        for (name, samples) in Self.signals(rate: rate) {
            let reference = try #require(Self.libebur128(samples, rate: rate))
            let ours = Self.ours(samples, rate: rate)
            if reference == 0 { #expect(ours == 0); continue }
            #expect(abs(Self.dB(ours) - Self.dB(reference)) <= Self.tolerance, "\(name) at \(rate) Hz")
        }
    }

    /// Whole 30-s clips of noise at 16 kHz, as ingest measures them.
    @Test func aThirtySecondClip() throws {
        var noise = Noise(state: 42)
        let samples = (0..<(30 * 16000)).map { _ in 0.3 * noise.next() }
        let reference = try #require(Self.libebur128(samples, rate: 16000))
        let ours = Self.ours(samples, rate: 16000)
        #expect(abs(Self.dB(ours) - Self.dB(reference)) <= Self.tolerance)
    }
}
