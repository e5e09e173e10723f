import Foundation
import MulanCore
import MulanShardFormat
import MulanTensor

/// One split of a mulan-shard dataset, opened for reading.
public struct DatasetSplit: Sendable {
    public let directory: String
    public let name: String
    public let manifest: DatasetManifest
    /// Absolute paths of the split's shards, in manifest order.
    public let shardPaths: [String]

    /// Opens `directory/dataset.json` and checks that `split` exists and has samples.
    public init(dataset directory: String, split: String) throws(MulanError) {
        let path = directory + "/dataset.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)",
                             hint: "pass --dataset with a folder written by mulan-shard (WORKDIR/shards/latest)")
        }
        let manifest: DatasetManifest
        do {
            manifest = try JSONDecoder().decode(DatasetManifest.self, from: data)
        } catch {
            throw MulanError(.data, "\(path) is not a mulan-shard dataset manifest", cause: error)
        }
        guard let s = manifest.splits[split], s.samples > 0 else {
            let have = manifest.splits.filter { $0.value.samples > 0 }.keys.sorted().joined(separator: ", ")
            throw MulanError(.usage, "the dataset \(directory) has no samples in split '\(split)' (it has: \(have))",
                             hint: "re-shard with a --split that gives '\(split)' a share, or choose another split")
        }
        self.directory = directory
        self.name = split
        self.manifest = manifest
        shardPaths = s.shards.map { directory + "/" + split + "/" + $0 }
    }

    /// Sources with at least one text in this split.
    public var availableSources: Set<TextSource> {
        Set((manifest.splits[name]?.textsBySource ?? [:]).filter { $0.value > 0 }.compactMap { TextSource(rawValue: $0.key) })
    }
}

/// A clip of a shard: where its FLAC lies and its metadata.
public struct ShardClip: Sendable {
    public var key: String
    public var shard: Int
    public var flacOffset: Int
    public var flacSize: Int
    public var record: SampleRecord
}

/// One training example: a clip and ONE text of one source.
public struct ExampleRef: Sendable, Equatable {
    public var key: String
    public var shard: Int
    public var flacOffset: Int
    public var flacSize: Int
    public var source: TextSource
    public var tokenIDs: [Int32]
}

/// Reads the samples of a split's shards in order: pairs each KEY.flac with its KEY.json. Only
/// headers and JSON are read; FLAC bytes are fetched later by offset.
struct ShardScanner {
    let split: DatasetSplit

    /// Calls `body` for each clip of shard `index`; `body` returns false to stop early.
    func scan(shard index: Int, _ body: (ShardClip) throws(MulanError) -> Bool) throws(MulanError) {
        let path = split.shardPaths[index]
        let reader = try TarReader(path: path)
        var flac: [String: TarReader.Entry] = [:]
        var json: [String: SampleRecord] = [:]
        let decoder = JSONDecoder()
        while true {
            let entry: TarReader.Entry?
            do { entry = try reader.nextEntry() } catch {
                throw MulanError(.data, "shard \(path) is damaged: \(error.message)",
                                 hint: "run `mulan-shard verify \(split.directory)` and re-shard")
            }
            guard let entry else { break }
            guard let dot = entry.name.firstIndex(of: ".") else { continue }
            let key = String(entry.name[..<dot]), ext = entry.name[entry.name.index(after: dot)...]
            if ext == "flac" {
                flac[key] = entry
            } else if ext == "json" {
                do {
                    json[key] = try decoder.decode(SampleRecord.self, from: Data(reader.bytes(of: entry)))
                } catch {
                    throw MulanError(.data, "shard \(path), member \(entry.name): not a sample record",
                                     hint: "run `mulan-shard verify \(split.directory)`", cause: error)
                }
            } else {
                continue
            }
            if let f = flac[key], let r = json[key] {
                flac[key] = nil
                json[key] = nil
                let clip = ShardClip(key: key, shard: index, flacOffset: f.dataOffset, flacSize: f.size, record: r)
                if try !body(clip) { return }
            }
        }
    }
}

