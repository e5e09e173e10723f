import Foundation
import MulanCore
import MulanFormats
import MulanShardFormat

/// `DATASET/SPLIT.wids.json`: a split's shard index in the format of the `wids` package
/// (webdataset's indexed companion, `wids.ShardListDataset`): `wids_version` 1, a `name`, and a
/// `shardlist` of `url` (relative to the index file, which wids resolves against the index's own
/// folder) and `nsamples`, with `filesize` as `widsindex create` writes it. The counts are the
/// sidecars', so indexed access and epochs are exact without reading a shard.
public struct WidsIndex: Codable, Sendable, Equatable {
    public struct Shard: Codable, Sendable, Equatable {
        public var url: String
        public var nsamples: Int
        public var filesize: Int
    }

    public var kind = "wids-shard-index-v1"
    public var widsVersion = 1
    public var name: String
    public var info: String
    public var shardlist: [Shard]

    enum CodingKeys: String, CodingKey {
        case kind = "__kind__", widsVersion = "wids_version", name, info, shardlist
    }

    /// The index of split `split` of dataset `datasetID`: its shards in order, with their sample
    /// counts and sizes.
    public init(datasetID: String, split: String, shards: [(name: String, samples: Int, bytes: Int)]) {
        name = "mulan-\(datasetID)-\(split)"
        info = "mulan-shard dataset \(datasetID), split \(split): \(shards.reduce(0) { $0 + $1.samples }) samples "
            + "(KEY.flac + KEY.json each; see dataset.json)"
        shardlist = shards.map { Shard(url: split + "/" + $0.name, nsamples: $0.samples, filesize: $0.bytes) }
    }

    /// Where a split's index lies in the dataset folder.
    public static func fileName(split: String) -> String { split + ".wids.json" }

    public func jsonBytes() throws(MulanError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(self) + Data("\n".utf8)
        } catch {
            throw MulanError(.internalError, "cannot encode the wids index \(name)", cause: error)
        }
    }
}

/// `DATASET/README.md`: a Hugging Face dataset card, so that `datasets.load_dataset(DATASET)`
/// reads the shards (and only the shards) with the `webdataset` builder. Without it, `datasets`
/// infers data files from every file in the split folders, takes the sidecars and `sizes.json`
/// (which must stay beside the shards for LAION-CLAP) for JSON data and fails with a CastError,
/// and renames the `valid` folder `validation`.
///
/// Its YAML header names each split's tars in a `configs:` block (split names as mulan gives them;
/// a `-` becomes `_`, which Hugging Face split names cannot hold) and declares every feature of a
/// sample, so that `datasets` does not infer the JSON's structure from the first five samples and
/// drop, without a word, the text sources those samples happen not to have. `flac` is declared as
/// binary, not `Audio`: with `Audio`, datasets 5.2 needs torchcodec to yield even undecoded
/// samples, in streaming mode and out of it; casting the column to `Audio()` decodes on demand.
public enum DatasetCard {
    /// The split name Hugging Face sees (`\w+` only).
    public static func splitName(_ split: String) -> String { split.replacingOccurrences(of: "-", with: "_") }

