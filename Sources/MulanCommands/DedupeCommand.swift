import ArgumentParser
import Foundation
import MulanCore
import MulanDedupe
import MulanMedia

extension DedupePolicy: ExpressibleByArgument {}

/// `mulan-dedupe`: duplicate recordings by content hash and Chromaprint fingerprint.
public struct DedupeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-dedupe",
        abstract: "Find duplicate recordings (exact copies, other encodings, one recording inside another) and decide what to keep.",
        discussion: "Exit codes: 0 ok; 64 usage; 1 fatal. docs/dedupe.md describes the matching and the decisions.",
        subcommands: [DedupeRunCommand.self, DedupeReportCommand.self, DedupeBenchCommand.self,
                      DedupeFingerprintBenchCommand.self],
        defaultSubcommand: DedupeRunCommand.self)

    public init() {}
}

public struct DedupeRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Find the duplicate groups and record a decision for every member (the default subcommand).",
        discussion: """
        Reads the ingested tracks and their fingerprints from WORKDIR/catalog.sqlite and replaces \
        dup_groups, dup_members, dup_pairs and dedupe_state in one transaction. --policy split (default) \
        keeps every member and mulan-shard puts a whole group in one split; --policy merge keeps one \
        representative per group (the longest, then lossless, then the higher sample rate, then the smaller \
        track id) and mulan-shard ships the others' kept texts with it instead of shipping them. \
        A work directory split into worker parts (WORKDIR/parts/I-of-N) is read whole, by one process \
        once every ingest worker has finished: the groups are matched across all parts and the whole \
        result is written into every part (policy split only).
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("What to do with a group: split (keep all, one split) or merge (keep one).", valueName: "policy"))
    public var policy: DedupePolicy = .split

    @Option(help: ArgumentHelp("Write the summary as JSON to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let summary = try DedupeJob(workdir: global.workdir, policy: policy, console: console).run()
            print(summary.text())
            if let report { try summary.write(to: report) }
            return .success
        }
    }
}

public struct DedupeReportCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the summary of the latest dedupe run (JSON): groups, group sizes, hours removed or merged, top groups.")

    @OptionGroup public var global: GlobalOptions

    public init() {}

    public func run() async throws {
        try await runStage(console: global.console) {
            print(try DedupeJob.latestReport(workdir: global.workdir))
            return .success
        }
    }
}

public struct DedupeBenchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-match",
        abstract: "Time the matching on synthetic fingerprints (bench/dedupe-match.sh); prints JSON.",
        shouldDisplay: false)

    @Option(help: "Fingerprints.") public var count = 100_000
    @Option(help: "Items per fingerprint (240 ≈ 30 s).") public var items = 240
    @Option(help: "Share of planted noisy copies.") public var duplicates = 0.01
    @Option(help: "Bit error rate of the copies.") public var bitErrorRate = 0.03
    @Option(help: "Seed.") public var seed: UInt64 = 1

    public init() {}

    public func run() async throws {
        let result = SyntheticBenchmark.run(count: count, items: items, duplicateShare: duplicates,
                                            bitErrorRate: bitErrorRate, seed: seed)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}

public struct DedupeFingerprintBenchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-fingerprint",
        abstract: "Decode and fingerprint files as ingest does, timed (bench/dedupe-fingerprint.sh); one JSON line per file.",
        shouldDisplay: false)

    @Option(help: "Decode rate (ingest's --sample-rate).") public var sampleRate = 16000
    @Argument(help: "Audio files.") public var files: [String]

    public init() {}

    public func run() async throws {
        for file in files {
            // Decode only, then decode + fingerprint: the difference is Chromaprint's share.
            var started = Date()
            let plain = try AudioDecoder(path: file, outputSampleRate: sampleRate)
            let stats = try plain.decode { _ in true }
            let decodeSeconds = Date().timeIntervalSince(started)
            started = Date()
            let decoder = try AudioDecoder(path: file, outputSampleRate: sampleRate)
            let fingerprinter = Fingerprinter(sampleRate: sampleRate)
            _ = try decoder.decode { chunk in
                fingerprinter.feed(chunk, gain: Float(decoder.downmixGain))
                return true
            }
            let fingerprint = fingerprinter.finish()
            let totalSeconds = Date().timeIntervalSince(started)
            let audio = Double(stats.outputSamples) / Double(sampleRate)
            let line: [String: Any] = ["file": file, "audio_s": audio, "decode_s": decodeSeconds,
                                       "decode_fingerprint_s": totalSeconds, "items": fingerprint.items.count,
                                       "status": fingerprint.status.rawValue]
            let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
