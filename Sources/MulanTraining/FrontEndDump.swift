import Foundation
import MulanCore
import MulanDSP
import MulanTensor

/// The trainer's audio front end on chosen clips, written to files so that another implementation
/// (the PyTorch package's `mulan_torch.audio`) can be checked against it number for number
/// (`mulan-train frontend-dump`, hidden from help).
///
/// Everything goes through `AudioFrontEnd`, the code `mulan-train` trains with: the clip's FLAC
/// bytes read by offset from its shard and decoded (`MemoryAudioDecoder`), the window, the log-mel
/// (`LogMelPool`), SpecAugment, and `trainingExample`, the whole per-example path of a training
/// batch (window draw, log-mel, masks). For clip i (in the order of `keys`) the output folder gets:
///
/// - `i.samples.npy`: the decoded clip, float32 [1, samples];
/// - `i.logmel.npy`: the log-mel of the window at `offsets[i]`, float32 [melBands, frames];
/// - `i.specaugment.npy`: that log-mel after `SpecAugment.apply` with ONE generator
///   `RandomSource(seed:)` shared by the clips in order (only when the configuration has SpecAugment);
/// - `i.train.npy`: `trainingExample(samples:step:index: i)`, what batch `step` of a run with this
///   configuration computes for its example i from this clip;
///
/// and `frontend.json` (`Summary`) lists them with the configuration as the trainer encodes it.
public enum FrontEndDump {
    public struct Item: Codable, Sendable, Equatable {
        public var key: String
        /// The shard file name (in the split's folder) and the FLAC member's byte range in it.
        public var shard: String
        public var flacOffset: Int
        public var flacSize: Int
        public var sampleCount: Int
        public var offset: Int
        /// The masks `SpecAugment.apply` drew (nil without SpecAugment), as half-open [lower, upper).
        public var frequencyMasks: [[Int]]?
        public var timeMasks: [[Int]]?
        /// The window offset `trainingExample` drew.
        public var trainOffset: Int
        public var files: [String: String]
    }

    public struct Summary: Codable, Sendable {
        public var dataset: String
        public var split: String
        public var sampleRate: Int
        public var config: TrainingConfig
        public var windowSamples: Int
        public var melBands: Int
        public var frames: Int
        public var seed: UInt64
        public var step: Int
        public var items: [Item]
    }

