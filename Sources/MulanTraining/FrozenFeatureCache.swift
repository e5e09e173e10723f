import Foundation
import MulanCore
import MulanDSP
import MulanTensor

/// The frozen-feature cache of `mulan-train --audio-cache MIB` (a frozen pretrained tower:
/// `--audio-tower musicnn|vgg --audio-init FILE --audio-train frozen`).
///
/// A frozen tower's penultimate feature of a patch never changes during a run, so it is computed
/// once per clip and patch and reused by every later step and epoch; a training step then runs only
/// the mean over the window's patches, `proj` and the L2 normalization (and the text side).
///
/// - **Patches.** The first time a clip is drawn, its whole log-mel is computed (musicnn's front end,
///   audio shorter than one window zero-padded to it, as `AudioFrontEnd.window` pads) and cut into
///   P = ⌊frames / 187⌋ non-overlapping patches from its start (musicnn's own patching of a song);
///   the tower computes the penultimate feature of every patch (batch norm on its running
///   statistics), one clip per forward pass, so a feature does not depend on which other clips came
///   in the same step.
/// - **Windows.** A training window is K = ⌊window frames / 187⌋ consecutive patches (10-s windows:
///   3) starting on the patch grid: example `i` of step `s` draws its first patch with one
///   `next() % (P − K + 1)` from `AudioFrontEnd.exampleRandom(seed, s, i)` (no draw when P = K).
///   Its window offset (for `--dump-batches`) is that patch's first sample, start · 187 · 256.
///   The audio of the window is the clip's own log-mel frames, so only the first frame of a window
///   that does not start the clip differs from the log-mel of the window cut out alone (its left
///   edge sees the samples before it instead of padding).
/// - **Memory.** Features stay in memory: 200 floats (800 bytes) per patch, 8,000 bytes per 30-s
///   clip (10 patches); a clip is stored while the stored features stay within `capacityBytes`.
///   Past the limit a clip's features are computed again (all its patches, as above) each time it
///   is drawn and not kept, so results do not depend on the limit. A resumed run starts with an
///   empty cache and computes the same features again.
/// - **Augmentation.** mulan-train's only audio augmentation is SpecAugment, which masks each
///   example's log-mel before the tower: cached features cannot follow a new draw, so
///   `TrainingConfig.checkAudio` refuses the cache with SpecAugment (`--no-spec-augment`). The
///   random window crop stays (on the patch grid).
///
/// - **Pitch classes.** With a pitch-class branch (`--pitch-profiles`), each patch also keeps the
///   sum of its frames' normalized pitch-class profiles and their count (`PitchClassProfile.accumulate`
///   on the patch's samples, frames from its first sample: 13 floats), and a window's profile is the
///   sum over its patches divided by the count. Like the window's log-mel, it then follows the clip's
///   frame grid rather than the window's own.
///
/// Evaluation (`Trainer.evaluate`, mulan-eval, mulan-embed) does not use the cache: it runs the
/// tower on the log-mel of its own windows, as for any other configuration.
final class FrozenFeatureCache {
    struct Key: Hashable {
        var shard: Int
        var offset: Int
    }

    let tower: any PretrainedAudioTower
    let frontEnd: AudioFrontEnd
    let seed: UInt64
    let windowSamples: Int
    let hop: Int
    /// Patches in one training window (K).
    let windowPatches: Int
    let capacityBytes: Int
    /// Per clip: the penultimate features of its patches, then (with a pitch-class branch) each
    /// patch's 12 pitch-class sums and frame count.
    private var rows: [Key: [Float]] = [:]
    private(set) var statistics: AudioCacheStatistics

    init(tower: any PretrainedAudioTower, frontEnd: AudioFrontEnd, config: TrainingConfig, capacityMiB: Int) {
        self.tower = tower
        self.frontEnd = frontEnd
        seed = config.seed
        windowSamples = config.windowSamples
        hop = config.logMel.hopLength
        windowPatches = MusicnnTower.patches(frames: frontEnd.frames)
        capacityBytes = capacityMiB << 20
        statistics = AudioCacheStatistics(capacityBytes: capacityBytes)
    }

    /// Penultimate features per patch of a clip's decoded samples: [P · 200] row-major, and P;
    /// with a pitch-class branch followed by [P · 13] pitch-class sums and frame counts.
    func clipFeatures(samples s: [Float]) -> (patches: Int, features: [Float]) {
        var (patches, features) = Self.clipFeatures(samples: s, windowSamples: windowSamples, tower: tower,
                                                    logMel: frontEnd.logMel(wholeClip:))
        if let pitch = frontEnd.pitch {
            let padded = Self.padded(s, windowSamples: windowSamples)
            let length = MusicnnTower.patchFrames * hop
            for p in 0..<patches {
                let part = pitch.sums(padded[(p * length)..<min(padded.count, (p + 1) * length)])
                features += part.sums + [Float(part.frames)]
            }
        }
        return (patches, features)
    }

    /// Floats a patch takes in a row: its features, and its pitch-class sums and count when kept.
    private var patchWidth: Int { type(of: tower).featureWidth + (frontEnd.pitch == nil ? 0 : PitchClassProfile.classes + 1) }

    /// A clip's samples, zero-padded to one window when shorter (as `AudioFrontEnd.window` pads).
    static func padded(_ s: [Float], windowSamples: Int) -> [Float] {
        s.count < windowSamples ? s + [Float](repeating: 0, count: windowSamples - s.count) : s
    }

