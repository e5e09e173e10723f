import ArgumentParser
import Foundation
import MulanCore
import MulanShardFormat
import MulanShards

/// `mulan-shard`: WebDataset shards of the catalog's clips and kept texts.
public struct ShardCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-shard",
        abstract: "Write WebDataset tar shards (train/valid/test) that PyTorch loaders read.",
        discussion: "Exit codes: 0 ok; 3 verify found problems (each named); 64 usage; 1 fatal.",
        subcommands: [ShardBuildCommand.self, ShardFinalizeCommand.self, ShardVerifyCommand.self],
        defaultSubcommand: ShardBuildCommand.self)

    public init() {}
}

/// What a dataset is planned from: the options `build` and `finalize` must share.
public struct ShardPlanOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Split shares by a stable hash of the track id (the manifest's split wins).",
                               valueName: "spec"))
    public var split: String = "train=0.98,valid=0.01,test=0.01"

    @Option(help: ArgumentHelp("Shuffle seed.", valueName: "n"))
    public var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Samples per shard.", valueName: "n"))
    public var samplesPerShard: Int = 1000

    @Option(help: ArgumentHelp("Close a shard before it would exceed this many bytes.", valueName: "n"))
    public var maxShardBytes: Int?

    @Option(help: ArgumentHelp("Use this filter version for its source (repeatable), e.g. tags-1a2b3c4d5e6f.",
                               valueName: "version"))
    public var filterVersion: [String] = []

    @Option(help: ArgumentHelp("Leave out the clips this mulan-filter audio version dropped, or none to ignore audio "
                               + "filtering (default: the version run last, if any).", valueName: "version"))
    public var audioFilterVersion: String?

    @Option(help: ArgumentHelp("Write here instead of WORKDIR/shards/<dataset id>.", valueName: "dir"))
    public var out: String?

    @Option(name: .customLong("from"),
            help: ArgumentHelp("Read this work directory (all its worker parts) or worker part as part of one catalog "
                               + "(repeatable; default: --workdir).", valueName: "dir"))
    public var from: [String] = []

    // Values are negative: `.unconditional` takes `-40` as the value, not as an option.
    @Option(name: .customLong("min-lufs"), parsing: .unconditional,
            help: ArgumentHelp("Leave out clips quieter than this integrated loudness (EBU R128, LUFS), and clips "
                               + "without a loudness measurement; dataset.json counts them by reason.", valueName: "lufs"))
    public var minLUFS: Double?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Leave out clips whose true peak is above this (dBTP), and clips without a loudness "
                               + "measurement; dataset.json counts them by reason.", valueName: "dbtp"))
    public var maxTruePeak: Double?

    @Option(help: ArgumentHelp("Benchmark test tracks to keep out of train, with their duplicate groups (repeatable): FORMAT:FILE, a corpus's own file read with its official split (mtat, musiccaps, audioset, jamendo, song-describer, fma; e.g. song-describer:song_describer.csv), or a manifest with a track_id column (rows whose split is test, or every row without a split column), or one id per line.",
                               valueName: "file"))
    public var holdOut: [String] = []

    public init() {}

    public func validate() throws {
        if let m = minLUFS, !(m.isFinite && m > -70 && m < 0) {
            throw ValidationError("--min-lufs must be between -70 and 0 LUFS (the absolute gate is -70), got \(m)")
        }
        if let m = maxTruePeak, !(m.isFinite && m > -70 && m <= 20) {
            throw ValidationError("--max-true-peak must be between -70 and 20 dBTP, got \(m)")
        }
        if samplesPerShard < 1 { throw ValidationError("--samples-per-shard must be at least 1") }
        if let m = maxShardBytes, m < 64 * 1024 { throw ValidationError("--max-shard-bytes must be at least 65536") }
        do { _ = try SplitSpec(parsing: split) } catch { throw ValidationError(error.description) }
        for v in filterVersion where !v.contains("-") { throw ValidationError("--filter-version \(v) is not a version name") }
        if let v = audioFilterVersion, v != "none", !v.hasPrefix("audio-") {
            throw ValidationError("--audio-filter-version \(v) is not an audio filter version (audio-…) or none")
        }
    }

    func job(_ global: GlobalOptions, slice: WorkerSlice) throws -> ShardJob {
        var versions: [String: String] = [:]
        for v in filterVersion { versions[String(v.split(separator: "-")[0])] = v }
        var job = ShardJob(workdir: global.workdir, output: out, split: try SplitSpec(parsing: split), seed: seed,
                           samplesPerShard: samplesPerShard, maxShardBytes: maxShardBytes, filterVersions: versions,
                           console: global.console, catalogs: from, slice: slice,
                           loudness: LoudnessFilter(minLUFS: minLUFS, maxTruePeakDB: maxTruePeak))
        if !holdOut.isEmpty { job.holdOut = try HoldOut(files: holdOut) }
        switch audioFilterVersion {
        case nil: job.audioFilter = .latest
        case "none"?: job.audioFilter = .none
        case let v?: job.audioFilter = .named(v)
        }
        return job
    }

    static func printSummary(_ manifest: DatasetManifest, directory: String) {
        print("shards: dataset \(manifest.datasetID) in \(directory)")
        for name in manifest.splits.keys.sorted() {
            let s = manifest.splits[name]!
            print("  \(name): \(s.samples) samples in \(s.shards.count) shards, \(s.bytes) bytes")
        }
        print("  clips left out (no kept text): \(manifest.clipsWithoutText)")
        if let filter = manifest.loudnessFilter {
            print("  clips left out (loudness): " + LoudnessFilter.Reason.allCases.map {
                "\(filter.clipsDroppedByReason[$0.rawValue] ?? 0) \($0.rawValue)"
            }.joined(separator: ", "))
        }
        if let n = manifest.loudnessNormalization {
            print("  loudness normalization (mulan-ingest): " + n.settings.map {
                "\($0.samples) samples at \($0.targetLUFS) LUFS, true peak ≤ \($0.maxTruePeakDB) dBTP"
            }.joined(separator: "; ") + (n.samplesNotNormalized > 0 ? "; \(n.samplesNotNormalized) not normalized" : ""))
        }
        if let h = manifest.heldOut {
            print("  benchmark test tracks kept out of train (--hold-out): \(h.tracksKeptOutOfTrain) tracks, "
                  + "\(h.clipsKeptOutOfTrain) clips (of \(h.tracksListed) listed)")
        }
        if let version = manifest.audioFilterVersion {
            let dropped = manifest.clipsDroppedByAudioFilter ?? [:]
            let reasons = dropped.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            print("  clips left out (audio filter \(version)): \(dropped.values.reduce(0, +))"
                  + (reasons.isEmpty ? "" : " (\(reasons))"))
        }
    }
}

