import Foundation
import MulanCore

/// `dataset.json`: what a shard set holds (schemas/dataset.schema.json).
public struct DatasetManifest: Codable, Sendable, StageReport {
    public struct Split: Codable, Sendable {
        public var shards: [String] = []
        public var samples = 0
        public var textsBySource: [String: Int] = [:]
        public var bytes = 0
        enum CodingKeys: String, CodingKey {
            case shards, samples, textsBySource = "texts_by_source", bytes
        }

        public init(shards: [String] = [], samples: Int = 0, textsBySource: [String: Int] = [:], bytes: Int = 0) {
            self.shards = shards
            self.samples = samples
            self.textsBySource = textsBySource
            self.bytes = bytes
        }
    }

    public var schemaVersion = 1
    public var datasetID: String
    public var previousDatasetID: String?
    public var format = "webdataset"
    public var sampleRate: Int
    public var clipSeconds: Double
    public var seed: UInt64
    public var splitSpec: [String: Double]
    public var samplesPerShard: Int
    public var maxShardBytes: Int?
    public var vocabularySHA256: String?
    public var filterVersions: [String: String]
    public var splits: [String: Split] = [:]
    public var clipsWithoutText = 0
    /// With `--min-lufs` / `--max-true-peak`: the thresholds and the clips left out by reason.
    public var loudnessFilter: LoudnessFilterSummary?
    /// When shipped clips were normalized by mulan-ingest `--loudness-target`.
    public var loudnessNormalization: LoudnessNormalizationSummary?
    /// The `mulan-filter audio` version whose dropped clips were left out (absent: none was run or chosen).
    public var audioFilterVersion: String?
    /// Clips that would be in the dataset but that version dropped, by reason (its failing rule).
    public var clipsDroppedByAudioFilter: [String: Int]?
    /// With `--hold-out`: the benchmark test tracks kept out of train.
    public var heldOut: HeldOutSummary?
    public var incremental = "A catalog that changed gives a new dataset id and a new folder; published folders are never rewritten."

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", datasetID = "dataset_id", previousDatasetID = "previous_dataset_id"
        case format, sampleRate = "sample_rate", clipSeconds = "clip_seconds", seed, splitSpec = "split_spec"
        case samplesPerShard = "samples_per_shard", maxShardBytes = "max_shard_bytes"
        case vocabularySHA256 = "tokenizer_vocab_sha256", filterVersions = "filter_versions", splits
        case clipsWithoutText = "clips_without_text", incremental
        case loudnessFilter = "loudness_filter", loudnessNormalization = "loudness_normalization"
        case audioFilterVersion = "audio_filter_version", clipsDroppedByAudioFilter = "clips_dropped_by_audio_filter"
        case heldOut = "held_out"
    }

    /// `held_out`: the hold-out lists, how many track ids they name, and the train tracks and clips
    /// kept out because they are listed or in a listed track's duplicate group.
    public struct HeldOutSummary: Codable, Sendable {
        public var files: [String]
        public var tracksListed: Int
        public var tracksKeptOutOfTrain: Int
        public var clipsKeptOutOfTrain: Int
        /// Those tracks, sorted (the first 1000).
        public var tracks: [String]
        enum CodingKeys: String, CodingKey {
            case files, tracksListed = "tracks_listed", tracksKeptOutOfTrain = "tracks_kept_out_of_train"
            case clipsKeptOutOfTrain = "clips_kept_out_of_train", tracks
        }

        public init(files: [String], tracksListed: Int, tracksKeptOutOfTrain: Int, clipsKeptOutOfTrain: Int,
                    tracks: [String]) {
            self.files = files
            self.tracksListed = tracksListed
            self.tracksKeptOutOfTrain = tracksKeptOutOfTrain
            self.clipsKeptOutOfTrain = clipsKeptOutOfTrain
            self.tracks = tracks
        }
    }

    public init(schemaVersion: Int = 1, datasetID: String, previousDatasetID: String? = nil, sampleRate: Int,
                clipSeconds: Double, seed: UInt64, splitSpec: [String: Double], samplesPerShard: Int,
                maxShardBytes: Int? = nil, vocabularySHA256: String? = nil, filterVersions: [String: String],
                splits: [String: Split] = [:], clipsWithoutText: Int = 0,
                loudnessFilter: LoudnessFilterSummary? = nil,
                loudnessNormalization: LoudnessNormalizationSummary? = nil, audioFilterVersion: String? = nil,
                clipsDroppedByAudioFilter: [String: Int]? = nil, heldOut: HeldOutSummary? = nil) {
        self.schemaVersion = schemaVersion
        self.datasetID = datasetID
        self.previousDatasetID = previousDatasetID
        self.sampleRate = sampleRate
        self.clipSeconds = clipSeconds
        self.seed = seed
        self.splitSpec = splitSpec
        self.samplesPerShard = samplesPerShard
        self.maxShardBytes = maxShardBytes
        self.vocabularySHA256 = vocabularySHA256
        self.filterVersions = filterVersions
        self.splits = splits
        self.clipsWithoutText = clipsWithoutText
        self.loudnessFilter = loudnessFilter
        self.loudnessNormalization = loudnessNormalization
        self.audioFilterVersion = audioFilterVersion
        self.clipsDroppedByAudioFilter = clipsDroppedByAudioFilter
        self.heldOut = heldOut
    }
}

