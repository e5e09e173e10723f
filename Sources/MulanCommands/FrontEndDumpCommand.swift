import ArgumentParser
import Foundation
import MulanCore
import MulanShards
import MulanTraining

/// `mulan-train frontend-dump` (hidden): writes what the trainer's audio front end computes for
/// chosen clips (decoded samples, log-mel, SpecAugment, a training example) as .npy files, so that
/// another implementation can be tested against it (python/tests/test_audio.py does).
public struct FrontEndDumpCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "frontend-dump",
        abstract: "Write the trainer's front-end values for chosen clips (for parity tests).",
        discussion: """
        For each key (in order) writes to --out: N.samples.npy (the decoded clip, float32 [1, samples]), \
        N.logmel.npy (the log-mel of the window at its --offsets entry, [melBands, frames]), \
        N.specaugment.npy (that log-mel after SpecAugment, one RandomSource(--seed) for all clips in \
        order; only when the configuration has SpecAugment) and N.train.npy (example N of batch --step \
        as mulan-train computes it: the seeded window draw, log-mel, SpecAugment), and frontend.json \
        listing them with the configuration, offsets and masks. The configuration is a TrainingConfig \
        as a run's config.json holds it (logMel, specAugment, windowSeconds, seed; missing keys take \
        mulan-train's defaults); without --config, mulan-train's defaults at the dataset's sample rate.
        """,
        shouldDisplay: false)

    @Option(help: ArgumentHelp("Dataset folder written by mulan-shard.", valueName: "dir")) public var dataset: String
    @Option(help: "Split to read.") public var split = "train"
    @Option(help: ArgumentHelp("Sample keys, comma-separated.", valueName: "k,k,…")) public var keys: String
    @Option(help: ArgumentHelp("Window offsets in samples, one per key (default 0).", valueName: "n,n,…"))
    public var offsets: String?
    @Option(help: ArgumentHelp("A TrainingConfig JSON file (a run's config.json).", valueName: "file"))
    public var config: String?
    @Option(help: "Seed of the generator the standalone SpecAugment draws from.") public var seed: UInt64 = 0
    @Option(help: "Training step whose examples N.train.npy shows.") public var step = 0
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) public var out: String

    public init() {}

    public func validate() throws {
        if keyList.isEmpty { throw ValidationError("--keys must name at least one sample key") }
        if offsets != nil && offsetList == nil {
            throw ValidationError("--offsets must be a comma list of non-negative integers")
        }
        if step < 0 { throw ValidationError("--step must be at least 0") }
    }

    var keyList: [String] {
        keys.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    var offsetList: [Int]? {
        guard let offsets else { return nil }
        let values = offsets.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
        return values.compactMap { $0 }
    }

    func loadConfig() throws(MulanError) -> TrainingConfig {
        guard let config else {
            return TrainingConfig(sampleRate: try DatasetSplit(dataset: dataset, split: split).manifest.sampleRate)
        }
        guard let data = FileManager.default.contents(atPath: config) else {
            throw MulanError(.io, "cannot read \(config)", hint: "pass --config with a TrainingConfig JSON file (a run's config.json)")
        }
        do {
            return try JSONDecoder().decode(TrainingConfig.self, from: data)
        } catch {
            throw MulanError(.usage, "\(config) is not a mulan-train configuration",
                             hint: "it needs at least a logMel object with sampleRate", cause: error)
        }
    }

    public func run() async throws {
        let console = Console(quiet: true)
        try await runStage(console: console) {
            let summary = try FrontEndDump.run(dataset: dataset, split: split, config: try loadConfig(), keys: keyList,
                                               offsets: offsetList, seed: seed, step: step, out: out)
            print("\(summary.items.count) clips, \(summary.melBands) bands × \(summary.frames) frames → \(out)/frontend.json")
            return .success
        }
    }
}
