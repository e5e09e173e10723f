import ArgumentParser
import Foundation
import MulanAudioFilter
import MulanCore
import MulanFormats
import MulanIngest
import MulanMedia
import MulanRecords
import MulanTensor
import MulanTraining

extension ManifestReader.Format: ExpressibleByArgument {}
extension TextFormat: ExpressibleByArgument {}
extension InvalidUTF8Policy: ExpressibleByArgument {}

/// `mulan-ingest`: the first stage. `audio` (the default) decodes tracks into clips.
public struct IngestCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-ingest",
        abstract: "Ingest audio into 30-second clips recorded in a SQLite catalog.",
        discussion: """
        Exit codes: 0 all inputs used; 3 the run completed but some inputs failed (each is recorded \
        in the catalog with its reason and listed in the summary); 64 usage error; 1 fatal error.
        """,
        subcommands: [IngestAudioCommand.self, IngestTextCommand.self, IngestManifestCommand.self, TruePeakBenchCommand.self],
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
        interrupted run left. With --worker I --workers N (or a Slurm array / Kubernetes Indexed Job) \
        this process ingests only the tracks whose id hashes to worker I, into WORKDIR/parts/I-of-N \
        (docs/scale-out.md). Exit codes: 0 ok; 3 some inputs failed (recorded); 64 usage; 1 fatal.
        """)

    @OptionGroup public var global: GlobalOptions

    @OptionGroup(title: "Workers") public var workerOptions: WorkerOptions

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

    @Option(help: ArgumentHelp("Clip lengths that fit a corpus: \(ClipPreset.summary). --clip-seconds and --min-clip-seconds override it.",
                               valueName: "name"))
    public var preset: ClipPreset?

    @Option(help: ArgumentHelp("Clip length in seconds (default 30, or the --preset's).", valueName: "s"))
    public var clipSeconds: Double?

    @Option(help: ArgumentHelp("Keep a final partial clip at least this long (default: --clip-seconds, full clips only; or the --preset's).",
                               valueName: "s"))
    public var minClipSeconds: Double?

    @Option(help: ArgumentHelp("Keep at most N evenly spaced clips per track (the same as --clip-policy evenly:N).",
                               valueName: "n"))
    public var maxClipsPerTrack: Int?

    @Option(help: ArgumentHelp(
        "Which windows become clips: all (every clip of the grid), center (one clip centred in the track), random "
            + "(one clip at a position seeded by --clip-seed and the track id), evenly:N (N grid clips spread over "
            + "the track), best:N (the N best grid clips: the loudest, least silent ones, or with --clip-model the ones "
            + "a trained model scores highest; decodes everything). center, random and evenly:N seek to their windows "
            + "instead of decoding the whole track. Default: all.",
        valueName: "policy"))
    public var clipPolicy: String?

    @Option(help: ArgumentHelp("Seed of --clip-policy random (with the track id).", valueName: "n"))
    public var clipSeed: UInt64 = 0

    @Option(help: ArgumentHelp(
        "With --clip-policy best:N: rank the candidates with this trained model (a mulan-train run directory, whose "
            + "newest checkpoint is used, or a checkpoint file) instead of by loudness: each candidate is scored against the "
            + "--clip-prompt texts as mulan-filter audio scores a clip. The model's sample rate must be --sample-rate. "
            + "Another model (by content), prompt or --clip-score re-ingests every track.", valueName: "path"))
    public var clipModel: String?

    @Option(help: ArgumentHelp("With --clip-model: the WordPiece vocab.txt the model's texts were tokenized with.",
                               valueName: "file"))
    public var clipVocab: String?

    @Option(help: ArgumentHelp("With --clip-model: a prompt NAME=TEXT (repeatable), e.g. music=\"music\".",
                               valueName: "name=text"))
    public var clipPrompt: [String] = []

    @Option(help: ArgumentHelp(
        "With --clip-model: what ranks a candidate, from its prompt scores (cosines): NAME (that prompt's score), "
            + "\"NAME - OTHER\" (its margin over another prompt) or \"NAME - others\" (its margin over the best other "
            + "prompt). Default with one prompt: its score; needed with several.", valueName: "rule"))
    public var clipScore: String?

    // Negative values: `.unconditional` takes `-50` as the value, not as an option.
    @Option(name: .customLong("silence-db"), parsing: .unconditional,
            help: ArgumentHelp("A clip with RMS below this level (dBFS) is silent and not stored.", valueName: "db"))
    public var silenceDB: Double = -60

    @Option(help: ArgumentHelp("A clip whose share of digital silence is at least this is silent.", valueName: "share"))
    public var maxSilenceShare: Double = 0.9

    @Option(help: ArgumentHelp("Bits per sample of stored FLAC clips: 16 or 24.", valueName: "bits"))
    public var flacBits: Int = 16

    // Values are negative: `.unconditional` takes `-23` as the value, not as an option.
    @Option(parsing: .unconditional,
            help: ArgumentHelp("Scale each stored clip to this integrated loudness (EBU R128, LUFS) before encoding; "
                               + "off by default. Changing it re-ingests every track.", valueName: "lufs"))
    public var loudnessTarget: Double?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("With --loudness-target: limit the gain so each clip's true peak stays at or below "
                               + "this (dBTP, default -1); such clips end up quieter than the target.", valueName: "dbtp"))
    public var loudnessMaxTruePeak: Double?

    @Option(help: ArgumentHelp("Loudness measured on each stored clip: full (integrated, range and true peak), integrated "
                               + "(no true peak, faster) or off. A later run asking for more measures only what is missing.",
                               valueName: "what"))
    public var loudness: LoudnessMeasurement = .full

    @Option(help: ArgumentHelp("Chromaprint fingerprints for mulan-dedupe: on or off. A later run with on adds the missing ones.",
                               valueName: "on|off"))
    public var fingerprint: Switch = .on

    @Option(help: ArgumentHelp("Write the JSON summary to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    var settings: IngestSettings {
        var s = IngestSettings()
        s.sampleRate = sampleRate
        s.clipSeconds = clipSeconds ?? preset?.clipSeconds ?? 30
        s.minClipSeconds = minClipSeconds ?? (clipSeconds == nil ? preset?.minClipSeconds : nil) ?? s.clipSeconds
        s.maxClipsPerTrack = maxClipsPerTrack
        if let clipPolicy, let policy = try? ClipPolicy(parsing: clipPolicy) { s.clipPolicy = policy }
        s.clipSeed = clipSeed
        s.silenceThresholdDB = silenceDB
        s.maxSilenceShare = maxSilenceShare
        s.flacBits = flacBits
        s.loudnessTargetLUFS = loudnessTarget
        if let loudnessMaxTruePeak { s.loudnessMaxTruePeakDB = loudnessMaxTruePeak }
        s.loudness = loudness
        s.fingerprint = fingerprint == .on
        return s
    }

    public func validate() throws {
        if manifest.isEmpty && scan == nil {
            throw ValidationError("give the tracks to ingest: --manifest FILE or --scan DIR")
        }
        if !glob.isEmpty && scan == nil { throw ValidationError("--glob needs --scan DIR") }
        if loudnessMaxTruePeak != nil && loudnessTarget == nil {
            throw ValidationError("--loudness-max-true-peak limits the gain of --loudness-target; give --loudness-target LUFS too")
        }
        do throws(MulanError) {
            if let clipPolicy {
                let policy = try ClipPolicy(parsing: clipPolicy)
                if let n = maxClipsPerTrack, policy != .evenly(n) {
                    throw MulanError(.usage, "--max-clips-per-track \(n) means --clip-policy evenly:\(n), which "
                                     + "contradicts --clip-policy \(clipPolicy)", hint: "give only one of the two")
                }
            }
            try settings.validate()
            _ = try clipModelRequest()
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The model ranking `best:N` asks for, checked without loading the model: nil without
    /// --clip-model. Every --clip-* option needs --clip-model, and --clip-model needs best:N, a
    /// vocabulary, prompts and (with several prompts) a score rule.
    func clipModelRequest() throws(MulanError) -> (model: String, vocab: String, prompts: [Prompt], rule: ClipRankRule)? {
        guard let clipModel else {
            let stray = [clipVocab.map { _ in "--clip-vocab" }, clipPrompt.isEmpty ? nil : "--clip-prompt",
                         clipScore.map { _ in "--clip-score" }].compactMap { $0 }
            if let first = stray.first {
                throw MulanError(.usage, "\(first) is for ranking best:N with a model, but no --clip-model is given",
                                 hint: "add --clip-model RUN_DIR (a mulan-train run), or leave out \(stray.joined(separator: ", "))")
            }
            return nil
        }
        guard settings.clipPolicy.isBest else {
            throw MulanError(.usage, "--clip-model ranks the candidates of --clip-policy best:N, but the policy is "
                             + "\(settings.clipPolicy)",
                             hint: "add --clip-policy best:N (e.g. best:1), or leave out --clip-model and its --clip-* options")
        }
        guard let clipVocab else {
            throw MulanError(.usage, "--clip-model needs the vocabulary its texts were tokenized with",
                             hint: "add --clip-vocab vocab.txt (the one mulan-filter --vocab used for the training data)")
        }
        guard !clipPrompt.isEmpty else {
            throw MulanError(.usage, "--clip-model needs at least one prompt to score the candidates against",
                             hint: "add --clip-prompt NAME=TEXT (repeatable), e.g. --clip-prompt music=music")
        }
        let prompts = try clipPrompt.map { value throws(MulanError) in
            guard value.contains("=") else {
                throw MulanError(.usage, "--clip-prompt \"\(value)\" has no name",
                                 hint: "write NAME=TEXT, e.g. --clip-prompt piano=\"solo piano music\"")
            }
            return try AudioFilterCommand.parsePrompt(value, location: nil)
        }
        try AudioFilterJob.validate(prompts: prompts, rules: [], option: "--clip-prompt")
        let rule: ClipRankRule
        if let clipScore {
            rule = try ClipRankRule(parsing: clipScore)
        } else if prompts.count == 1 {
            rule = ClipRankRule(name: prompts[0].name)
        } else {
            throw MulanError(.usage, "with \(prompts.count) --clip-prompt, say which score ranks the candidates",
                             hint: "add --clip-score \"\(prompts[0].name) - others\" (its margin over the best other prompt) "
                                 + "or --clip-score \(prompts[0].name) (its score alone)")
        }
        try rule.check(prompts: prompts.map(\.name))
        return (clipModel, clipVocab, prompts, rule)
    }

    /// Opens the model of --clip-model (nil without it): loud failures for a missing or
    /// unreadable run, a vocabulary that does not fit, or a sample rate other than --sample-rate.
    /// The model that ranks best:N's windows, with OpenBLAS started for it; nil without --clip-model.
    func clipScorer(console: Console) throws(MulanError) -> ZeroShotClipScorer? {
        guard let request = try clipModelRequest() else { return nil }
        // One model, its calls taken in turn (ZeroShotClipScorer); each call uses every core.
        try startBLAS(threads: global.jobs, console: console)
        let checkpoint = try ModelOption.checkpoint(request.model, option: "--clip-model")
        guard FileManager.default.isReadableFile(atPath: request.vocab) else {
            throw MulanError(.usage, "--clip-vocab \(request.vocab) cannot be read",
                             hint: "pass the vocab.txt the model's training texts were tokenized with")
        }
        return try ZeroShotClipScorer(checkpoint: checkpoint, vocabulary: request.vocab, prompts: request.prompts,
                                      rule: request.rule, ingestSampleRate: sampleRate)
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            var inputs = manifest.map { IngestInput.manifest(path: $0, format: manifestFormat) }
            if let scan { inputs.append(.scan(directory: scan, globs: glob)) }
            var scorer: any ClipScorer = LoudnessScorer()
            if let model = try clipScorer(console: console) { scorer = model }
            let job = IngestJob(workdir: global.workdir, inputs: inputs, settings: settings,
                                jobs: global.jobs, console: console, slice: try workerOptions.slice(), clipScorer: scorer)
            let summary = try await job.run()
            if let report { try summary.write(to: report) }
            print(summary.text())
            if let none = summary.noClips(settings: settings) {
                if none.fatal { throw none.error }
                console.log(.warning, none.error.description, event: "no-clips")
            }
            return summary.tracksFailed > 0 ? .completedWithFailures : .success
        }
    }
}

public struct IngestTextCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "text",
        abstract: "Load weak text (tags, descriptions, playlists, AudioSet labels) into the catalog.",
        discussion: """
        Formats: generic (JSONL {"track_id", "source", "text"} or {"track_id", "tags": [...], ...}; \
        schemas/text-generic.schema.json), playlists (JSONL {"playlist_id", "title", "description", \
        "track_ids"}), musiccaps (musiccaps-public.csv), mtat (annotations_final.csv), audioset (segment CSVs), \
        song-describer (song_describer.csv), jamendo (MTG-Jamendo autotagging and split TSVs; tags with their \
        category as field), fma (tracks.csv with --genres genres.csv; genre_top, genres_all names, track tags, \
        titles), mpd (Million Playlist Dataset slices with --track-map; playlist names and descriptions), \
        lp-musiccaps (JSON Lines or CSV exports; captions as descriptions). docs/text.md says what each reads. \
        Text is stored as given with its source, track, file and line; texts of tracks not yet in the \
        catalog are kept and counted as unmatched. Container tags read by `mulan-ingest audio` are \
        already in the catalog (genre, mood, title… as tags; comment as descriptions). With workers, \
        each loads the texts of its own tracks into its part (docs/scale-out.md). \
        Exit codes: 0 ok; 3 some records rejected (recorded with reasons); 64 usage; 1 fatal.
        """)

    @OptionGroup public var global: GlobalOptions

    @OptionGroup(title: "Workers") public var workerOptions: WorkerOptions

    @Option(help: ArgumentHelp("The file format: generic, playlists, musiccaps, mtat, audioset, song-describer, jamendo, fma, "
                               + "mpd or lp-musiccaps.", valueName: "format"))
    public var format: TextFormat

    @Argument(help: ArgumentHelp("Annotation files.", valueName: "file"))
    public var files: [String]

    @Option(help: ArgumentHelp("AudioSet label names: ontology.json or class_labels_indices.csv.", valueName: "file"))
    public var labels: String?

    @Option(help: ArgumentHelp("fma: FMA's genres.csv, which names the genre ids of tracks.csv.", valueName: "file"))
    public var genres: String?

    @Option(help: ArgumentHelp("mpd: a CSV track_uri,track_id mapping Spotify track URIs to your track ids.",
                               valueName: "file"))
    public var trackMap: String?

    @Flag(help: "lp-musiccaps: also load caption_attribute_prediction (its authors advise against using it).")
    public var attributePrediction = false

    @Option(help: ArgumentHelp("Track id built from CSV columns, e.g. '{ytid}' or '{YTID}_{start_seconds}'.",
                               valueName: "template"))
    public var trackIDFormat: String?

    @Option(name: .customLong("invalid-utf8"),
            help: ArgumentHelp("Records with invalid UTF-8: replace (keep, flagged) or reject.", valueName: "policy"))
    public var invalidUTF8: InvalidUTF8Policy = .replace

    @Option(help: ArgumentHelp("Longest JSONL line accepted, in bytes.", valueName: "n"))
    public var maxLineBytes: Int = 1 << 20

    @Option(help: ArgumentHelp("Write the JSON summary to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    public func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one annotation file") }
        if (format == .musiccaps || format == .audioset) && labels == nil {
            throw ValidationError("--format \(format.rawValue) needs --labels ontology.json (or class_labels_indices.csv)")
        }
        if format == .fma && genres == nil { throw ValidationError("--format fma needs --genres genres.csv (from fma_metadata)") }
        if format == .mpd && trackMap == nil {
            throw ValidationError("--format mpd needs --track-map FILE.csv (track_uri,track_id: the tracks you have audio for)")
        }
        if genres != nil && format != .fma { throw ValidationError("--genres is for --format fma only") }
        if trackMap != nil && format != .mpd { throw ValidationError("--track-map is for --format mpd only") }
        if attributePrediction && format != .lpMusicCaps {
            throw ValidationError("--attribute-prediction is for --format lp-musiccaps only")
        }
        if maxLineBytes < 1 { throw ValidationError("--max-line-bytes must be at least 1") }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let job = TextLoadJob(workdir: global.workdir, files: files, format: format, labelsPath: labels,
                                  trackIDTemplate: trackIDFormat, invalidUTF8: invalidUTF8,
                                  maxLineBytes: maxLineBytes, console: console, slice: try workerOptions.slice(),
                                  genresPath: genres, trackMapPath: trackMap, attributePrediction: attributePrediction)
            let summary = try job.run()
            if let report { try summary.write(to: report) }
            print(summary.text())
            return summary.exitCode == 0 ? .success : .completedWithFailures
        }
    }
}

extension ClipPreset: ExpressibleByArgument {}
extension LoudnessMeasurement: ExpressibleByArgument {}

/// An on/off option value.
public enum Switch: String, ExpressibleByArgument, Sendable { case on, off }

/// `mulan-ingest truepeak-bench`: times the true peak, ours against libebur128's, on synthetic 30-s
/// clips (for bench/truepeak-vs-libebur128.sh); prints `TruePeakBenchmark.Result` as JSON.
public struct TruePeakBenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "truepeak-bench", abstract: "Time the true peak against libebur128's (benchmarks).",
        shouldDisplay: false)

    @Option(help: "Clips.") public var clips = 8
    @Option(help: "Seconds per clip.") public var seconds = 30.0
    @Option(help: "Sample rate.") public var sampleRate = 16000
    @Option(help: "Passes over the clips per timing.") public var repeats = 3

    public init() {}

    public func run() throws {
        let result = TruePeakBenchmark.run(clips: clips, seconds: seconds, sampleRate: sampleRate, repeats: repeats)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