/// `SPLIT/shard-NNNNNN.json`: one shard's counts and hash (schemas/shard-sidecar.schema.json).
public struct ShardSidecar: Codable, Sendable, StageReport {
    public var schemaVersion = 1
    public var shard: String
    public var samples: Int
    public var bytes: Int
    public var sha256: String
    public var firstKey: String
    public var lastKey: String
    public var textsBySource: [String: Int]

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", shard, samples, bytes, sha256, firstKey = "first_key",
             lastKey = "last_key", textsBySource = "texts_by_source"
    }

    public init(schemaVersion: Int = 1, shard: String, samples: Int, bytes: Int, sha256: String, firstKey: String,
                lastKey: String, textsBySource: [String: Int]) {
        self.schemaVersion = schemaVersion
        self.shard = shard
        self.samples = samples
        self.bytes = bytes
        self.sha256 = sha256
        self.firstKey = firstKey
        self.lastKey = lastKey
        self.textsBySource = textsBySource
    }
}

/// The JSON member of one sample (`KEY.json`; schemas/sample.schema.json).
public struct SampleRecord: Codable, Sendable {
    public struct Text: Codable, Sendable {
        public var text: String
        public var tokenIDs: [Int]
        public var rawTextID: Int
        enum CodingKeys: String, CodingKey { case text, tokenIDs = "token_ids", rawTextID = "raw_text_id" }

        public init(text: String, tokenIDs: [Int], rawTextID: Int) {
            self.text = text
            self.tokenIDs = tokenIDs
            self.rawTextID = rawTextID
        }
    }
    public struct Provenance: Codable, Sendable {
        public var clipID: Int
        public var trackRowID: Int
        public var flacSHA256: String
        public var filterVersions: [String: String]
        enum CodingKeys: String, CodingKey {
            case clipID = "clip_id", trackRowID = "track_rowid", flacSHA256 = "flac_sha256", filterVersions = "filter_versions"
        }

        public init(clipID: Int, trackRowID: Int, flacSHA256: String, filterVersions: [String: String]) {
            self.clipID = clipID
            self.trackRowID = trackRowID
            self.flacSHA256 = flacSHA256
            self.filterVersions = filterVersions
        }
    }

    public var key: String
    public var trackID: String
    public var clipIndex: Int
    public var startSeconds: Double
    public var durationSeconds: Double
    public var sampleRate: Int
    public var split: String
    public var texts: [String: [Text]]
    public var provenance: Provenance
    /// EBU R128 loudness of the clip as stored (catalog `clips.lufs`, `loudness_range`,
    /// `true_peak_db`): LUFS, LU, dBTP. Written as null when unknown (not measured, or no integrated
    /// loudness below the −70 LUFS gate), so every sample has the same keys.
    public var lufs: Double?
    public var loudnessRange: Double?
    public var truePeakDB: Double?
    /// LAION-CLAP's captions and class labels, made from `texts` (`ClapFields`). Always written;
    /// nil only when reading a sample written before mulan-shard added them.
    public var text: [String]?
    public var tag: [String]?
    /// The key of the track's duplicate group (mulan-dedupe: the group's smallest track id); written
    /// as null when the track is in no group or no deduplication ran.
    public var duplicateGroup: String?