    /// Writes the files for `keys` of `split` into `out` (created if needed) and returns the summary
    /// it also writes as `out/frontend.json`. `offsets` (one per key) default to 0; each must lie in
    /// 0…max(0, samples − window).
    public static func run(dataset: String, split splitName: String, config: TrainingConfig, keys: [String],
                           offsets: [Int]?, seed: UInt64, step: Int, out: String) throws(MulanError) -> Summary {
        guard !keys.isEmpty else { throw MulanError(.usage, "frontend-dump needs at least one key (--keys)") }
        if let offsets, offsets.count != keys.count {
            throw MulanError(.usage, "--offsets gives \(offsets.count) offsets for \(keys.count) keys",
                             hint: "give one offset per key, in the same order")
        }
        guard step >= 0 else { throw MulanError(.usage, "--step must be at least 0") }
        let split = try DatasetSplit(dataset: dataset, split: splitName)
        guard config.logMel.sampleRate == split.manifest.sampleRate else {
            throw MulanError(.usage, "the configuration's logMel.sampleRate is \(config.logMel.sampleRate) Hz but the dataset's "
                             + "clips are at \(split.manifest.sampleRate) Hz",
                             hint: "mulan-train always uses the dataset's rate: set logMel.sampleRate to \(split.manifest.sampleRate)")
        }
        let clips = try find(keys, in: split)
        let frontEnd = try AudioFrontEnd(split: split, config: config)
        let m = config.logMel.melBands, t = frontEnd.frames, w = config.windowSamples
        guard w >= 1, t >= 1 else {
            throw MulanError(.usage, "a window of \(config.windowSeconds) s is \(w) samples and \(t) log-mel frames",
                             hint: "set windowSeconds so that a window holds at least one frame")
        }
        try Paths.makeDirectory(out)

        var random = RandomSource(seed: seed)
        var items: [Item] = []
        for (i, clip) in clips.enumerated() {
            let samples = try frontEnd.samples(of: (clip.shard, clip.flacOffset, clip.flacSize, clip.key))
            let offset = offsets?[i] ?? 0
            let span = max(0, samples.count - w)
            guard offset >= 0, offset <= span else {
                throw MulanError(.usage, "offset \(offset) for key \(clip.key) is outside 0…\(span) "
                                 + "(\(samples.count) samples, a window of \(w))")
            }
            var files = ["samples": "\(i).samples.npy", "logmel": "\(i).logmel.npy", "train": "\(i).train.npy"]
            try NPYWriter.write(out + "/\(i).samples.npy", rows: 1, dim: samples.count, samples)
            let values = frontEnd.logMel(samples: samples, offset: offset)
            try NPYWriter.write(out + "/\(i).logmel.npy", rows: m, dim: t, values)

            var frequencyMasks: [[Int]]?, timeMasks: [[Int]]?
            if let spec = config.specAugment {
                var probe = random   // the same draws `apply` makes, to report the masks
                let masks = SpecAugment(spec).masks(melBands: m, frames: t, random: &probe)
                frequencyMasks = masks.frequency.map { [$0.lowerBound, $0.upperBound] }
                timeMasks = masks.time.map { [$0.lowerBound, $0.upperBound] }
                var augmented = values
                SpecAugment(spec).apply(to: &augmented, melBands: m, frames: t, random: &random)
                files["specaugment"] = "\(i).specaugment.npy"
                try NPYWriter.write(out + "/\(i).specaugment.npy", rows: m, dim: t, augmented)
            }
            let example = frontEnd.trainingExample(samples: samples, step: step, index: i)
            try NPYWriter.write(out + "/\(i).train.npy", rows: m, dim: t, example.values)
            items.append(Item(key: clip.key, shard: (split.shardPaths[clip.shard] as NSString).lastPathComponent,
                              flacOffset: clip.flacOffset, flacSize: clip.flacSize, sampleCount: samples.count,
                              offset: offset, frequencyMasks: frequencyMasks, timeMasks: timeMasks,
                              trainOffset: example.offset, files: files))
        }
        let summary = Summary(dataset: dataset, split: splitName, sampleRate: split.manifest.sampleRate, config: config,
                              windowSamples: w, melBands: m, frames: t, seed: seed, step: step, items: items)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try (encoder.encode(summary) + Data("\n".utf8)).write(to: URL(fileURLWithPath: out + "/frontend.json"))
        } catch {
            throw MulanError(.io, "cannot write \(out)/frontend.json", hint: "check that --out is writable", cause: error)
        }
        return summary
    }

    /// The clips of `keys`, in that order, found by reading the split's shard headers and JSON.
    static func find(_ keys: [String], in split: DatasetSplit) throws(MulanError) -> [ShardClip] {
        var wanted = Set(keys)
        var found: [String: ShardClip] = [:]
        let scanner = ShardScanner(split: split)
        for shard in split.shardPaths.indices where !wanted.isEmpty {
            try scanner.scan(shard: shard) { clip throws(MulanError) in
                if wanted.remove(clip.key) != nil { found[clip.key] = clip }
                return !wanted.isEmpty
            }
        }
        guard wanted.isEmpty else {
            throw MulanError(.usage, "split '\(split.name)' of \(split.directory) has no sample with key "
                             + wanted.sorted().joined(separator: ", "),
                             hint: "take keys from the split's shards (the part of a member name before its first dot)")
        }
        return keys.compactMap { found[$0] }
    }
}
