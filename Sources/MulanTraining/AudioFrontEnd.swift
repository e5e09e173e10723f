import Foundation
import MulanCore
import MulanDSP
import MulanMedia
import MulanTensor

/// Turns shard clips into log-mel batches: reads each clip's FLAC bytes from its shard by offset,
/// decodes them (libavcodec), crops windows, computes the log-mel (libavutil's FFT) and, for
/// training, applies SpecAugment. Work is spread over `BLAS.threads` threads; every random choice
/// comes from a generator seeded by (seed, step, example), so batches do not depend on the
/// thread count.
final class AudioFrontEnd {
    let split: DatasetSplit
    let config: TrainingConfig
    private let pool: LogMelPool
    /// Pitch-class profiles of the windows, for a model with a pitch-class branch; nil otherwise.
    let pitch: PitchClassPool?
    /// Decoded clips kept between draws (`--decoded-cache`), nil: every draw decodes.
    let decodedCache: DecodedClipCache?

    init(split: DatasetSplit, config: TrainingConfig, decodedCache: DecodedClipCache? = nil) throws(MulanError) {
        self.split = split
        self.config = config
        self.decodedCache = decodedCache
        pool = try LogMelPool(config.logMel, windowSamples: config.windowSamples)
        pitch = try PitchClassPool.forModel(config)
    }

    /// Frames of one window's log-mel (as librosa counts them with center=True).
    var frames: Int { pool.frames }

    /// The decoded samples of a clip.
    func samples(of ref: (shard: Int, offset: Int, size: Int, key: String)) throws(MulanError) -> [Float] {
        let start = Profiler.now()
        defer { Profiler.add(.data, since: start) }
        guard let cache = decodedCache else { return try decode(ref) }
        return try cache.samples(DecodedClipCache.Key(shard: ref.shard, offset: ref.offset)) { () throws(MulanError) in try decode(ref) }
    }