    enum CodingKeys: String, CodingKey {
        case key, trackID = "track_id", clipIndex = "clip_index", startSeconds = "start_s",
             durationSeconds = "duration_s", sampleRate = "sample_rate", split, texts, provenance
        case lufs, loudnessRange = "loudness_range", truePeakDB = "true_peak_db"
        case text, tag, duplicateGroup = "duplicate_group"
    }

    /// As synthesized, except that unknown loudness values and a missing duplicate group are
    /// written as null, not left out, and `text` / `tag` are always written.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(trackID, forKey: .trackID)
        try c.encode(clipIndex, forKey: .clipIndex)
        try c.encode(startSeconds, forKey: .startSeconds)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encode(sampleRate, forKey: .sampleRate)
        try c.encode(split, forKey: .split)
        try c.encode(texts, forKey: .texts)
        try c.encode(provenance, forKey: .provenance)
        try c.encode(lufs, forKey: .lufs)
        try c.encode(loudnessRange, forKey: .loudnessRange)
        try c.encode(truePeakDB, forKey: .truePeakDB)
        try c.encode(text ?? ClapFields.captions(texts), forKey: .text)
        try c.encode(tag ?? ClapFields.tags(texts), forKey: .tag)
        try c.encode(duplicateGroup, forKey: .duplicateGroup)
    }

    public func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    public init(key: String, trackID: String, clipIndex: Int, startSeconds: Double, durationSeconds: Double,
                sampleRate: Int, split: String, texts: [String: [Text]], provenance: Provenance, lufs: Double? = nil,
                loudnessRange: Double? = nil, truePeakDB: Double? = nil, text: [String]? = nil, tag: [String]? = nil,
                duplicateGroup: String? = nil) {
        self.key = key
        self.trackID = trackID
        self.clipIndex = clipIndex
        self.startSeconds = startSeconds
        self.durationSeconds = durationSeconds
        self.sampleRate = sampleRate
        self.split = split
        self.texts = texts
        self.provenance = provenance
        self.lufs = lufs
        self.loudnessRange = loudnessRange
        self.truePeakDB = truePeakDB
        self.text = text
        self.tag = tag
        self.duplicateGroup = duplicateGroup
    }
}

extension DatasetManifest {
    /// `loudness_filter` in dataset.json: the thresholds and the clips each rule left out.
    public struct LoudnessFilterSummary: Codable, Sendable, Hashable {
        public var minLUFS: Double?
        public var maxTruePeakDB: Double?
        /// Every reason of `LoudnessFilter.Reason`, with 0 when no clip failed it.
        public var clipsDroppedByReason: [String: Int]

        enum CodingKeys: String, CodingKey {
            case minLUFS = "min_lufs", maxTruePeakDB = "max_true_peak_db", clipsDroppedByReason = "clips_dropped_by_reason"
        }

        public init(minLUFS: Double? = nil, maxTruePeakDB: Double? = nil, clipsDroppedByReason: [String: Int]) {
            self.minLUFS = minLUFS
            self.maxTruePeakDB = maxTruePeakDB
            self.clipsDroppedByReason = clipsDroppedByReason
        }
    }

    /// `loudness_normalization` in dataset.json: how mulan-ingest's `--loudness-target` shaped the
    /// shipped clips (present when at least one was normalized).
    public struct LoudnessNormalizationSummary: Codable, Sendable, Hashable {
        public struct Setting: Codable, Sendable, Hashable {
            public var targetLUFS: Double
            public var maxTruePeakDB: Double
            public var samples: Int
            enum CodingKeys: String, CodingKey {
                case targetLUFS = "target_lufs", maxTruePeakDB = "max_true_peak_db", samples
            }

            public init(targetLUFS: Double, maxTruePeakDB: Double, samples: Int) {
                self.targetLUFS = targetLUFS
                self.maxTruePeakDB = maxTruePeakDB
                self.samples = samples
            }
        }
        /// Each target and ceiling the shipped samples were ingested with, by target then ceiling.
        public var settings: [Setting]
        /// Shipped samples of tracks ingested without `--loudness-target`.
        public var samplesNotNormalized: Int

        enum CodingKeys: String, CodingKey {
            case settings, samplesNotNormalized = "samples_not_normalized"
        }

        public init(settings: [Setting], samplesNotNormalized: Int) {
            self.settings = settings
            self.samplesNotNormalized = samplesNotNormalized
        }
    }
}