    public static func markdown(_ manifest: DatasetManifest) -> String {
        let splits = manifest.splits.keys.sorted()
        var y = "---\n"
        y += "pretty_name: \(JSONText.quote("mulan dataset " + manifest.datasetID))\n"
        y += "tags:\n- audio\n- music\n- webdataset\n- mulan\n"
        y += "configs:\n- config_name: default\n  data_files:\n"
        for split in splits {
            y += "  - split: \(JSONText.quote(splitName(split)))\n    path: \(JSONText.quote(split + "/shard-*.tar"))\n"
        }
        y += "dataset_info:\n  features:\n"
        y += yaml(features, indent: 2)
        y += "  splits:\n"
        for split in splits {
            let s = manifest.splits[split]!
            y += "  - name: \(JSONText.quote(splitName(split)))\n    num_examples: \(s.samples)\n"
        }
        y += "---\n\n"
        let rows = splits.map { split -> String in
            let s = manifest.splits[split]!
            return "| `\(splitName(split))` | `\(split)/` | \(s.shards.count) | \(s.samples) |"
        }
        return y + """
            # mulan dataset \(manifest.datasetID)

            WebDataset shards written by `mulan-shard`: each sample is `KEY.flac` (mono FLAC, \
            \(manifest.sampleRate) Hz, clips of up to \(formatSeconds(manifest.clipSeconds)) s) and `KEY.json` \
            (track id, clip index, start, duration, the kept texts of each source with their WordPiece ids, \
            LAION-CLAP's `text` captions and `tag` labels, loudness, provenance).

            | split | folder | shards | samples |
            | --- | --- | --- | --- |
            \(rows.joined(separator: "\n"))

            - Hugging Face `datasets`: `datasets.load_dataset("PATH/TO/THIS/FOLDER", streaming=True)` (or \
            without streaming); the `flac` column holds the FLAC file's bytes (`soundfile.read(io.BytesIO(b))`), \
            or decoded audio after `.cast_column("flac", datasets.Audio())` (which needs torchcodec).
            - `wids`: `wids.ShardListDataset("SPLIT.wids.json")` gives indexed access to a split.
            - LAION-CLAP: each split folder holds `sizes.json`; the samples' JSON has `text` and `tag`.
            - `dataset.json` describes the dataset; each `SPLIT/shard-NNNNNN.json` describes one shard \
            (its SHA-256 and counts). `mulan-shard verify PATH` checks them all.

            """
    }

    static func formatSeconds(_ s: Double) -> String {
        s == s.rounded() ? String(Int(s)) : String(s)
    }

    /// A feature: a name and its type.
    indirect enum Feature: Sendable {
        case value(String)            // dtype
        case list(Feature)
        case structure([(String, Feature)])
    }

    static let text: Feature = .list(.structure([("raw_text_id", .value("int64")), ("text", .value("string")),
                                                 ("token_ids", .list(.value("int64")))]))
    static let sources = TextSource.allCases.map(\.rawValue).sorted()

    /// The webdataset builder's columns: the sample key, its shard, the FLAC and the parsed JSON
    /// (schemas/sample.schema.json, field by field).
    static let features: [(String, Feature)] = [
        ("__key__", .value("string")),
        ("__url__", .value("string")),
        ("flac", .value("binary")),
        ("json", .structure([
            ("clip_index", .value("int64")),
            ("duplicate_group", .value("string")),
            ("duration_s", .value("float64")),
            ("key", .value("string")),
            ("loudness_range", .value("float64")),
            ("lufs", .value("float64")),
            ("provenance", .structure([
                ("clip_id", .value("int64")),
                ("filter_versions", .structure(sources.map { ($0, .value("string")) })),
                ("flac_sha256", .value("string")),
                ("track_rowid", .value("int64")),
            ])),
            ("sample_rate", .value("int64")),
            ("split", .value("string")),
            ("start_s", .value("float64")),
            ("tag", .list(.value("string"))),
            ("text", .list(.value("string"))),
            ("texts", .structure(sources.map { ($0, text) })),
            ("track_id", .value("string")),
            ("true_peak_db", .value("float64")),
        ])),
    ]

    /// The `datasets` YAML form of a feature list (`Features._to_yaml_list`): `- name: N` with
    /// `dtype: T`, `list: T` (or a field list), or `struct:` and a field list.
    static func yaml(_ fields: [(String, Feature)], indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var out = ""
        for (name, feature) in fields {
            out += pad + "- name: \(name)\n"
            out += body(feature, indent: indent + 2)
        }
        return out
    }

    static func body(_ feature: Feature, indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        switch feature {
        case .value(let dtype): return pad + "dtype: \(dtype)\n"
        case .list(.value(let dtype)): return pad + "list: \(dtype)\n"
        case .list(.structure(let fields)): return pad + "list:\n" + yaml(fields, indent: indent + 2)
        case .list(let inner): return pad + "list:\n" + body(inner, indent: indent + 2)
        case .structure(let fields): return pad + "struct:\n" + yaml(fields, indent: indent + 2)
        }
    }
}
