import ArgumentParser
import Foundation
import MulanCore
import MulanFormats

extension CorpusFormat: ExpressibleByArgument {}

/// `mulan-ingest manifest`: the audio manifest of a public corpus from its own metadata files.
public struct IngestManifestCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Write the audio manifest of a corpus (MTAT, MusicCaps, AudioSet, MTG-Jamendo, Song Describer, FMA) from its own files.",
        discussion: """
        Reads the corpus's metadata (mtat: annotations_final.csv; musiccaps: musiccaps-public.csv; audioset: \
        the segment CSVs; jamendo: the split TSVs splits/split-N/{train,validation,test}.tsv or \
        raw_30s_cleantags.tsv; song-describer: song_describer.csv; fma: fma_metadata/tracks.csv) and writes the CSV manifest that \
        `mulan-ingest --manifest` reads: the track ids `mulan-ingest text --format …` gives the same \
        corpus, the file below --audio-root, the segment (with --segments-in-file) and the corpus's \
        official split. Tracks whose audio is not there (YouTube ids never downloaded) are listed in \
        the problems file with the rows that cannot be read, and counted per split: the coverage \
        report (stdout, and --report as JSON). \
        Exit codes: 0 every track found; 3 written, some tracks missing or rows rejected (listed); \
        64 usage; 1 fatal (no track found at all, unreadable files).
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("The corpus: mtat, musiccaps, audioset, jamendo, song-describer or fma.", valueName: "corpus"))
    public var format: CorpusFormat

    @Argument(help: ArgumentHelp("The corpus's metadata files.", valueName: "file"))
    public var files: [String]

    @Option(help: ArgumentHelp("The folder the corpus's audio lies in.", valueName: "dir"))
    public var audioRoot: String

    @Option(help: ArgumentHelp("The manifest to write (CSV).", valueName: "file"))
    public var out: String

    @Option(help: ArgumentHelp("Missing tracks and rejected rows, with reasons (default: OUT with .problems.csv).", valueName: "file"))
    public var problems: String?

    @Option(help: ArgumentHelp("mtat: top50 keeps the clips with one of the 50 most frequent tags; fma: small, medium or large keeps that subset.", valueName: "name"))
    public var subset: String?

    @Flag(help: "musiccaps/audioset: the files are whole videos; write each segment's start_s/end_s.")
    public var segmentsInFile = false

    @Option(help: ArgumentHelp("musiccaps/audioset: file names to try, without extension ({ytid}, {start}, {end}); repeat for several (default: {ytid}, Y{ytid}, {ytid}_{start}, {ytid}_{start}-{end}, {ytid}_{start}_{end}).",
                               valueName: "template"))
    public var audioName: [String] = []

    @Flag(name: .customLong("jamendo-ids"), help: "song-describer: write MTG-Jamendo's track ids (track_0001030 for 1030), to hold its tracks out of a Jamendo training set.")
    public var jamendoIDs = false

    @Option(help: ArgumentHelp("Write the JSON coverage report to this file.", valueName: "file"))
    public var report: String?

    public init() {}

    public func validate() throws {
        if files.isEmpty { throw ValidationError("give the corpus's metadata file(s)") }
        if !audioName.isEmpty && format != .musiccaps && format != .audioset {
            throw ValidationError("--audio-name is for musiccaps and audioset (the other corpora give each file's path)")
        }
        if segmentsInFile && format != .musiccaps && format != .audioset {
            throw ValidationError("--segments-in-file is for musiccaps and audioset")
        }
        if jamendoIDs && format != .songDescriber { throw ValidationError("--jamendo-ids is for song-describer") }
        if let s = subset, !CorpusManifestBuilder.subsets(format).contains(s) {
            throw ValidationError("--subset \(s) is not known for \(format.rawValue) (top50 for mtat; small, medium or large for fma)")
        }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            var builder = CorpusManifestBuilder(format: format, audioRoot: audioRoot)
            builder.segmentsInFile = segmentsInFile
            builder.subset = subset
            builder.jamendoIDs = jamendoIDs
            if !audioName.isEmpty { builder.audioNames = audioName }
            let outPath = Paths.absolute(out)
            let problemsPath = problems.map(Paths.absolute) ?? (outPath.hasSuffix(".csv") ? String(outPath.dropLast(4)) : outPath) + ".problems.csv"
            let summary = try builder.run(files: files.map(Paths.absolute), manifest: outPath, problems: problemsPath)
            if let report { try summary.write(to: report) }
            print(summary.text())
            return summary.audioMissing + summary.rejected > 0 ? .completedWithFailures : .success
        }
    }
}
