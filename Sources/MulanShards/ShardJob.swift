import Foundation
import MulanCatalog
import MulanCore
import MulanShardFormat

/// `mulan-shard`: writes WebDataset tar shards of the catalog's clips and their kept texts.
///
/// Plan: every kept clip of an ingested track that has kept text in some source (the latest filter
/// version of each source, or the one named), a split per track, a global shuffle by a seeded hash
/// of the sample key. Only the shuffle index (rank and clip reference per sample) is held in
/// memory; each sample's row and texts are read from its catalog when it is written. Shards are
/// written under a temporary name and renamed when complete, then described by a sidecar; a re-run
/// skips complete shards whose hash matches their sidecar and finishes the rest, giving the same
/// bytes.
///
/// The catalog may be one work directory's `catalog.sqlite` or the worker parts of one or more
/// work directories (`parts/I-of-N/`), read as one catalog: the plan, the samples and every byte
/// of the output do not depend on how the tracks were split. Shard writing itself can be split
/// too: worker I of N writes the shards whose number (counted over the splits in name order) is
/// I mod N, and `finalize` writes `sizes.json`, `dataset.json` and `shards/latest` once all are there.
public struct ShardJob: Sendable {
    public var workdir: String
    public var output: String?
    public var split: SplitSpec
    public var seed: UInt64
    public var samplesPerShard: Int
    public var maxShardBytes: Int?
    public var filterVersions: [String: String]
    public var console: Console
    /// Work directories or worker parts to read as one catalog; empty: the work directory.
    public var catalogs: [String]
    /// This process's share of the shards to write.
    public var slice: WorkerSlice
    /// Clips left out for their loudness (`--min-lufs`, `--max-true-peak`); inactive by default.
    public var loudness: LoudnessFilter
    /// Which `mulan-filter audio` version's dropped clips to leave out (default: the latest).
    public var audioFilter: AudioFilterChoice = .latest
    /// Benchmark test tracks kept out of the train split (`--hold-out`), with their duplicate groups.
    public var holdOut: HoldOut?

    public init(workdir: String, output: String?, split: SplitSpec, seed: UInt64, samplesPerShard: Int,
                maxShardBytes: Int?, filterVersions: [String: String], console: Console,
                catalogs: [String] = [], slice: WorkerSlice = .single, loudness: LoudnessFilter = LoudnessFilter()) {
        self.workdir = Paths.absolute(workdir)
        self.output = output.map(Paths.absolute)
        self.split = split
        self.seed = seed
        self.samplesPerShard = samplesPerShard
        self.maxShardBytes = maxShardBytes
        self.filterVersions = filterVersions
        self.console = console
        self.catalogs = catalogs.map(Paths.absolute)
        self.slice = slice
        self.loudness = loudness
    }

    /// One position of the plan: the shuffle rank and where the clip is (part << 48 | clip row id).
    struct Entry {
        var rank: UInt64
        var ref: UInt64
        var part: Int { Int(ref >> 48) }
        var clipID: Int { Int(ref & 0xFFFF_FFFF_FFFF) }
    }

    /// A catalog the plan reads, and the folder its clip paths are relative to.
    struct Part {
        var directory: String
        /// The work directory (or part folder) it was named by: the parts of one work directory
        /// share one dedupe result.
        var root: String
        var catalog: Catalog
        var store: ShardSourceStore { ShardSourceStore(catalog) }
    }

    /// What a shard-writing worker did.
    public struct WorkerSummary: Sendable {
        public var datasetID: String
        public var directory: String
        public var shardsWritten = 0
        public var shardsKept = 0
        public var samples = 0
        public var shardsTotal = 0
    }

    // MARK: Entry points

