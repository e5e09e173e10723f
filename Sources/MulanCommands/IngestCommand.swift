import ArgumentParser
import Foundation
import MulanCore
import MulanIngest

extension ManifestReader.Format: ExpressibleByArgument {}

/// `mulan-ingest`: the first stage. `audio` (the default) decodes tracks into clips.
public struct IngestCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-ingest",
        abstract: "Ingest audio into 30-second clips recorded in a SQLite catalog.",
        discussion: """
        Exit codes: 0 all inputs used; 3 the run completed but some inputs failed (each is recorded \
        in the catalog with its reason and listed in the summary); 64 usage error; 1 fatal error.
        """,
        subcommands: [IngestAudioCommand.self],
        defaultSubcommand: IngestAudioCommand.self)

    public init() {}
}

public struct IngestAudioCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audio",
        abstract: "Decode, downmix, resample and cut audio into FLAC clips (the default subcommand).",
        discussion: """
        Inputs: --manifest FILE (JSONL or CSV with track_id, path, optional start_s, end_s, split; \
        see schemas/manifest.schema.json), or --scan DIR with --glob patterns (track id = relative path).
        A re-run skips tracks whose content and settings are unchanged, and finishes what an \
        interrupted run left. Exit codes: 0 ok; 3 some inputs failed (recorded); 64 usage; 1 fatal.
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("A track manifest (.jsonl or .csv). Repeatable.", valueName: "file"))
    public var manifest: [String] = []

    @Option(help: ArgumentHelp("Manifest format when the extension does not tell: jsonl or csv.", valueName: "format"))
    public var manifestFormat: ManifestReader.Format?

    @Option(help: ArgumentHelp("Ingest every matching audio file below this folder.", valueName: "dir"))
    public var scan: String?

    @Option(help: ArgumentHelp("With --scan: a glob pattern (repeatable; default: common audio extensions).",
                               valueName: "pattern"))
    public var glob: [String] = []

    @Option(help: ArgumentHelp("Output sample rate: 16000, 22050, 24000, 32000, 44100 or 48000.", valueName: "hz"))
    public var sampleRate: Int = 16000

    @Option(help: ArgumentHelp("Clip length in seconds.", valueName: "s"))
    public var clipSeconds: Double = 30

    @Option(help: ArgumentHelp("Keep a final partial clip at least this long (default: --clip-seconds, full clips only).",
                               valueName: "s"))
    public var minClipSeconds: Double?

    @Option(help: ArgumentHelp("Keep at most N evenly spaced clips per track.", valueName: "n"))
    public var maxClipsPerTrack: Int?

    @Option(name: .customLong("silence-db"),
            help: ArgumentHelp("A clip with RMS below this level (dBFS) is silent and not stored.", valueName: "db"))
    public var silenceDB: Double = -60

    @Option(help: ArgumentHelp("A clip whose share of digital silence is at least this is silent.", valueName: "share"))
    public var maxSilenceShare: Double = 0.9

    @Option(help: ArgumentHelp("Bits per sample of stored FLAC clips: 16 or 24.", valueName: "bits"))
    public var flacBits: Int = 16

    @Option(help: ArgumentHelp("Write the JSON summary to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    var settings: IngestSettings {
        var s = IngestSettings()
        s.sampleRate = sampleRate
        s.clipSeconds = clipSeconds
        s.minClipSeconds = minClipSeconds ?? clipSeconds
        s.maxClipsPerTrack = maxClipsPerTrack
        s.silenceThresholdDB = silenceDB
        s.maxSilenceShare = maxSilenceShare
        s.flacBits = flacBits
        return s
    }

    public func validate() throws {
        if manifest.isEmpty && scan == nil {
            throw ValidationError("give the tracks to ingest: --manifest FILE or --scan DIR")
        }
        if !glob.isEmpty && scan == nil { throw ValidationError("--glob needs --scan DIR") }
        do {
            try settings.validate()
        } catch {
            throw ValidationError(error.description)
        }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            var inputs = manifest.map { IngestInput.manifest(path: $0, format: manifestFormat) }
            if let scan { inputs.append(.scan(directory: scan, globs: glob)) }
            let job = IngestJob(workdir: global.workdir, inputs: inputs, settings: settings,
                                jobs: global.jobs, console: console)
            let summary = try await job.run()
            if let report { try summary.write(to: report) }
            print(summary.text())
            return summary.tracksFailed > 0 ? .completedWithFailures : .success
        }
    }
}
