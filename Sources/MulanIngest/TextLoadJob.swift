import Foundation
import MulanCatalog
import MulanCore
import MulanFormats

/// The summary of `mulan-ingest text` (`--report FILE`; schemas/text-report.schema.json).
public struct TextLoadReport: Codable, Sendable, StageReport {
    public var schemaVersion = 1
    public var stage = "ingest-text"
    public var filesLoaded = 0
    public var filesUnchanged = 0
    public var records = 0
    public var textsBySource: [String: Int] = [:]
    public var rejectsByReason: [String: Int] = [:]
    public var repairedTexts = 0
    public var unmatchedTexts = 0
    public var wallSeconds = 0.0
    public var exitCode: Int32 = 0
    /// The worker that wrote this summary, when the stage runs as several workers (text summary only).
    public var worker: WorkerSlice? = nil

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", stage, filesLoaded = "files_loaded", filesUnchanged = "files_unchanged"
        case records, textsBySource = "texts_by_source", rejectsByReason = "rejects_by_reason"
        case repairedTexts = "repaired_texts", unmatchedTexts = "unmatched_texts", wallSeconds = "wall_seconds"
        case exitCode = "exit_code"
    }


    public func text() -> String {
        var lines = ["ingest text\(worker.map { " (\($0))" } ?? ""): \(filesLoaded) files loaded, \(filesUnchanged) unchanged; \(records) records"]
        let texts = TextSource.allCases.map { "\($0.rawValue) \(textsBySource[$0.rawValue] ?? 0)" }.joined(separator: ", ")
        lines.append("  texts: \(texts)")
        lines.append("  unmatched texts (track not in the catalog yet, kept): \(unmatchedTexts)")
        if repairedTexts > 0 { lines.append("  texts repaired (invalid UTF-8 replaced): \(repairedTexts)") }
        if !rejectsByReason.isEmpty {
            lines.append("  rejected by reason:")
            for (reason, n) in rejectsByReason.sorted(by: { $0.key < $1.key }) { lines.append("    \(reason): \(n)") }
        }
        return lines.joined(separator: "\n")
    }

}

/// Loads annotation files into the catalog's raw texts: each file in one transaction (a killed
/// run leaves nothing of a half-read file), an unchanged file (same content and options) skipped,
/// a changed one replaced whole.
public struct TextLoadJob: Sendable {
    public var workdir: String
    public var files: [String]
    public var format: TextFormat
    public var labelsPath: String?
    public var trackIDTemplate: String?
    public var invalidUTF8: InvalidUTF8Policy
    public var maxLineBytes: Int
    public var console: Console
    /// The share of the tracks this process loads text for (see WorkerSlice); single: all.
    public var slice: WorkerSlice
    /// fma: FMA's genres.csv (`--genres`).
    public var genresPath: String?
    /// mpd: the track URI → track id CSV (`--track-map`).
    public var trackMapPath: String?
    /// lp-musiccaps: also load caption_attribute_prediction.
    public var attributePrediction = false

    public init(workdir: String, files: [String], format: TextFormat, labelsPath: String?, trackIDTemplate: String?,
                invalidUTF8: InvalidUTF8Policy, maxLineBytes: Int, console: Console, slice: WorkerSlice = .single,
                genresPath: String? = nil, trackMapPath: String? = nil, attributePrediction: Bool = false) {
        self.workdir = Paths.absolute(workdir)
        self.files = files.map(Paths.absolute)
        self.format = format
        self.labelsPath = labelsPath.map(Paths.absolute)
        self.trackIDTemplate = trackIDTemplate
        self.invalidUTF8 = invalidUTF8
        self.maxLineBytes = maxLineBytes
        self.console = console
        self.slice = slice
        self.genresPath = genresPath.map(Paths.absolute)
        self.trackMapPath = trackMapPath.map(Paths.absolute)
        self.attributePrediction = attributePrediction
    }

    /// Where this process writes: the work directory, or its part `parts/I-of-N` for a worker.
    public var directory: String {
        slice.isSingle ? workdir : WorkLayout.partDirectory(root: workdir, slice: slice)
    }

    /// The options that shape what is read from a file; a change re-reads it. (The keys of the
    /// later formats' options are appended only when given, so earlier keys stay as they were.)
    var optionsKey: String {
        func hash(_ path: String?) -> String {
            path.flatMap { try? SHA256Digest.hex(ofFile: $0).digest } ?? "-"
        }
        return "v1;format=\(format.rawValue);labels=\(hash(labelsPath));id=\(trackIDTemplate ?? "-");utf8=\(invalidUTF8.rawValue)"
            + ";max=\(maxLineBytes)"
            + (genresPath.map { ";genres=\(hash($0))" } ?? "")
            + (trackMapPath.map { ";track-map=\(hash($0))" } ?? "")
            + (attributePrediction ? ";attribute-prediction" : "")
    }

