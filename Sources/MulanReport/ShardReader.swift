import Foundation
import MulanCore
import MulanShardFormat

/// A shard set: its `dataset.json` and the size of each shard file on disk.
struct ShardFigures {
    struct Shard {
        var split: String
        var name: String
        /// nil when the file is missing.
        var bytes: Int?
    }

    var directory: String
    var manifest: DatasetManifest
    var shards: [Shard]
    /// Split names in the order to show them: train, valid, test, then others by name.
    var splitNames: [String]
}

enum ShardReader {
    static func splitOrder(_ names: some Sequence<String>) -> [String] {
        let preferred = ["train", "valid", "test"]
        return names.sorted { a, b in
            ((preferred.firstIndex(of: a) ?? preferred.count), a) < ((preferred.firstIndex(of: b) ?? preferred.count), b)
        }
    }

    /// Reads `DIR/dataset.json` (schemas/dataset.schema.json) and stats the shards it lists.
    static func read(directory: String) throws(MulanError) -> ShardFigures {
        let path = directory + "/dataset.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)")
        }
        let manifest: DatasetManifest
        do {
            manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
        } catch {
            throw MulanError(.data, "\(path) is not a mulan dataset manifest", cause: error)
        }
        let names = splitOrder(manifest.splits.keys)
        var shards: [ShardFigures.Shard] = []
        for split in names {
            for name in manifest.splits[split]?.shards ?? [] {
                let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + split + "/" + name)
                let size = (attributes?[.size] as? NSNumber)?.intValue
                shards.append(.init(split: split, name: name, bytes: size))
            }
        }
        return ShardFigures(directory: directory, manifest: manifest, shards: shards, splitNames: names)
    }
}
