import Foundation
import MulanCore
@testable import MulanDSP
import MulanTestSupport
import Testing

/// A seeded generator for test signals and masks (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A linear chirp from 40 Hz to 0.45 · rate (amplitude 0.5) plus seeded uniform noise (±0.02),
/// optionally preceded by digital silence.
func testSignal(count: Int, rate: Int, seed: UInt64, silence: Int = 0) -> [Float] {
    var random = SeededGenerator(seed: seed)
    let duration = Double(count) / Double(rate)
    let f0 = 40.0, f1 = 0.45 * Double(rate)
    return (0..<count).map { i in
        if i < silence { return 0 }
        let t = Double(i) / Double(rate)
        let phase = 2 * Double.pi * (f0 * t + (f1 - f0) * t * t / (2 * duration))
        let noise = (Double(random.next() >> 11) * 0x1p-53 * 2 - 1) * 0.02
        return Float(0.5 * sin(phase) + noise)
    }
}

@Suite("LogMel matches librosa")
struct LogMelTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var config: LogMelConfig
        var samples: Int
        var silence = 0
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "16 kHz, 128 mels, defaults (win 400, hop 160, FFT 512)",
             config: LogMelConfig(sampleRate: 16000), samples: 16000 * 3 + 77),
        Case(name: "22.05 kHz, 64 mels, odd window 551, hop 220, FFT 1024",
             config: LogMelConfig(sampleRate: 22050, melBands: 64), samples: 22050 * 2 + 123),
        Case(name: "24 kHz, fMin 30 Hz, fMax 11 kHz",
             config: LogMelConfig(sampleRate: 24000, fMin: 30, fMax: 11000), samples: 24000 * 2 + 239),
        Case(name: "16 kHz, topDB nil, leading silence (amin floor)",
             config: LogMelConfig(sampleRate: 16000, topDB: nil), samples: 16000 * 2 + 5, silence: 4000),
        Case(name: "48 kHz, FFT 1200 = window (real FFT, not a power of two)",
             config: LogMelConfig(sampleRate: 48000, fftSize: 1200, melBands: 96), samples: 48000 + 1001),
        Case(name: "22.05 kHz, FFT 882 = window (complex FFT path: 882 = 4k + 2)",
             config: LogMelConfig(sampleRate: 22050, windowSeconds: 0.04, fftSize: 882, melBands: 80), samples: 22050 + 17),
        Case(name: "22.05 kHz, odd FFT 551 = window (complex FFT path)",
             config: LogMelConfig(sampleRate: 22050, fftSize: 551, melBands: 40), samples: 22050 + 300),
        Case(name: "16 kHz, input shorter than the FFT (100 samples)",
             config: LogMelConfig(sampleRate: 16000, topDB: 60), samples: 100),
    ]

    /// librosa's result for `samples` under `config`: (values, melBands, frames).
    static func reference(_ samples: [Float], _ config: LogMelConfig, dir: TempDir) throws -> ([Float], Int, Int) {
        let input = dir.file("in.f32"), output = dir.file("out.f32")
        try samples.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: input)) }
        let r = try TestPython.tool("logmel_reference.py", [
            input, output, "\(config.sampleRate)", "\(config.fftSize)", "\(config.hopLength)", "\(config.windowLength)",
            "\(config.melBands)", "\(config.fMin)", config.fMax.map { "\($0)" } ?? "none", "\(config.amin)",
            config.topDB.map { "\($0)" } ?? "none", config.scale.rawValue,
        ])
        let shape = r.stdoutText.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard shape.count == 2 else { throw TestFailure("unexpected reference output: \(r.stdoutText)") }
        let data = try Data(contentsOf: URL(fileURLWithPath: output))
        let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (values, shape[0], shape[1])
    }

    /// Error measure: max |ours − librosa| / max |librosa| over the whole spectrogram (in dB units),
    /// which must stay ≤ 1e-4 (about 0.005 dB for spectrograms spanning −50…+35 dB).
    @Test(arguments: cases)
    func matchesLibrosa(_ c: Case) throws {
        let dir = TempDir("logmel")
        let samples = testSignal(count: c.samples, rate: c.config.sampleRate, seed: 20261125, silence: c.silence)
        let (expected, bands, frames) = try Self.reference(samples, c.config, dir: dir)
        let mel = try LogMelSpectrogram(config: c.config)
        let ours = mel.compute(samples)
        #expect(bands == c.config.melBands)
        #expect(ours.frames == frames)
        #expect(mel.frameCount(sampleCount: samples.count) == frames)
        try #require(ours.values.count == expected.count)
        let scale = expected.reduce(0) { max($0, abs($1)) }
        let worst = zip(ours.values, expected).reduce(0) { max($0, abs($1.0 - $1.1)) }
        let relative = worst / scale
        #expect(relative <= 1e-4, "max |Δ| = \(worst) dB against max |librosa| = \(scale) dB: \(relative)")
    }

    /// musicnn's front end (`LogMelConfig.musicnn`: 16 kHz, 512/256, 96 Slaney bands,
    /// log10(10000x + 1)) against librosa's float32 power with the log in float64: max |Δ| ≤ 1e-4
    /// on values from 0 (silence) to about 5.
    @Test(arguments: [0, 8000])
    func musicnnFrontEndMatchesLibrosa(silence: Int) throws {
        let dir = TempDir("logmel-musicnn")
        let config = LogMelConfig.musicnn
        #expect(config.windowLength == 512 && config.hopLength == 256 && config.fftSize == 512 && config.melBands == 96)
        let samples = testSignal(count: 16000 * 4 + 99, rate: 16000, seed: 20261206, silence: silence)
        let (expected, bands, frames) = try Self.reference(samples, config, dir: dir)
        let ours = try LogMelSpectrogram(config: config).compute(samples)
        #expect(bands == 96 && ours.frames == frames && frames == 1 + samples.count / 256)
        try #require(ours.values.count == expected.count)
        let worst = zip(ours.values, expected).reduce(0) { max($0, abs($1.0 - $1.1)) }
        let largest = expected.max() ?? 0
        #expect(worst <= 1e-4, "max |Δ| = \(worst) (librosa's values reach \(largest))")
        #expect(largest > 3, "the test signal should reach loud bins (max \(largest))")
        if silence > 0 { #expect(ours.values[0] == 0, "silence compresses to log10(1) = 0") }
    }

    @Test func scaleIsEncodedOnlyWhenNotDecibels() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let plain = String(decoding: try encoder.encode(LogMelConfig(sampleRate: 16000)), as: UTF8.self)
        #expect(!plain.contains("scale"))
        let musicnn = try encoder.encode(LogMelConfig.musicnn)
        #expect(String(decoding: musicnn, as: UTF8.self).contains("\"scale\":\"log10(10000x+1)\""))
        #expect(try JSONDecoder().decode(LogMelConfig.self, from: musicnn) == .musicnn)
        #expect(try JSONDecoder().decode(LogMelConfig.self, from: Data(plain.utf8)).scale == .decibels)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(LogMelConfig.self, from: Data(#"{"sampleRate": 16000, "scale": "ln"}"#.utf8))
        }
    }

    @Test func frameCountAndLayout() throws {
        let mel = try LogMelSpectrogram(config: LogMelConfig(sampleRate: 16000))
        #expect(mel.windowLength == 400 && mel.hopLength == 160 && mel.fftSize == 512)
        #expect(mel.frameCount(sampleCount: 160_000) == 1001)
        #expect(mel.frameCount(sampleCount: 159) == 1)
        #expect(mel.frameCount(sampleCount: 0) == 1)
        let samples = testSignal(count: 16000, rate: 16000, seed: 3)
        let a = mel.compute(samples)
        let b = samples.withUnsafeBufferPointer { mel.compute($0) }
        #expect(a.frames == 101 && a.values.count == 128 * 101)
        #expect(a.values == b.values)
        // The same instance gives the same numbers on every call (scratch buffers are reused).
        #expect(mel.compute(samples).values == a.values)
        // Default topDB: nothing more than 80 dB below the maximum.
        let top = a.values.max() ?? 0
        #expect(a.values.allSatisfy { $0 >= top - 80 })
    }

    /// The branch-free 10 · log10 is within 2 ulps of the float result, or 2e-6 dB near 0 dB, from
    /// the smallest normal float to the largest.
    @Test func decibelsAreAccurate() {
        var random = SeededGenerator(seed: 5)
        var worst = (excess: 0.0, x: Float(0))
        var checked = 0
        func check(_ x: Float) {
            guard x.isNormal, x > 0 else { return }
            let exact = 10 * log10(Double(x))
            let allowed = max(2e-6, 2 * Double(Float(exact).ulp))
            let excess = abs(Double(LogMelSpectrogram.decibels(x)) - exact) / allowed
            if excess > worst.excess { worst = (excess, x) }
            checked += 1
        }
        for _ in 0..<200_000 { check(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()) & 0x7FFF_FFFF)) }
        for e in -126...127 {
            for m: Float in [1, 0.70710677, 0.7071068, 1.4142135, 1.4142137, 1.9999999, 1.0000001] {
                check(m * Float(sign: .plus, exponent: e, significand: 1))
            }
        }
        for i in 0..<10_000 { check(1 + Float(i - 5000) * 1e-6) }   // around 0 dB
        check(Float.leastNormalMagnitude)
        check(Float.greatestFiniteMagnitude)
        #expect(checked > 100_000)
        #expect(worst.excess <= 1, "error at \(worst.x) is \(worst.excess) times the allowance")
    }

    @Test func configDefaultsRoundingAndCoding() throws {
        let c = LogMelConfig(sampleRate: 22050)
        #expect(c.windowLength == 551)   // 551.25
        #expect(c.hopLength == 220)      // 220.5 rounds half to even, as Python's round
        #expect(c.fftSize == 1024)
        #expect(LogMelConfig(sampleRate: 24000).fftSize == 1024)
        #expect(LogMelConfig(sampleRate: 16000).fftSize == 512)

        var unclamped = LogMelConfig(sampleRate: 24000, fMax: 9000, topDB: nil)
        unclamped.melBands = 96
        let json = try JSONEncoder().encode(unclamped)
        #expect(try JSONDecoder().decode(LogMelConfig.self, from: json) == unclamped)
        let minimal = try JSONDecoder().decode(LogMelConfig.self, from: Data(#"{"sampleRate": 16000}"#.utf8))
        #expect(minimal == LogMelConfig(sampleRate: 16000))
        let explicitNull = try JSONDecoder().decode(LogMelConfig.self, from: Data(#"{"sampleRate": 16000, "topDB": null}"#.utf8))
        #expect(explicitNull.topDB == nil)
    }

    @Test func invalidConfigurationsThrow() {
        let bad: [LogMelConfig] = [
            LogMelConfig(sampleRate: 0),
            LogMelConfig(sampleRate: 16000, fftSize: 256),             // shorter than the 400-sample window
            LogMelConfig(sampleRate: 16000, hopSeconds: 0),
            LogMelConfig(sampleRate: 16000, windowSeconds: 0),
            LogMelConfig(sampleRate: 16000, melBands: 0),
            LogMelConfig(sampleRate: 16000, fMin: 9000),                // above Nyquist
            LogMelConfig(sampleRate: 16000, fMin: 500, fMax: 400),
            LogMelConfig(sampleRate: 16000, amin: 0),
            LogMelConfig(sampleRate: 16000, topDB: -1),
        ]
        for config in bad {
            #expect(throws: MulanError.self, "\(config)") { _ = try LogMelSpectrogram(config: config) }
        }
    }
}

@Suite("SpecAugment")
struct SpecAugmentTests {
    /// A spectrogram whose every value differs from its mean.
    static func distinct(_ bands: Int, _ frames: Int) -> [Float] {
        (0..<(bands * frames)).map { Float($0 % 9973) * 0.01 + 0.005 }
    }

    @Test func masksStayInBoundsAndRespectTheConfig() {
        let policy = SpecAugment(SpecAugmentConfig(frequencyMasks: 3, maxFrequencyWidth: 15, timeMasks: 2, maxTimeWidth: 50))
        var random = SeededGenerator(seed: 1)
        var widest = (frequency: 0, time: 0)
        for _ in 0..<2000 {
            let masks = policy.masks(melBands: 128, frames: 300, random: &random)
            #expect(masks.frequency.count == 3 && masks.time.count == 2)
            for r in masks.frequency { #expect(r.lowerBound >= 0 && r.upperBound <= 128 && r.count <= 15) }
            for r in masks.time { #expect(r.lowerBound >= 0 && r.upperBound <= 300 && r.count <= 50) }
            widest.frequency = max(widest.frequency, masks.frequency.map(\.count).max() ?? 0)
            widest.time = max(widest.time, masks.time.map(\.count).max() ?? 0)
        }
        // The full range of widths is used.
        #expect(widest.frequency == 15 && widest.time == 50)

        // Widths never exceed the input, nor p · frames.
        let tight = SpecAugment(SpecAugmentConfig(frequencyMasks: 2, maxFrequencyWidth: 40, timeMasks: 2, maxTimeWidth: 50,
                                                  maxTimeFraction: 0.2))
        for _ in 0..<500 {
            let masks = tight.masks(melBands: 16, frames: 60, random: &random)
            for r in masks.frequency { #expect(r.lowerBound >= 0 && r.upperBound <= 16) }
            for r in masks.time { #expect(r.lowerBound >= 0 && r.upperBound <= 60 && r.count <= 12) }
        }
    }

    @Test func applyFillsExactlyTheMaskedStripesWithTheMean() {
        let bands = 64, frames = 200
        let original = Self.distinct(bands, frames)
        let mean = Float(original.reduce(0.0) { $0 + Double($1) } / Double(original.count))
        let policy = SpecAugment(SpecAugmentConfig(frequencyMasks: 2, maxFrequencyWidth: 10, timeMasks: 2, maxTimeWidth: 30))
        for seed in UInt64(0)..<200 {
            var random = SeededGenerator(seed: seed)
            let masks = policy.masks(melBands: bands, frames: frames, random: &random)
            var values = original
            var again = SeededGenerator(seed: seed)
            policy.apply(to: &values, melBands: bands, frames: frames, random: &again)
            let maskedRows = Set(masks.frequency.flatMap { Array($0) })
            let maskedColumns = Set(masks.time.flatMap { Array($0) })
            #expect(maskedRows.count <= 2 * 10 && maskedColumns.count <= 2 * 30)
            var wrong = 0
            for b in 0..<bands {
                for t in 0..<frames {
                    let i = b * frames + t
                    let masked = maskedRows.contains(b) || maskedColumns.contains(t)
                    if values[i] != (masked ? mean : original[i]) { wrong += 1 }
                }
            }
            #expect(wrong == 0, "seed \(seed): \(wrong) cells wrong")
            // The changed cells form whole rows and whole columns: count the fully masked stripes.
            let fullRows = (0..<bands).filter { b in (0..<frames).allSatisfy { values[b * frames + $0] == mean } }
            let fullColumns = (0..<frames).filter { t in (0..<bands).allSatisfy { values[$0 * frames + t] == mean } }
            #expect(Set(fullRows) == maskedRows || maskedColumns.count == frames)
            #expect(Set(fullColumns) == maskedColumns || maskedRows.count == bands)
        }
    }

    @Test func deterministicUnderTheSameSeed() {
        let policy = SpecAugment()
        let original = Self.distinct(128, 1001)
        var a = original, b = original, c = original
        var ra = SeededGenerator(seed: 42), rb = SeededGenerator(seed: 42), rc = SeededGenerator(seed: 43)
        policy.apply(to: &a, melBands: 128, frames: 1001, random: &ra)
        policy.apply(to: &b, melBands: 128, frames: 1001, random: &rb)
        policy.apply(to: &c, melBands: 128, frames: 1001, random: &rc)
        #expect(a == b)
        #expect(ra.state == rb.state)
        #expect(a != c)
        #expect(a != original)
    }

    @Test func zeroMasksLeaveValuesUnchanged() {
        let original = Self.distinct(32, 50)
        var random = SeededGenerator(seed: 9)
        for config in [SpecAugmentConfig.none,
                       SpecAugmentConfig(frequencyMasks: 2, maxFrequencyWidth: 0, timeMasks: 2, maxTimeWidth: 0)] {
            var values = original
            SpecAugment(config).apply(to: &values, melBands: 32, frames: 50, random: &random)
            #expect(values == original)
        }
        // No draws at all when no masks are asked for.
        var untouched = SeededGenerator(seed: 9)
        var values = original
        SpecAugment(.none).apply(to: &values, melBands: 32, frames: 50, random: &untouched)
        #expect(untouched.state == SeededGenerator(seed: 9).state)
        // Empty spectrograms are left alone.
        var empty: [Float] = []
        SpecAugment().apply(to: &empty, melBands: 128, frames: 0, random: &random)
        #expect(empty.isEmpty)
    }

    @Test func configDecodesWithDefaults() throws {
        let decoded = try JSONDecoder().decode(SpecAugmentConfig.self, from: Data(#"{"timeMasks": 1}"#.utf8))
        #expect(decoded == SpecAugmentConfig(timeMasks: 1))
        let json = try JSONEncoder().encode(SpecAugmentConfig(maxTimeFraction: 0.2))
        #expect(try JSONDecoder().decode(SpecAugmentConfig.self, from: json) == SpecAugmentConfig(maxTimeFraction: 0.2))
    }
}