public struct ShardBuildCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Plan and write the shards (the default subcommand).",
        discussion: """
        Output: WORKDIR/shards/<dataset id>/ (or --out), with SPLIT/shard-NNNNNN.tar, a sidecar \
        SPLIT/shard-NNNNNN.json per shard, SPLIT/sizes.json and dataset.json; WORKDIR/shards/latest \
        points at the newest. The dataset id is a hash of the selected samples and settings: the same \
        catalog, settings and seed give the same id and byte-identical shards; a changed catalog gives a \
        new id and folder, and published folders are never rewritten. A re-run finishes an interrupted one. \
        A work directory split into worker parts is read as one catalog (so is every --from). With \
        --worker I --workers N (or a Slurm array / Kubernetes Indexed Job) this process writes only the \
        shards numbered I mod N; `mulan-shard finalize` with the same options then writes dataset.json \
        (docs/scale-out.md).
        """)

    @OptionGroup public var global: GlobalOptions

    @OptionGroup public var plan: ShardPlanOptions

    @OptionGroup(title: "Workers") public var workerOptions: WorkerOptions

    public init() {}

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let slice = try workerOptions.slice()
            let job = try plan.job(global, slice: slice)
            if slice.isSingle {
                let (manifest, directory) = try job.run()
                ShardPlanOptions.printSummary(manifest, directory: directory)
            } else {
                let s = try job.runWorker()
                print("shards (\(slice)): dataset \(s.datasetID) in \(s.directory): \(s.shardsWritten) shards written, "
                      + "\(s.shardsKept) already complete, \(s.samples) samples (of \(s.shardsTotal) shards in all)")
                print("  next, once every worker is done: mulan-shard finalize with the same options")
            }
            return .success
        }
    }
}

public struct ShardFinalizeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "finalize",
        abstract: "After mulan-shard --worker I --workers N: check every shard is there, write dataset.json.",
        discussion: """
        Give the same plan options as the workers (split, seed, shard size, filter versions, --out, --from). \
        Checks each shard of the plan against its sidecar (present, size, first key), then writes each \
        SPLIT/sizes.json, dataset.json and, without --out, WORKDIR/shards/latest. Names the missing \
        shards otherwise. `mulan-shard verify` re-reads everything.
        """)

    @OptionGroup public var global: GlobalOptions

    @OptionGroup public var plan: ShardPlanOptions

    public init() {}

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let (manifest, directory) = try plan.job(global, slice: .single).finalize()
            ShardPlanOptions.printSummary(manifest, directory: directory)
            return .success
        }
    }
}

public struct ShardVerifyCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-read every shard: hashes, sidecars, tar structure, FLAC decoding, JSON, counts.")

    @Argument(help: ArgumentHelp("A dataset folder written by mulan-shard.", valueName: "dir"))
    public var directory: String

    @Flag(help: "Print only problems and the summary.")
    public var quiet = false

    public init() {}

    public func run() async throws {
        let console = Console(format: .text, quiet: quiet)
        try await runStage(console: console) {
            let result = try ShardVerifier(directory: directory, console: console).run()
            for p in result.problems { console.log(.error, p) }
            print("verify: \(result.shards) shards, \(result.samples) samples, \(result.problems.count) problems")
            return result.problems.isEmpty ? .success : .completedWithFailures
        }
    }
}