    /// The same for any tower and front end: `logMel` gives a clip's [96 × frames] log-mel.
    static func clipFeatures(samples s: [Float], windowSamples: Int, tower: any PretrainedAudioTower,
                             logMel: ([Float]) -> [Float]) -> (patches: Int, features: [Float]) {
        let padded = Self.padded(s, windowSamples: windowSamples)
        let values = logMel(padded)
        let bands = MusicnnTower.melBands, frames = values.count / bands
        let x = MusicnnTower.patchBatch(Tensor(shape: [1, bands, frames], values))
        return (x.shape[0], tower.penultimate(patches: x, training: false).storage)
    }

    /// A training batch's audio input: per example the mean penultimate feature of its window's
    /// patches [B, featureWidth] (`PretrainedAudioTower.forward(meanPenultimate:)` takes it), and the window offsets.
    /// With a pitch-class branch, also each window's pitch-class profile [B, 12] (see the type's documentation).
    func trainingBatch(_ refs: [ExampleRef], step: Int) throws(MulanError) -> (features: Tensor, windowOffsets: [Int], pitchClasses: Tensor?) {
        let keys = refs.map { Key(shard: $0.shard, offset: $0.flacOffset) }
        // The batch's clips not in the cache, in first-occurrence order.
        var seen = Set<Key>()
        let missing = keys.indices.filter { rows[keys[$0]] == nil && seen.insert(keys[$0]).inserted }
        // Decoding in parallel; then one forward pass per clip (the tower spreads its patches over the threads).
        let decoded = DecodedSlots(count: missing.count)
        let errors = ErrorSlot()
        Parallel.forEach(missing.count) { j in
            let r = refs[missing[j]]
            do throws(MulanError) {
                decoded.set(j, try frontEnd.samples(of: (r.shard, r.flacOffset, r.flacSize, r.key)))
            } catch {
                errors.set(error)
            }
        }
        if let e = errors.error { throw e }
        var fresh: [Key: [Float]] = [:]
        for (j, i) in missing.enumerated() {
            let (patches, features) = clipFeatures(samples: decoded.take(j))
            statistics.patchesComputed += patches
            statistics.clipsComputed += 1
            let bytes = features.count * MemoryLayout<Float>.size
            if statistics.bytes + bytes <= capacityBytes {
                rows[keys[i]] = features
                statistics.bytes += bytes
                statistics.clips += 1
            } else {
                fresh[keys[i]] = features
            }
        }
        let w = type(of: tower).featureWidth, k = windowPatches
        let classes = PitchClassProfile.classes, keepsPitch = frontEnd.pitch != nil
        var out = Tensor(shape: [refs.count, w])
        var pitchClasses = Tensor(shape: [refs.count, classes])
        var offsets = [Int](repeating: 0, count: refs.count)
        let computedNow = Set(missing.map { keys[$0] })
        for (i, key) in keys.enumerated() {
            guard let features = rows[key] ?? fresh[key] else {
                preconditionFailure("FrozenFeatureCache: clip \(refs[i].key) neither cached nor computed")
            }
            let patches = features.count / patchWidth
            var random = AudioFrontEnd.exampleRandom(seed: seed, step: step, index: i)
            let start = patches > k ? Int(random.next() % UInt64(patches - k + 1)) : 0
            offsets[i] = start * MusicnnTower.patchFrames * hop
            for p in start..<(start + k) {
                for j in 0..<w { out.storage[i * w + j] += features[p * w + j] }
            }
            for j in 0..<w { out.storage[i * w + j] /= Float(k) }
            if keepsPitch {
                var sums = [Float](repeating: 0, count: classes + 1)
                for p in start..<(start + k) {
                    let base = patches * w + p * (classes + 1)
                    for j in 0...classes { sums[j] += features[base + j] }
                }
                if sums[classes] > 0 {
                    for j in 0..<classes { pitchClasses.storage[i * classes + j] = sums[j] / sums[classes] }
                }
            }
            if !computedNow.contains(key) { statistics.patchHits += k }
        }
        return (out, offsets, keepsPitch ? pitchClasses : nil)
    }
}

/// How the frozen-feature cache did in a run (`audio_cache` in summary.json).
public struct AudioCacheStatistics: Codable, Sendable, Equatable {
    /// The limit on stored features (`--audio-cache` MiB).
    public var capacityBytes: Int
    /// Clips whose features are stored, and their bytes.
    public var clips = 0
    public var bytes = 0
    /// Clips and patches run through the tower (a clip past the limit again at each draw).
    public var clipsComputed = 0
    public var patchesComputed = 0
    /// Window patches taken from features already in the cache.
    public var patchHits = 0

    enum CodingKeys: String, CodingKey {
        case capacityBytes = "capacity_bytes", clips, bytes, clipsComputed = "clips_computed"
        case patchesComputed = "patches_computed", patchHits = "patch_hits"
    }
}

/// Decoded clips written by parallel workers, one slot each.
private final class DecodedSlots: @unchecked Sendable {   // workers write distinct slots; read after the loop
    private var slots: [[Float]]
    private let lock = NSLock()
    init(count: Int) { slots = [[Float]](repeating: [], count: count) }
    func set(_ i: Int, _ samples: [Float]) {
        lock.lock()
        slots[i] = samples
        lock.unlock()
    }
    func take(_ i: Int) -> [Float] {
        lock.lock()
        defer { slots[i] = []; lock.unlock() }
        return slots[i]
    }
}
