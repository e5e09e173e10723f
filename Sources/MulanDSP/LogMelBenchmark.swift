import Foundation
import MulanCore

/// Times `LogMelSpectrogram.compute` on synthetic audio, for `bench/logmel-vs-librosa.sh` (through
/// `mulan-train logmel-bench`, which prints `Result.json`). Decodes nothing and uses one thread.
/// `bench/logmel_librosa.py` generates the same audio and times librosa on it.
public enum LogMelBenchmark {
    public struct Result: Sendable, Codable, Equatable {
        public var audioSeconds: Double
        public var sampleRate: Int
        public var windowLength: Int
        public var hopLength: Int
        public var fftSize: Int
        public var melBands: Int
        public var frames: Int
        /// Wall-clock and thread CPU seconds of each timed call (after one untimed warm-up call).
        public var wallSeconds: [Double]
        public var cpuSeconds: [Double]
        public var medianWallSeconds: Double
        public var medianCPUSeconds: Double
        /// Seconds of audio per second of CPU time of one call on one thread: × realtime per core.
        public var realtimeFactor: Double
        /// The mean of the log-mel values, to check that both sides computed the same thing.
        public var meanDB: Double

        /// One line of JSON (sorted keys).
        public var json: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            guard let data = try? encoder.encode(self) else { return "{}" }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// `seconds` of a linear chirp from 40 Hz to 0.45 · `sampleRate` (amplitude 0.5) plus uniform
    /// noise of amplitude 0.02 from SplitMix64(`seed`), each sample computed in double precision
    /// and rounded to float once; `bench/logmel_librosa.py` computes the same.
    public static func syntheticAudio(seconds: Double, sampleRate: Int, seed: UInt64 = 1) -> [Float] {
        let count = max(0, Int((seconds * Double(sampleRate)).rounded(.toNearestOrEven)))
        guard count > 0, sampleRate > 0 else { return [] }
        let rate = Double(sampleRate), duration = Double(count) / rate
        let f0 = 40.0, f1 = 0.45 * rate
        var state = seed
        return (0..<count).map { i in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let noise = (Double(z >> 11) * 0x1p-53 * 2 - 1) * 0.02
            let t = Double(i) / rate
            let phase = 2 * Double.pi * (f0 * t + (f1 - f0) * t * t / (2 * duration))
            return Float(0.5 * sin(phase) + noise)
        }
    }

    /// Times `repeats` calls of `compute` on `seconds` of synthetic audio at `sampleRate` (with
    /// `config`, by default `LogMelConfig(sampleRate:)`), after one untimed call.
    public static func run(seconds: Double, sampleRate: Int = 16000, repeats: Int = 5,
                           config: LogMelConfig? = nil) throws(MulanError) -> Result {
        let settings = config ?? LogMelConfig(sampleRate: sampleRate)
        guard settings.sampleRate == sampleRate else {
            throw MulanError(.usage, "the log-mel configuration is for \(settings.sampleRate) Hz, not \(sampleRate) Hz")
        }
        guard seconds > 0, seconds.isFinite, repeats >= 1 else {
            throw MulanError(.usage, "logmel-bench needs a positive duration and at least one repeat")
        }
        let mel = try LogMelSpectrogram(config: settings)
        let audio = syntheticAudio(seconds: seconds, sampleRate: sampleRate)
        var output = mel.compute(audio)   // warm-up: page in the buffers
        var wall: [Double] = [], cpu: [Double] = []
        for _ in 0..<repeats {
            let w0 = clock(CLOCK_MONOTONIC), c0 = clock(CLOCK_THREAD_CPUTIME_ID)
            output = mel.compute(audio)
            let c1 = clock(CLOCK_THREAD_CPUTIME_ID), w1 = clock(CLOCK_MONOTONIC)
            wall.append(w1 - w0)
            cpu.append(c1 - c0)
        }
        let sum = output.values.reduce(0.0) { $0 + Double($1) }
        let audioSeconds = Double(audio.count) / Double(sampleRate)
        let medianCPU = median(cpu)
        return Result(audioSeconds: audioSeconds, sampleRate: sampleRate, windowLength: mel.windowLength,
                      hopLength: mel.hopLength, fftSize: mel.fftSize, melBands: mel.melBands, frames: output.frames,
                      wallSeconds: wall, cpuSeconds: cpu, medianWallSeconds: median(wall), medianCPUSeconds: medianCPU,
                      realtimeFactor: medianCPU > 0 ? audioSeconds / medianCPU : 0,
                      meanDB: output.values.isEmpty ? 0 : sum / Double(output.values.count))
    }

    private static func clock(_ id: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(id, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