/// An endless, seeded, shuffled stream of the examples of ONE source: each epoch visits the
/// shards in a fresh random order, passes every clip that has a text of the source through a
/// shuffle buffer, and picks one of the clip's texts at random.
///
/// Its state is (epoch, examples drawn in the epoch): `restore` replays the epoch's draws (headers
/// and JSON only), so a resumed run continues with exactly the examples it would have drawn.
final class SourceStream {
    let split: DatasetSplit
    let source: TextSource
    let seed: UInt64
    let bufferSize: Int
    private(set) var epoch = 0
    private(set) var drawn = 0

    private var random = RandomSource(seed: 0)
    private var order: [Int] = []
    private var nextShard = 0
    private var pending: [ExampleRef] = []   // the clips of the shard being read, not yet buffered
    private var buffer: [ExampleRef] = []
    private var yieldedThisEpoch = false

    init(split: DatasetSplit, source: TextSource, seed: UInt64, bufferSize: Int) {
        self.split = split
        self.source = source
        self.seed = seed
        self.bufferSize = max(1, bufferSize)
        startEpoch(0)
    }

    private func startEpoch(_ e: Int) {
        epoch = e
        drawn = 0
        let sourceIndex = UInt64(TextSource.allCases.firstIndex(of: source)!)
        random = RandomSource(seed: seed ^ (sourceIndex &+ 1) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(e) &* 0xC2B2_AE3D_27D4_EB4F)
        order = Array(split.shardPaths.indices)
        order.shuffle(using: &random)
        nextShard = 0
        pending = []
        buffer = []
        yieldedThisEpoch = false
    }

    /// Refills `pending` from the next shard; false when the epoch's shards are used up.
    private func readNextShard() throws(MulanError) -> Bool {
        while nextShard < order.count {
            let index = order[nextShard]
            nextShard += 1
            var found: [ExampleRef] = []
            try ShardScanner(split: split).scan(shard: index) { clip in
                if let texts = clip.record.texts[source.rawValue], !texts.isEmpty {
                    found.append(ExampleRef(key: clip.key, shard: clip.shard, flacOffset: clip.flacOffset,
                                            flacSize: clip.flacSize, source: source, tokenIDs: []))
                    // Token ids are chosen when the clip enters the buffer (below), from this list.
                    candidates[clip.key] = texts.map { $0.tokenIDs.map { Int32(truncatingIfNeeded: $0) } }
                }
                return true
            }
            if !found.isEmpty {
                pending = found.reversed()
                return true
            }
        }
        return false
    }

    private var candidates: [String: [[Int32]]] = [:]

    /// Moves one clip from the shard being read into the buffer; false when the epoch has no more.
    private func feed() throws(MulanError) -> Bool {
        if pending.isEmpty, try !readNextShard() { return false }
        var item = pending.removeLast()
        let texts = candidates.removeValue(forKey: item.key) ?? [[]]
        item.tokenIDs = texts[Int(random.next() % UInt64(texts.count))]
        buffer.append(item)
        return true
    }

    /// The next example; starts a new epoch when this one is used up.
    func next() throws(MulanError) -> ExampleRef {
        while buffer.count < bufferSize, try feed() {}
        if buffer.isEmpty {
            guard yieldedThisEpoch else {
                throw MulanError(.data, "split '\(split.name)' of \(split.directory) has no texts of source \(source.rawValue)",
                                 hint: "give \(source.rawValue) weight 0 in --mix")
            }
            startEpoch(epoch + 1)
            return try next()
        }
        let j = Int(random.next() % UInt64(buffer.count))
        let item = buffer[j]
        buffer[j] = buffer[buffer.count - 1]
        buffer.removeLast()
        drawn += 1
        yieldedThisEpoch = true
        return item
    }

    /// Puts the stream where it was after `drawn` draws of epoch `epoch`.
    func restore(epoch e: Int, drawn count: Int) throws(MulanError) {
        startEpoch(e)
        for _ in 0..<count { _ = try next() }
        if epoch != e { throw MulanError(.data, "the sampler state (epoch \(e), \(count) drawn) does not fit this dataset") }
    }
}
