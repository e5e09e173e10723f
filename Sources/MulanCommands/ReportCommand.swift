import ArgumentParser
import Foundation
import MulanCore
import MulanReport

/// `mulan-report`: one self-contained HTML page of plots (inline SVG) over a work directory, a
/// training run and an evaluation report.
public struct ReportCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-report",
        abstract: "Write one self-contained HTML page of plots of the catalog, the filter decisions, the shards, a training run and an evaluation.",
        discussion: "Exit codes: 0 ok; 3 written, but an input that exists or was named could not be read; 64 usage; 1 fatal.",
        subcommands: [ReportWriteCommand.self],
        defaultSubcommand: ReportWriteCommand.self)

    public init() {}
}

public struct ReportWriteCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Write the page (the default subcommand).",
        discussion: """
        Reads WORKDIR/catalog.sqlite (read-only: track outcomes, clip durations and levels, EBU R128 loudness and \
        the normalization gain, the audio filter's funnel by rule and prompt scores, texts per source, the filter \
        funnel by reason, token lengths, the tag long tail), the shard set (WORKDIR/shards/latest \
        or --shards: dataset.json and the shard sizes), --run RUN_DIR/metrics.jsonl (loss, temperature, \
        Recall@10, tagging ROC-AUC per step) and --eval (a mulan-eval --json report: per-tag ROC-AUC). Every \
        input is optional: a section whose input is missing says so. The page has no external resource and \
        needs no JavaScript to show its plots; the same inputs give the same bytes. It is written to OUT.tmp \
        and renamed. Exit codes: 0 ok; 3 written, but an input that exists or was named could not be read \
        (its section says why); 64 usage; 1 fatal (the page could not be written).
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("A mulan-shard dataset folder (default: WORKDIR/shards/latest).", valueName: "dir"))
    public var shards: String?

    @Option(help: ArgumentHelp("A mulan-train run directory (with metrics.jsonl).", valueName: "dir"))
    public var run: String?

    @Option(help: ArgumentHelp("A report written by mulan-eval --json.", valueName: "file"))
    public var eval: String?

    @Option(help: ArgumentHelp("The HTML file to write.", valueName: "file"))
    public var out: String

    @Option(help: ArgumentHelp("How many of the most frequent tags to list.", valueName: "n"))
    public var topTags = 40

    public init() {}

    public func validate() throws {
        if out.isEmpty { throw ValidationError("--out must not be empty") }
        if out.hasSuffix("/") { throw ValidationError("--out names a folder; name the HTML file to write, e.g. \(out)report.html") }
        if topTags < 1 || topTags > 1000 { throw ValidationError("--top-tags must be between 1 and 1000, got \(topTags)") }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let inputs = ReportInputs(workdir: global.workdir, shards: shards, run: run, eval: eval, topTags: topTags)
            let path = Paths.absolute(out)
            let result = try Report.write(inputs, to: path)
            for problem in result.problems {
                console.log(.warning, problem, event: "input-unreadable")
            }
            print("report: \(result.plots) plots in \(result.sectionsWithPlots.count) sections written to \(path)")
            return result.problems.isEmpty ? .success : .completedWithFailures
        }
    }
}