    /// Plans and writes every shard, then `dataset.json` (a single process: the default).
    public func run() throws -> (manifest: DatasetManifest, directory: String) {
        // A single process on its own catalog takes the work directory, as every writer does;
        // otherwise the inputs are finished parts, read immutable, and locks guard the outputs.
        let layout = try WorkLayout.inspect(workdir)
        let own = catalogs.isEmpty && layout == .single
        let lock = own ? try WorkdirLock(workdir: workdir, stage: "mulan-shard") : nil
        defer { withExtendedLifetime(lock) {} }
        let parts = try openParts(asWriter: own)
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let workerLock = lock == nil ? try outputLock(plan.datasetID, "all") : nil
        defer { withExtendedLifetime(workerLock) {} }
        _ = try writeShards(plan, parts: parts, directory: directory, slice: .single)
        let manifest = try finish(plan, parts: parts, directory: directory)
        return (manifest, directory)
    }

    /// Writes this worker's shards (number ≡ I mod N); `finalize` completes the dataset.
    public func runWorker() throws -> WorkerSummary {
        let parts = try openParts()
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let lock = try outputLock(plan.datasetID, WorkLayout.partName(slice.index, of: slice.count))
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): writing shards n ≡ \(slice.index) mod \(slice.count) of "
                    + "dataset \(plan.datasetID)", event: "worker")
        return try writeShards(plan, parts: parts, directory: directory, slice: slice)
    }

    /// Checks that every shard of the plan is there with its sidecar, and writes `sizes.json`,
    /// `dataset.json` and (without `--out`) `shards/latest`.
    public func finalize() throws -> (manifest: DatasetManifest, directory: String) {
        let parts = try openParts()
        let plan = try makePlan(parts)
        let directory = output ?? workdir + "/shards/" + plan.datasetID
        let lock = try outputLock(plan.datasetID, "finalize")
        defer { withExtendedLifetime(lock) {} }
        return (try finish(plan, parts: parts, directory: directory), directory)
    }

    /// An exclusive lock for one writer of a dataset (`WORKDIR/shards/.locks/`), so two processes
    /// never write the same shards.
    func outputLock(_ datasetID: String, _ who: String) throws -> WorkdirLock {
        let folder = workdir + "/shards/.locks"
        try Paths.makeDirectory(folder)
        return try WorkdirLock(lockFile: folder + "/\(datasetID)-\(who).lock", stage: "mulan-shard",
                               what: "dataset \(datasetID) (\(who))",
                               hint: "another mulan-shard process is writing the same shards; wait for it")
    }

    // MARK: Catalogs

    /// The catalogs to read: the work directory's own catalog or the worker parts of each work
    /// directory named. `asWriter` (a single process sharding its own catalog, under the work
    /// directory's lock) opens it as today's writers do; otherwise each is opened read-only and
    /// immutable, as finished files that other machines may be reading too.
    func openParts(asWriter: Bool = false) throws -> [Part] {
        let roots = catalogs.isEmpty ? [workdir] : catalogs
        var directories: [(directory: String, root: String)] = []
        for root in roots {
            switch try WorkLayout.inspect(root) {
            case .single:
                directories.append((root, root))
            case .parts(let n, let present):
                directories += try WorkLayout.allParts(root: root, count: n, present: present,
                                                       hint: "run mulan-ingest (and mulan-filter) for the missing workers first")
                    .map { ($0, root) }
            case .empty:
                // A part folder named directly, or nothing at all.
                if FileManager.default.fileExists(atPath: root + "/catalog.sqlite") {
                    directories.append((root, root))
                } else {
                    throw MulanError(.usage, "there is no catalog in \(root)", hint: "run mulan-ingest first")
                }
            }
        }
        guard directories.count < 1 << 15 else { throw MulanError(.usage, "too many catalogs (\(directories.count))") }
        return try directories.map { dir throws -> Part in
            let path = dir.directory + "/catalog.sqlite"
            return Part(directory: dir.directory, root: dir.root,
                        catalog: asWriter ? try Catalog(path: path) : try Catalog(finishedAt: path))
        }
    }
}
