import CMulanEBUR128
import Foundation
import MulanMedia
import Testing

/// Our `GatedLoudnessMeter` (K-weighting, 400 ms and 3 s blocks, gates) against libebur128's own
/// `ebur128_loudness_global` and `ebur128_loudness_range` (its C API, `I | LRA`, exact mode, one
/// channel as centre) on the same samples: within 1e-6 LU at the rates ingest writes and others,
/// on music-like clips, tones at many levels, gated passages, fades into digital silence, clips too
/// short for a block, chunked feeding of odd sizes and a gain. (Against the ffmpeg CLI's `ebur128`
/// filter: LoudnessTests, through LoudnessMeter.)
@Suite("Gated loudness (I, LRA) against libebur128")
struct GatedLoudnessTests {
    static let tolerance = 1e-6

    /// libebur128's integrated loudness and range, the samples fed in chunks of `chunk`.
    static func libebur128(_ samples: [Float], rate: Int, chunk: Int = 4096) -> (integrated: Double, range: Double)? {
        let mode = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue)
        guard let state = ebur128_init(1, UInt(rate), mode) else { return nil }
        defer { var s: UnsafeMutablePointer<ebur128_state>? = state; ebur128_destroy(&s) }
        _ = ebur128_set_channel(state, 0, Int32(EBUR128_CENTER.rawValue))
        forEachChunk(of: samples, size: chunk) { _ = ebur128_add_frames_float(state, $0.baseAddress, $0.count) }
        var integrated = 0.0, range = 0.0
        guard ebur128_loudness_global(state, &integrated) == Int32(EBUR128_SUCCESS.rawValue),
              ebur128_loudness_range(state, &range) == Int32(EBUR128_SUCCESS.rawValue) else { return nil }
        return (integrated, range)
    }

    static func ours(_ samples: [Float], rate: Int, chunk: Int = 0, gain: Float = 1) -> (integrated: Double, range: Double) {
        var meter = GatedLoudnessMeter(sampleRate: rate)!
        forEachChunk(of: samples, size: chunk) { meter.feed($0, gain: gain) }
        return (meter.integrated, meter.range)
    }

    static func expectClose(_ ours: (integrated: Double, range: Double),
                            _ reference: (integrated: Double, range: Double), _ what: String) {
        if reference.integrated.isFinite {
            #expect(abs(ours.integrated - reference.integrated) <= tolerance,
                    "\(what): I \(ours.integrated) vs libebur128 \(reference.integrated)")
        } else {
            #expect(ours.integrated == reference.integrated, "\(what): I \(ours.integrated) vs libebur128 \(reference.integrated)")
        }
        #expect(abs(ours.range - reference.range) <= tolerance, "\(what): LRA \(ours.range) vs libebur128 \(reference.range)")
    }

    static func tone(_ frequency: Double, amplitude: Double, seconds: Double, rate: Int) -> [Float] {
        (0..<Int(seconds * Double(rate))).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate))) }
    }

    @Test(arguments: [8000, 11025, 16000, 22050, 44100, 48000, 96000])
    func musicLikeClipsAgree(rate: Int) throws {
        for index in 0..<3 {
            let clip = TruePeakBenchmark.clip(index, seconds: 12.37, sampleRate: rate)
            let reference = try #require(Self.libebur128(clip, rate: rate))
            #expect(reference.range > 0.1, "the clip should have a range to compare")
            Self.expectClose(Self.ours(clip, rate: rate), reference, "clip \(index) at \(rate) Hz")
        }
    }

    /// Loud and quiet passages: blocks fall below the relative gates (and one below the absolute one).
    @Test func gatesDropQuietPassages() throws {
        let rate = 16000
        var samples: [Float] = []
        for (level, seconds) in [(0.5, 4.0), (0.003, 3.3), (0.1, 5.1), (0.00001, 2.0), (0.02, 6.0), (0.4, 2.2)] {
            samples += Self.tone(440, amplitude: level, seconds: seconds, rate: rate)
        }
        let reference = try #require(Self.libebur128(samples, rate: rate))
        Self.expectClose(Self.ours(samples, rate: rate), reference, "passages")
        // The same fed in odd chunks (and libebur128 in other ones): exactly the same values.
        let whole = Self.ours(samples, rate: rate)
        for chunk in [1, 7, 1599, 1600, 1601, 4096] {
            let chunked = Self.ours(samples, rate: rate, chunk: chunk)
            Self.expectClose(chunked, reference, "passages in chunks of \(chunk)")
            #expect(chunked == whole, "chunks of \(chunk)")
        }
    }

    /// A decay into digital silence (the filter state runs down to denormals), then sound again.
    @Test func fadeIntoDigitalSilence() throws {
        let rate = 16000
        var samples = Self.tone(60, amplitude: 0.8, seconds: 3, rate: rate)
        samples += [Float](repeating: 0, count: 20 * rate)
        samples += Self.tone(1000, amplitude: 0.2, seconds: 4, rate: rate)
        let reference = try #require(Self.libebur128(samples, rate: rate))
        Self.expectClose(Self.ours(samples, rate: rate), reference, "fade")
    }

    @Test(arguments: [-60.0, -40, -23, -12, -3, 0])
    func levelsOfATone(db: Double) throws {
        let samples = Self.tone(997, amplitude: pow(10, db / 20), seconds: 9.95, rate: 16000)
        let reference = try #require(Self.libebur128(samples, rate: 16000))
        Self.expectClose(Self.ours(samples, rate: 16000), reference, "997 Hz at \(db) dBFS")
    }

    /// Shorter than a 400 ms block (nothing measured: −∞ and 0), shorter than 3 s (no range),
    /// silence, and below the absolute gate.
    @Test func shortSilentAndGatedClips() throws {
        let rate = 16000
        let cases: [(String, [Float])] = [
            ("0.39 s", Self.tone(440, amplitude: 0.3, seconds: 0.39, rate: rate)),
            ("0.4 s", Self.tone(440, amplitude: 0.3, seconds: 0.4, rate: rate)),
            ("2.99 s", Self.tone(440, amplitude: 0.3, seconds: 2.99, rate: rate)),
            ("3.0 s", Self.tone(440, amplitude: 0.3, seconds: 3.0, rate: rate)),
            ("silence", [Float](repeating: 0, count: 5 * rate)),
            ("−90 dBFS", Self.tone(440, amplitude: 3e-5, seconds: 5, rate: rate)),
        ]
        for (name, samples) in cases {
            let reference = try #require(Self.libebur128(samples, rate: rate))
            Self.expectClose(Self.ours(samples, rate: rate), reference, name)
        }
        let tooShort = Self.ours(Self.tone(440, amplitude: 0.3, seconds: 0.39, rate: rate), rate: rate)
        #expect(tooShort.integrated == -.infinity && tooShort.range == 0)
    }

    /// A gain scales each sample in Float before the filter, as LoudnessMeter did before it fed
    /// libebur128: the same as measuring the scaled samples.
    @Test func gainIsTheScaledSamples() throws {
        let clip = TruePeakBenchmark.clip(5, seconds: 10, sampleRate: 16000)
        let gain = Float(0.5.squareRoot())
        let reference = try #require(Self.libebur128(clip.map { $0 * gain }, rate: 16000))
        Self.expectClose(Self.ours(clip, rate: 16000, chunk: 3000, gain: gain), reference, "gain")
    }

    @Test func ratesLibebur128RefusesAreRefused() {
        #expect(GatedLoudnessMeter(sampleRate: 0) == nil)
        #expect(GatedLoudnessMeter(sampleRate: 15) == nil)
        #expect(GatedLoudnessMeter(sampleRate: 3_000_000) == nil)
        #expect(GatedLoudnessMeter(sampleRate: 16) != nil)
    }
}
