internal import CMulanFFmpeg
import MulanCore
#if canImport(Glibc)
import Glibc
#endif

/// The 12-bin pitch-class profile of a window of audio: the input of `mulan-train
/// --pitch-profiles` (docs/training.md, "Pitch-class branch"; `mulan_torch.audio.pitch_class_profile`
/// computes the same).
///
/// At the rate sr: FFT length N = the smallest power of two ≥ 0.2·sr (16 kHz: 4096), hop N/2,
/// a periodic Hann window of length N, no centring: frames start at 0, hop, 2·hop, … while
/// start + N ≤ the sample count (fewer samples than N: one frame, zero-padded). The power |X_k|² of
/// every bin k in 1 … N/2 − 1 whose frequency k·sr/N lies in [C2, C7) = [65.406, 2093.005) Hz adds
/// to pitch class `round(69 + 12·log2(f / 440)) mod 12` (C = 0). A frame whose 12 sums total at most
/// 1e-10 is skipped; every other frame is divided by its total, and the profile is the mean over the
/// counted frames (summing to 1; all zeros when no frame counts).
///
/// Not thread-safe: an instance keeps its FFT context and scratch buffers. Use one per thread.
public final class PitchClassProfile {
    public static let classes = 12
    /// The lowest and highest MIDI notes counted: C2 (65.406 Hz) up to, not including, C7.
    public static let lowestNote = 36
    public static let highestNote = 96
    /// A frame counts when its pitch-class power totals more than this.
    public static let silentFrame: Float = 1e-10

    public let sampleRate: Int
    public let fftSize: Int
    public var hopLength: Int { fftSize / 2 }
    private var tx: OpaquePointer?
    private let transform: av_tx_fn
    private let input: UnsafeMutablePointer<Float>
    private let output: UnsafeMutablePointer<Float>
    private let window: [Float]
    /// The counted bins and the pitch class of each.
    private let firstBin: Int
    private let binClass: [Int]

    /// The smallest power of two ≥ 0.2 · `sampleRate`.
    public static func fftSize(sampleRate: Int) -> Int {
        var n = 4
        while Double(n) < 0.2 * Double(sampleRate) && n < (1 << 24) { n <<= 1 }
        return n
    }

    /// Frequency of a MIDI note in Hz (A4 = 69 = 440 Hz).
    static func frequency(note: Double) -> Double { 440 * pow(2, (note - 69) / 12) }

    public init(sampleRate: Int) throws(MulanError) {
        guard sampleRate >= 8000, sampleRate <= 384_000 else {
            throw MulanError(.usage, "pitch-class profiles need a sample rate between 8,000 and 384,000 Hz, not \(sampleRate)",
                             hint: "ingest the audio at a common rate (for example --sample-rate 16000)")
        }
        let n = Self.fftSize(sampleRate: sampleRate)
        var context: OpaquePointer?
        var function: av_tx_fn?
        var scale: Float = 1   // av_tx dereferences the scale of an RDFT: never pass NULL
        let ret = av_tx_init(&context, &function, AV_TX_FLOAT_RDFT, 0, Int32(n), &scale, 0)
        guard ret >= 0, let context, let function else {
            av_tx_uninit(&context)
            throw MulanError(.media, "libavutil cannot set up an FFT of length \(n)",
                             cause: LibraryError("FFmpeg", code: ret, "av_tx_init returned \(ret)"))
        }
        guard let inRaw = av_mallocz((n + 2) * MemoryLayout<Float>.size),
              let outRaw = av_mallocz((n + 2) * MemoryLayout<Float>.size) else {
            preconditionFailure("out of memory allocating FFT buffers")
        }
        self.sampleRate = sampleRate
        fftSize = n
        tx = context
        transform = function
        input = inRaw.bindMemory(to: Float.self, capacity: n + 2)
        output = outRaw.bindMemory(to: Float.self, capacity: n + 2)
        window = (0..<n).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n))) }
        let low = Self.frequency(note: Double(Self.lowestNote)), high = Self.frequency(note: Double(Self.highestNote))
        var first = 0, classes: [Int] = []
        for k in 1..<(n / 2) {
            let f = Double(k) * Double(sampleRate) / Double(n)
            guard f >= low, f < high else { continue }
            if classes.isEmpty { first = k }
            let note = Int((69 + 12 * log2(f / 440)).rounded(.toNearestOrEven))
            classes.append(((note % 12) + 12) % 12)
        }
        firstBin = first
        binClass = classes
    }

    deinit {
        av_tx_uninit(&tx)
        av_free(input)
        av_free(output)
    }

    /// The frames counted for `sampleCount` samples (before skipping silent ones).
    public func frameCount(sampleCount: Int) -> Int {
        sampleCount <= fftSize ? 1 : 1 + (sampleCount - fftSize) / hopLength
    }

    /// The profile of `samples` (mono at `sampleRate`), and the frames that counted.
    public func compute(_ samples: UnsafeBufferPointer<Float>) -> (profile: [Float], frames: Int) {
        var sums = [Float](repeating: 0, count: Self.classes)
        let counted = accumulate(samples, into: &sums)
        guard counted > 0 else { return (sums, 0) }
        return (sums.map { $0 / Float(counted) }, counted)
    }

    public func compute(_ samples: [Float]) -> (profile: [Float], frames: Int) {
        samples.withUnsafeBufferPointer { compute($0) }
    }

    /// Adds every counted frame's normalized profile of `samples` to `sums` (12 values) and returns
    /// how many frames counted: the pieces of `compute`, for profiles of a window put together from
    /// parts (the frozen-feature cache's patches).
    public func accumulate(_ samples: UnsafeBufferPointer<Float>, into sums: inout [Float]) -> Int {
        precondition(sums.count == Self.classes, "a pitch-class profile has 12 bins")
        let n = fftSize, count = samples.count
        var counted = 0
        var frame = [Float](repeating: 0, count: Self.classes)
        for t in 0..<frameCount(sampleCount: count) {
            let start = t * hopLength
            let available = max(0, min(n, count - start))
            for i in 0..<available { input[i] = window[i] * samples[start + i] }
            if available < n { (input + available).update(repeating: 0, count: n - available) }
            transform(tx, output, input, MemoryLayout<Float>.size)
            for c in 0..<Self.classes { frame[c] = 0 }
            var k = firstBin
            for c in binClass {
                let re = output[2 * k], im = output[2 * k + 1]
                frame[c] += re * re + im * im
                k += 1
            }
            let total = frame.reduce(0, +)
            guard total > Self.silentFrame else { continue }
            for c in 0..<Self.classes { sums[c] += frame[c] / total }
            counted += 1
        }
        return counted
    }
}
