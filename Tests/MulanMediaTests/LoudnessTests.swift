import Foundation
import MulanCore
import MulanMedia
import MulanTestSupport
import Testing

/// `LoudnessMeter` (`GatedLoudnessMeter` for I and LRA, `TruePeakMeter` for the true peak) against the ffmpeg
/// CLI's own `ebur128` filter on the same samples, and its true peak against libebur128's. Tolerances (docs/ingest.md#loudness): integrated loudness 0.02 LU, loudness range
/// 0.1 LU, true peak 0.3 dB (the Summary prints it to 0.1 dB; ffmpeg measures it at 192 kHz,
/// libebur128 at 4× the rate). Measured here: at most 0.007 LU, 0.01 LU and 0.09 dB apart, except
/// the true peak of full-band white noise (below).
@Suite("Loudness (LoudnessMeter) against ffmpeg's ebur128 filter")
struct LoudnessTests {
    static let integratedTolerance = 0.02
    static let rangeTolerance = 0.1
    static let truePeakTolerance = 0.3

    struct Signal: Sendable, CustomTestStringConvertible {
        var name: String
        /// ffmpeg input arguments making a mono float signal.
        var input: [String]
        var rate: Int
        var truePeakTolerance = LoudnessTests.truePeakTolerance
        var testDescription: String { name }
    }

    static let signals: [Signal] = [
        Signal(name: "997 Hz at -20 dBFS, 16 kHz",
               input: ["-f", "lavfi", "-i", "aevalsrc=0.1*sin(2*PI*997*t):s=16000:d=20"], rate: 16000),
        Signal(name: "100 Hz at -6 dBFS, 48 kHz",
               input: ["-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*100*t):s=48000:d=12"], rate: 48000),
        // Faded in: a sine that starts at a non-zero sample is a step, and ffmpeg's resampler to
        // 48 and 192 kHz rings on it (0.6 dB over the sine's peak).
        Signal(name: "4 kHz at fs/4 with 45 degree phase (intersample peaks), 16 kHz",
               input: ["-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*4000*t+PI/4):s=16000:d=10,afade=t=in:d=0.5"],
               rate: 16000),
        Signal(name: "pink noise, 16 kHz",
               input: ["-f", "lavfi", "-i", "anoisesrc=d=20:r=16000:a=0.3:c=pink:seed=3"], rate: 16000),
        // Full-band white noise: energy up to Nyquist, where true-peak meters differ most. BS.1770-4
        // (Annex 2) allows a 4× oversampling meter to under-read by up to 0.69 dB there; libebur128
        // reads 0.83 dB below ffmpeg's 192 kHz resampling.
        Signal(name: "white noise at -26 dBFS, 44.1 kHz",
               input: ["-f", "lavfi", "-i", "anoisesrc=d=15:r=44100:a=0.05:seed=9"], rate: 44100, truePeakTolerance: 1.0),
        Signal(name: "white noise below 8 kHz, 44.1 kHz",
               input: ["-f", "lavfi", "-i", "anoisesrc=d=15:r=44100:a=0.2:seed=10,lowpass=f=8000:p=2,lowpass=f=8000:p=2"],
               rate: 44100),
        // 9.5 LU apart, both above the relative gate: the range is the step between the halves.
        Signal(name: "quiet half then loud half (loudness range), 16 kHz",
               input: ["-filter_complex", "anoisesrc=d=15:r=16000:a=0.1:c=pink:seed=4[a];"
                       + "anoisesrc=d=15:r=16000:a=0.3:c=pink:seed=5[b];[a][b]concat=n=2:v=0:a=1"], rate: 16000),
        Signal(name: "tone bursts with pauses, 24 kHz",
               input: ["-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)*lt(mod(t\\,4)\\,2):s=24000:d=20"], rate: 24000),
    ]