    public func run() throws -> TextLoadReport {
        let started = Date()
        try Paths.makeDirectory(workdir)
        try WorkLayout.checkWritable(root: workdir, slice: slice)
        let directory = self.directory
        try Paths.makeDirectory(directory)
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-ingest text")
        defer { withExtendedLifetime(lock) {} }
        if !slice.isSingle {
            console.log(.info, "\(slice) (from \(slice.origin)): loading the texts of the tracks whose id hashes to it "
                        + "into \(directory)", event: "worker")
        }
        let catalog = try Catalog(path: directory + "/catalog.sqlite")
        let slice = self.slice
        let references = TextReferences(
            labels: try labelsPath.map { path throws(MulanError) in try AudioSetLabels.load(path: path) },
            genres: try genresPath.map { path throws(MulanError) in try FMAGenres.load(path: path) },
            trackMap: try trackMapPath.map { path throws(MulanError) in try TrackURIMap.load(path: path) },
            attributePrediction: attributePrediction)
        let options = optionsKey
        let runID = try catalog.beginRun(stage: "ingest-text", settings: options)
        var report = TextLoadReport()
        if !slice.isSingle { report.worker = slice }

        for file in files {
            let digest: String
            do {
                digest = try SHA256Digest.hex(ofFile: file).digest
            } catch {
                throw MulanError(.io, "cannot read the annotation file \(file)", hint: "check the path", cause: error)
            }
            if let previous = try catalog.textFile(path: file), previous.sha256 == digest, previous.options == options {
                report.filesUnchanged += 1
                console.log(.info, "\(file): unchanged since it was loaded, skipped")
                continue
            }
            let reader = try TextFormatReader(path: file, format: format, references: references)
            reader.invalidUTF8 = invalidUTF8
            reader.trackIDTemplate = trackIDTemplate
            reader.maxLineBytes = maxLineBytes
            let total = try Self.countLines(file)
            let progress = ProgressMeter(total: total, unit: "lines", console: console)
            var lastLine = 0
            try catalog.replaceTextFile(path: file, format: format.rawValue, sha256: digest, options: options,
                                        runID: runID) { insert in
                var texts = 0
                var rejects = 0
                while let read = try reader.next() {
                    // A worker keeps the texts of its tracks (a playlist: per member track) and the
                    // rejects of its tracks; rejects without a track id go to worker 0.
                    let line = read.annotations.first?.origin.line ?? read.rejects.first?.origin.line ?? lastLine
                    if line > lastLine {
                        progress.advance(by: min(line, total) - min(lastLine, total))
                        lastLine = line
                    }
                    var result = read
                    if !slice.isSingle {
                        result.annotations.removeAll { !slice.owns(trackID: $0.trackID) }
                        result.rejects.removeAll { !slice.owns(optionalTrackID: $0.origin.trackID) }
                        if result.annotations.isEmpty && result.rejects.isEmpty { continue }
                    }
                    report.records += 1
                    for a in result.annotations {
                        try insert.insert(a)
                        texts += 1
                        report.textsBySource[a.source.rawValue, default: 0] += 1
                        if a.repaired { report.repairedTexts += 1 }
                    }
                    for r in result.rejects {
                        try insert.reject(r)
                        rejects += 1
                        report.rejectsByReason[r.reason.rawValue, default: 0] += 1
                        console.log(.warning, "\(r.origin): \(r.reason.rawValue): \(r.detail)", event: "text_rejected",
                                    fields: console.format == .json ? ["reason": r.reason.rawValue, "file": file,
                                                                       "line": "\(r.origin.line ?? 0)"] : [:])
                    }
                }
                return (texts, rejects)
            }
            progress.finish()
            report.filesLoaded += 1
            report.unmatchedTexts += try catalog.unmatchedTexts(file: file)
        }
        report.wallSeconds = Date().timeIntervalSince(started)
        report.exitCode = report.rejectsByReason.isEmpty ? ExitStatus.success.rawValue
                                                         : ExitStatus.completedWithFailures.rawValue
        try catalog.finishRun(runID, summary: report.json())
        return report
    }

    /// Counts newline bytes (a quick pass) so progress can show a total.
    static func countLines(_ path: String) throws(MulanError) -> Int {
        let reader = try ByteReader(path: path)
        var n = 0
        var last: UInt8 = 0x0A
        while let b = try reader.next() {
            if b == 0x0A { n += 1 }
            last = b
        }
        return last == 0x0A ? n : n + 1
    }
}