    private func decode(_ ref: (shard: Int, offset: Int, size: Int, key: String)) throws(MulanError) -> [Float] {
        let path = split.shardPaths[ref.shard]
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw MulanError(.io, "cannot open shard \(path)", cause: SystemCallError.current())
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: ref.size)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, ref.size, off_t(ref.offset)) }
        guard got == ref.size else {
            throw MulanError(.data, "shard \(path): member \(ref.key).flac is cut short",
                             hint: "run `mulan-shard verify \(split.directory)`")
        }
        let decoded = try MemoryAudioDecoder.decode(bytes, label: "\(path) member \(ref.key).flac",
                                                    sampleRate: config.logMel.sampleRate)
        return decoded.samples
    }

    /// `length` samples from `offset`; audio no longer than one window is zero-padded to it.
    static func window(_ samples: [Float], offset: Int, length w: Int) -> [Float] {
        if samples.count <= w { return samples + [Float](repeating: 0, count: w - samples.count) }
        return Array(samples[offset..<(offset + w)])
    }

    /// Offsets of the start, middle and end windows of a clip, as the paper scores clips.
    static func clipWindowOffsets(sampleCount: Int, length w: Int) -> [Int] {
        let span = max(0, sampleCount - w)
        return [0, span / 2, span]
    }

    private func window(_ samples: [Float], offset: Int) -> [Float] {
        Self.window(samples, offset: offset, length: config.windowSamples)
    }

    /// The generator of example `index` of batch `step`: every random choice of one training
    /// example (its window, its SpecAugment masks) comes from it, in that order.
    static func exampleRandom(seed: UInt64, step: Int, index: Int) -> RandomSource {
        RandomSource(seed: seed ^ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index) &* 0xD6E8_FEB8_6659_FD93)
    }

    /// Example `index` of batch `step` from the clip's decoded samples: the window's offset (one
    /// draw `next() % (span + 1)`, none when the clip is no longer than a window) and its log-mel
    /// [melBands × frames], with SpecAugment when the configuration has it. `trainingBatch` calls
    /// this for every example; `FrontEndDump` calls it to show other implementations what the
    /// trainer computes.
    func trainingExample(samples s: [Float], step: Int, index: Int) -> (offset: Int, values: [Float]) {
        var random = Self.exampleRandom(seed: config.seed, step: step, index: index)
        let span = max(0, s.count - config.windowSamples)
        let offset = span == 0 ? 0 : Int(random.next() % UInt64(span + 1))
        var values = logMel(samples: s, offset: offset)
        if let spec = config.specAugment {
            let start = Profiler.now()
            SpecAugment(spec).apply(to: &values, melBands: config.logMel.melBands, frames: frames, random: &random)
            Profiler.add(.logmel, since: start)
        }
        return (offset, values)
    }

    /// The log-mel [melBands × frames] of the window of `samples` at `offset`, without SpecAugment
    /// (as evaluation computes each window).
    func logMel(samples s: [Float], offset: Int) -> [Float] {
        pool.compute(window(s, offset: offset))
    }

    /// The log-mel [melBands × frames] of a whole clip's samples (frames as librosa counts them
    /// with center=True), for the frozen-feature cache.
    func logMel(wholeClip s: [Float]) -> [Float] {
        pool.compute(s)
    }

    /// A training batch's audio input and the window each example was cut at.
    struct TrainingBatch {
        /// [B, melBands, frames] log-mel, with SpecAugment when configured.
        var features: Tensor
        /// Per example, the first sample of its window in the decoded clip (0 when the clip is no
        /// longer than the window).
        var windowOffsets: [Int]
        /// [B, 12] the windows' pitch-class profiles, for a model with a pitch-class branch.
        var pitchClasses: Tensor?
    }

    /// The windows' tower inputs and, for a model with a pitch-class branch, their pitch-class profiles.
    struct WindowBatch {
        /// [windows, melBands, frames] log-mel.
        var features: Tensor
        /// [windows, 12], or nil without a pitch-class branch.
        var pitchClasses: Tensor?
    }

    /// [B, melBands, frames] log-mel of one random window per example, with SpecAugment.
    ///
    /// Example `i` of step `step` draws from `RandomSource(seed ^ step·0x9E3779B97F4A7C15 ^
    /// i·0xD6E8FEB86659FD93)`: first the window offset (`next() % (span + 1)`, no draw when the clip
    /// fits in one window), then SpecAugment's masks. mulan_torch.MulanShards does the same.
    func trainingBatch(_ refs: [ExampleRef], step: Int) throws(MulanError) -> TrainingBatch {
        let m = config.logMel.melBands, t = frames
        var out = Tensor(shape: [refs.count, m, t])
        var offsets = [Int](repeating: 0, count: refs.count)
        let classes = PitchClassProfile.classes
        var profiles = Tensor(shape: [max(1, refs.count), classes])
        let errors = ErrorSlot()
        profiles.withUnsafeMutablePointer { pp in
            let profileBox = SendablePointer(pp)
            offsets.withUnsafeMutableBufferPointer { offsetBuffer in
                guard let offsetBase = offsetBuffer.baseAddress else { return }   // an empty batch
                let offsetBox = SendablePointer(offsetBase)
                out.withUnsafeMutablePointer { op in
                    let outBox = SendablePointer(op)
                    Parallel.forEach(refs.count) { i in
                        let r = refs[i]
                        do throws(MulanError) {
                            let s = try samples(of: (r.shard, r.flacOffset, r.flacSize, r.key))
                            let example = trainingExample(samples: s, step: step, index: i)
                            offsetBox.pointer[i] = example.offset
                            example.values.withUnsafeBufferPointer { vp in
                                (outBox.pointer + i * m * t).update(from: vp.baseAddress!, count: m * t)
                            }
                            if let pitch {
                                let profile = pitch.profile(window(s, offset: example.offset))
                                for c in 0..<classes { profileBox.pointer[i * classes + c] = profile[c] }
                            }
                        } catch {
                            errors.set(error)
                        }
                    }
                }
            }
        }
        if let e = errors.error { throw e }
        return TrainingBatch(features: out, windowOffsets: offsets, pitchClasses: pitch == nil ? nil : profiles)
    }

    /// [3·B, melBands, frames]: the start, middle and end windows of each clip, as the paper
    /// evaluates, with their pitch-class profiles [3·B, 12] for a model with a pitch-class branch.
    func evaluationBatch(_ clips: [ShardClip]) throws(MulanError) -> WindowBatch {
        let m = config.logMel.melBands, t = frames
        var out = Tensor(shape: [clips.count * 3, m, t])
        let classes = PitchClassProfile.classes
        var profiles = Tensor(shape: [max(1, clips.count * 3), classes])
        let errors = ErrorSlot()
        profiles.withUnsafeMutablePointer { pp in
            let profileBox = SendablePointer(pp)
            out.withUnsafeMutablePointer { op in
                let outBox = SendablePointer(op)
                Parallel.forEach(clips.count) { i in
                    let c = clips[i]
                    do throws(MulanError) {
                        let s = try samples(of: (c.shard, c.flacOffset, c.flacSize, c.key))
                        let offsets = Self.clipWindowOffsets(sampleCount: s.count, length: config.windowSamples)
                        for (k, offset) in offsets.enumerated() {
                            let values = logMel(samples: s, offset: offset)
                            values.withUnsafeBufferPointer { vp in
                                (outBox.pointer + (i * 3 + k) * m * t).update(from: vp.baseAddress!, count: m * t)
                            }
                            if let pitch {
                                let profile = pitch.profile(window(s, offset: offset))
                                for c in 0..<classes { profileBox.pointer[(i * 3 + k) * classes + c] = profile[c] }
                            }
                        }
                    } catch {
                        errors.set(error)
                    }
                }
            }
        }
        if let e = errors.error { throw e }
        return WindowBatch(features: out, pitchClasses: pitch == nil ? nil : profiles)
    }
}