    /// Writes the signal as mono 32-bit float WAV and reads back exactly those samples.
    static func make(_ signal: Signal, in dir: TempDir) throws -> (path: String, samples: [Float]) {
        let path = dir.file("signal.wav")
        try TestProcess.ffmpeg(signal.input + ["-ac", "1", "-c:a", "pcm_f32le", path])
        return (path, try TestProcess.ffmpegDecode(path, rate: signal.rate))
    }

    @Test(arguments: signals)
    func agreesWithFFmpeg(_ signal: Signal) throws {
        let dir = TempDir("loudness")
        let (path, samples) = try Self.make(signal, in: dir)
        let ours = LoudnessMeter.measure(samples, sampleRate: signal.rate)
        let reference = try FFmpegLoudness.measure(path)
        print("loudness \(signal.name): ours I \(ours.integratedLUFS ?? -.infinity) LRA \(ours.loudnessRange ?? -1) "
              + "TP \(ours.truePeakDB ?? -.infinity); \(reference)")
        #expect(ours.status == .measured, "\(ours)")
        let integrated = try #require(ours.integratedLUFS)
        let ffmpegIntegrated = try #require(reference.integrated)
        // The last frame's metadata is the Summary's value before rounding.
        #expect(abs(ffmpegIntegrated - (reference.summaryIntegrated ?? .nan)) <= 0.05 + 1e-9)
        #expect(abs(reference.range - reference.summaryRange) <= 0.05 + 1e-9)
        #expect(abs(integrated - ffmpegIntegrated) <= Self.integratedTolerance, "I \(integrated) vs \(reference)")
        #expect(abs((ours.loudnessRange ?? .nan) - reference.range) <= Self.rangeTolerance,
                "LRA \(ours.loudnessRange ?? .nan) vs \(reference)")
        #expect(abs((ours.truePeakDB ?? .nan) - (reference.truePeak ?? .nan)) <= signal.truePeakTolerance,
                "true peak \(ours.truePeakDB ?? .nan) vs \(reference)")
        // The true peak (TruePeakMeter) against libebur128's own on the same samples.
        let libebur128 = 20 * log10(try #require(TruePeakTests.libebur128(samples, rate: signal.rate)))
        print("true peak \(signal.name): ours \(ours.truePeakDB ?? .nan), libebur128 \(libebur128), "
              + "ffmpeg \(reference.truePeak ?? .nan) dBTP")
        #expect(abs((ours.truePeakDB ?? .nan) - libebur128) <= TruePeakTests.tolerance)
        // Fed in uneven chunks, the meter gives the same values as in one piece.
        let meter = LoudnessMeter(sampleRate: signal.rate)
        forEachChunk(of: samples, size: 997) { meter.feed($0) }
        #expect(meter.result() == ours)
    }

    /// A sine at fs/4 with a 45° phase: every sample is ±0.354 (−9.0 dBFS), the waveform's peak 0.5
    /// (−6.0 dBTP). The true peak finds it (libebur128's 4× interpolator reads 0.10 dB high on
    /// it); a sample peak would not.
    @Test func truePeakSeesBetweenSamples() throws {
        let dir = TempDir("loudness")
        let (_, samples) = try Self.make(Self.signals[2], in: dir)
        let ours = LoudnessMeter.measure(samples, sampleRate: 16000)
        #expect(abs((ours.truePeakDB ?? 0) - 20 * log10(0.5)) < 0.15, "\(ours)")
        #expect(20 * log10(Double(samples.map(abs).max() ?? 0)) < -8.9)
    }

    /// Below the −70 LUFS absolute gate there is no integrated loudness: nil for us ("below-gate"),
    /// the gate value for ffmpeg's Summary.
    @Test func belowTheGateHasNoIntegratedLoudness() throws {
        let dir = TempDir("loudness")
        let signal = Signal(name: "-80 dBFS", input: ["-f", "lavfi", "-i", "aevalsrc=0.0001*sin(2*PI*997*t):s=16000:d=10"],
                            rate: 16000)
        let (path, samples) = try Self.make(signal, in: dir)
        let ours = LoudnessMeter.measure(samples, sampleRate: 16000)
        #expect(ours.status == .belowGate)
        #expect(ours.integratedLUFS == nil)
        #expect(abs((ours.truePeakDB ?? 0) - -80) < 0.1)
        let reference = try FFmpegLoudness.measure(path)
        #expect((reference.summaryIntegrated ?? -70) <= -70)
    }

    /// Stereo to mono as ingest stores it: libswresample's float downmix scaled by the decoder's
    /// downmix gain (0.5·(L+R)), against ffmpeg's own integer downmix (`-ac 1 -sample_fmt s16`).
    @Test func stereoDownmixAsIngestDoesIt() throws {
        let dir = TempDir("loudness")
        let source = dir.file("stereo.ogg")
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "anoisesrc=d=20:r=44100:a=0.2:c=pink:seed=6",
                                "-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*330*t):s=44100:d=20",
                                "-filter_complex", "[0][1]amerge=inputs=2", "-c:a", "libvorbis", "-q:a", "5", source])
        let decoder = try AudioDecoder(path: source, outputSampleRate: 16000)
        let meter = LoudnessMeter(sampleRate: 16000)
        _ = try decoder.decode { chunk in
            meter.feed(chunk, gain: Float(decoder.downmixGain))
            return true
        }
        #expect(abs(decoder.downmixGain - 0.5.squareRoot()) < 1e-9)
        let ours = meter.result()
        let reference16 = dir.file("ffmpeg-mono.wav")
        try TestProcess.ffmpeg(["-i", source, "-ac", "1", "-ar", "16000", "-sample_fmt", "s16", reference16])
        let reference = try FFmpegLoudness.measure(reference16)
        print("loudness stereo downmix: ours \(ours); \(reference)")
        #expect(abs((ours.integratedLUFS ?? .nan) - (reference.integrated ?? .nan)) <= Self.integratedTolerance)
        #expect(abs((ours.loudnessRange ?? .nan) - reference.range) <= Self.rangeTolerance)
        #expect(abs((ours.truePeakDB ?? .nan) - (reference.truePeak ?? .nan)) <= Self.truePeakTolerance)
        // And measuring the 16-bit file itself gives the same as the float stream.
        let file = LoudnessMeter.measure(file: reference16, sampleRate: 16000)
        #expect(abs((file.integratedLUFS ?? .nan) - (ours.integratedLUFS ?? .nan)) <= 0.01)
    }

    /// Shorter than the 3 s short-term window (`--min-clip-seconds` allows such clips): a loudness
    /// range of 0, an integrated loudness from its 400 ms blocks.
    @Test func aClipShorterThanThreeSecondsHasZeroRange() {
        let samples = (0..<(2 * 16000)).map { Float(0.1 * sin(2 * Double.pi * 997 * Double($0) / 16000)) }
        let ours = LoudnessMeter.measure(samples, sampleRate: 16000)
        #expect(ours.status == .measured)
        #expect(ours.loudnessRange == 0)
        #expect(abs((ours.integratedLUFS ?? 0) - -22.97) < 0.05)
    }

    @Test func failuresAreValuesWithAReason() {
        let none = LoudnessMeter(sampleRate: 16000).result()
        #expect(none.status == .failed && none.detail?.contains("no samples") == true)
        let badRate = LoudnessMeter.measure([0.1, 0.2], sampleRate: 0)
        #expect(badRate.status == .failed && badRate.integratedLUFS == nil && badRate.detail?.contains("16 Hz to 2.8224 MHz") == true)
        let missing = LoudnessMeter.measure(file: "/nonexistent/clip.flac", sampleRate: 16000)
        #expect(missing.status == .failed && missing.detail?.contains("/nonexistent/clip.flac") == true)
    }
}
