import Foundation
import MulanCore

/// What `mulan-report` reads. Every input is optional: a section whose input is missing says so.
public struct ReportInputs: Sendable {
    /// The work directory: `catalog.sqlite` and, unless `shards` is given, `shards/latest`.
    public var workdir: String
    /// A shard set folder (with `dataset.json`); default `WORKDIR/shards/latest`.
    public var shards: String?
    /// A `mulan-train` run directory (with `metrics.jsonl`).
    public var run: String?
    /// A `mulan-eval --json` report.
    public var eval: String?
    /// How many of the most frequent tags to list.
    public var topTags: Int

    public init(workdir: String, shards: String? = nil, run: String? = nil, eval: String? = nil, topTags: Int = 40) {
        self.workdir = Paths.absolute(workdir)
        self.shards = shards.map(Paths.absolute)
        self.run = run.map(Paths.absolute)
        self.eval = eval.map(Paths.absolute)
        self.topTags = max(1, topTags)
    }
}

/// The rendered page and what went into it.
public struct ReportResult: Sendable {
    public var html: String
    /// Plots drawn.
    public var plots: Int
    /// Section titles with at least one plot.
    public var sectionsWithPlots: [String]
    /// Inputs that exist (or were named on the command line) but could not be read, with the reason.
    public var problems: [String]
}

/// Builds the report: reads each input (read-only), turns it into sections, renders one HTML file.
public enum Report {
    public static func build(_ inputs: ReportInputs) -> ReportResult {
        var problems: [String] = []
        var sections: [Section] = []
        let fm = FileManager.default

        // The catalog: audio, the audio filter, text, tags.
        let catalogPath = inputs.workdir + "/catalog.sqlite"
        if !fm.fileExists(atPath: catalogPath) {
            let note = fm.fileExists(atPath: inputs.workdir)
                ? "No catalog at \(catalogPath): run mulan-ingest first."
                : "No work directory at \(inputs.workdir): pass --workdir (the folder mulan-ingest wrote)."
            sections.append(AudioSection.missing(note))
            sections.append(AudioFilterSection.missing(note))
            sections += TextSections.missing(note)
        } else {
            do {
                let figures = try CatalogReader(path: catalogPath).read(topTags: inputs.topTags)
                sections.append(AudioSection.make(figures))
                sections.append(AudioFilterSection.make(figures))
                sections.append(TextSections.text(figures))
                sections.append(TextSections.tags(figures, topK: inputs.topTags))
            } catch {
                let note = "The catalog \(catalogPath) could not be read: \(error)"
                problems.append(note)
                sections.append(AudioSection.missing(note))
                sections.append(AudioFilterSection.missing(note))
                sections += TextSections.missing(note)
            }
        }

        // The shards.
        let shardDirectory = inputs.shards ?? inputs.workdir + "/shards/latest"
        if !fm.fileExists(atPath: shardDirectory + "/dataset.json") {
            let note = "No shards at \(shardDirectory) (no dataset.json): run mulan-shard."
            if inputs.shards != nil { problems.append(note) }
            sections.append(ShardSection.missing(note))
        } else {
            do {
                sections.append(ShardSection.make(try ShardReader.read(directory: shardDirectory)))
            } catch {
                let note = "The shards at \(shardDirectory) could not be read: \(error)"
                problems.append(note)
                sections.append(ShardSection.missing(note))
            }
        }

        // The training run.
        if let run = inputs.run {
            do {
                sections.append(RunSections.training(try RunReader.read(directory: run)))
            } catch {
                let note = "The training run \(run) could not be read: \(error)"
                problems.append(note)
                sections.append(RunSections.missingTraining(note))
            }
        } else {
            sections.append(RunSections.missingTraining("No training run given: pass --run RUN_DIR (the folder mulan-train wrote, with metrics.jsonl)."))
        }

        // The evaluation report.
        if let eval = inputs.eval {
            do {
                sections.append(RunSections.evaluation(try EvalFigures.read(path: eval), path: eval))
            } catch {
                let note = "The evaluation report \(eval) could not be read: \(error)"
                problems.append(note)
                sections.append(RunSections.missingEval(note))
            }
        } else {
            sections.append(RunSections.missingEval("No evaluation report given: pass --eval EVAL.json (written by mulan-eval --json FILE)."))
        }

        var described: [(name: String, value: String)] = [("work directory", inputs.workdir), ("shards", shardDirectory)]
        described.append(("training run", inputs.run ?? "not given"))
        described.append(("evaluation", inputs.eval ?? "not given"))
        let html = HTMLPage.render(title: "mulan report", inputs: described, sections: sections)
        return ReportResult(html: html, plots: sections.map(\.figures).reduce(0, +),
                            sectionsWithPlots: sections.filter { $0.figures > 0 }.map(\.title), problems: problems)
    }

    /// Builds the report and writes it to `path` (as `path.tmp`, then renamed).
    public static func write(_ inputs: ReportInputs, to path: String) throws(MulanError) -> ReportResult {
        let result = build(inputs)
        try AtomicFile.write(Data(result.html.utf8), to: path)
        return result
    }
}