/// A pointer handed to parallel workers that write disjoint ranges.
struct SendablePointer<Element>: @unchecked Sendable {   // workers write disjoint ranges
    let pointer: UnsafeMutablePointer<Element>
    init(_ p: UnsafeMutablePointer<Element>) { pointer = p }
}

/// The first error of a parallel loop.
final class ErrorSlot: @unchecked Sendable {   // guarded by its lock
    private let lock = NSLock()
    private(set) var error: MulanError?
    func set(_ e: MulanError) {
        lock.lock()
        if error == nil { error = e }
        lock.unlock()
    }
}

/// Calculators that keep scratch buffers (an FFT context), shared by worker threads: each call
/// borrows one, making a new one when all are out.
final class CalculatorPool<Calculator>: @unchecked Sendable {   // instances are handed out under the lock
    private let lock = NSLock()
    private var free: [Calculator]
    private let make: () -> Calculator?

    /// `first` proves the settings work; `make` builds more (nil only if they stopped working).
    init(first: Calculator, make: @escaping () -> Calculator?) {
        free = [first]
        self.make = make
    }

    func borrow<Result>(_ body: (Calculator) -> Result) -> Result {
        lock.lock()
        var calculator = free.popLast()
        lock.unlock()
        if calculator == nil { calculator = make() }
        guard let calculator else { preconditionFailure("the calculator's settings were accepted once and cannot fail now") }
        let result = body(calculator)
        lock.lock()
        free.append(calculator)
        lock.unlock()
        return result
    }
}

/// Log-mel calculators shared by worker threads.
final class LogMelPool: Sendable {
    private let pool: CalculatorPool<LogMelSpectrogram>
    let frames: Int

    init(_ config: LogMelConfig, windowSamples: Int) throws(MulanError) {
        let first = try LogMelSpectrogram(config: config)
        frames = first.frameCount(sampleCount: windowSamples)
        pool = CalculatorPool(first: first) { try? LogMelSpectrogram(config: config) }
    }

    func compute(_ samples: [Float]) -> [Float] {
        pool.borrow { calculator in
            let start = Profiler.now()
            defer { Profiler.add(.logmel, since: start) }
            return calculator.compute(samples).values
        }
    }
}

/// Pitch-class profile calculators (`PitchClassProfile`) shared by worker threads: the input of a
/// model's pitch-class branch.
final class PitchClassPool: Sendable {
    private let pool: CalculatorPool<PitchClassProfile>

    init(sampleRate: Int) throws(MulanError) {
        pool = CalculatorPool(first: try PitchClassProfile(sampleRate: sampleRate)) { try? PitchClassProfile(sampleRate: sampleRate) }
    }

    /// A pool when the configuration has a pitch-class branch, else nil.
    static func forModel(_ config: TrainingConfig) throws(MulanError) -> PitchClassPool? {
        config.pitchProfiles > 0 ? try PitchClassPool(sampleRate: config.logMel.sampleRate) : nil
    }

    /// The 12-bin profile of one window's samples.
    func profile(_ samples: [Float]) -> [Float] {
        pool.borrow { calculator in
            let start = Profiler.now()
            defer { Profiler.add(.logmel, since: start) }
            return calculator.compute(samples).profile
        }
    }

    /// The sums of the counted frames' profiles of `samples` and their count (`PitchClassProfile.accumulate`).
    func sums(_ samples: ArraySlice<Float>) -> (sums: [Float], frames: Int) {
        pool.borrow { calculator in
            var sums = [Float](repeating: 0, count: PitchClassProfile.classes)
            let frames = samples.withUnsafeBufferPointer { calculator.accumulate($0, into: &sums) }
            return (sums, frames)
        }
    }
}
