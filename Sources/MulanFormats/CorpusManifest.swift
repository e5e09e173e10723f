import Foundation
import MulanCore

/// The corpora whose own metadata files `mulan-ingest manifest` turns into an audio manifest.
public enum CorpusFormat: String, Sendable, CaseIterable {
    /// MagnaTagATune `annotations_final.csv` (tab-separated, quoted): `clip_id`, the tags, `mp3_path`.
    case mtat
    /// MusicCaps `musiccaps-public.csv`: `ytid`, `start_s`, `end_s`, …, `is_audioset_eval`.
    case musiccaps
    /// AudioSet segment CSVs (`balanced_train_segments.csv`, `unbalanced_train_segments.csv`,
    /// `eval_segments.csv`): `# ` comment lines, then `YTID, start_seconds, end_seconds, "labels"`.
    case audioset
    /// MTG-Jamendo TSVs (`splits/split-N/{train,validation,test}.tsv`, `raw_30s_cleantags.tsv`):
    /// `TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS…`.
    case jamendo
    /// Song Describer `song_describer.csv`: `caption_id, track_id, caption, …, path, duration`.
    case songDescriber = "song-describer"
    /// FMA `tracks.csv` (two header rows, group then field; the index-name line): `set/split`, `set/subset`.
    case fma
}

/// Why a corpus row is not in the manifest (the problems file's `reason`).
public enum CorpusProblem: String, Sendable {
    case audioMissing = "audio-missing"
    case invalidRow = "invalid-row"
    case duplicateTrackID = "duplicate-track-id"
}

/// What `mulan-ingest manifest` did: rows read, tracks written and missing, per split (the coverage
/// report), as JSON in `--report` and on stdout.
public struct CorpusManifestReport: Codable, Sendable, StageReport {
    public struct SplitCoverage: Codable, Sendable, Equatable {
        public var tracks = 0
        public var found = 0
        public var missing = 0
    }

    public var format: String
    public var files: [String]
    public var audioRoot: String
    public var manifest: String
    public var problemsFile: String
    public var rows = 0
    /// Distinct tracks the files name (after the subset).
    public var tracks = 0
    public var written = 0
    public var audioMissing = 0
    public var rejected = 0
    /// Tracks left out by the subset (`--subset top50`).
    public var excluded = 0
    /// Rows of a track already seen with the same split (Song Describer's several captions per track).
    public var mergedRows = 0
    public var bySplit: [String: SplitCoverage] = [:]
    /// The subset's tags, most frequent first (`--subset top50`).
    public var subsetTags: [String]?

    enum CodingKeys: String, CodingKey {
        case format, files, audioRoot = "audio_root", manifest, problemsFile = "problems_file", rows, tracks, written
        case audioMissing = "audio_missing", rejected, excluded, mergedRows = "merged_rows", bySplit = "by_split"
        case subsetTags = "subset_tags"
    }

    public func text() -> String {
        var lines = ["\(format): \(rows) rows, \(tracks) tracks; \(written) written to \(manifest), \(audioMissing) without audio under \(audioRoot)"
                     + (rejected > 0 ? ", \(rejected) rows rejected" : "") + (excluded > 0 ? ", \(excluded) outside the subset" : "")]
        for split in bySplit.keys.sorted() {
            let c = bySplit[split]!
            let share = c.tracks > 0 ? 100 * Double(c.found) / Double(c.tracks) : 0
            lines.append("  \(split.isEmpty ? "(no split)" : split): \(c.found) of \(c.tracks) tracks have audio (\(String(format: "%.1f", share))%), \(c.missing) missing")
        }
        if audioMissing + rejected > 0 { lines.append("  each missing track and rejected row, with its reason: \(problemsFile)") }
        return lines.joined(separator: "\n")
    }
}

/// Builds an audio manifest (`track_id,path,start_s,end_s,split`, the CSV `mulan-ingest --manifest`
/// reads) from a corpus's own metadata files, with the track ids the text readers of the same corpus
/// use (`mulan-ingest text --format …`), the segment where the corpus has one, and the corpus's
/// official split:
///
/// - mtat: track `clip_id`, file `mp3_path`; split by the first folder (`0`–`b` train, `c` valid,
///   `d`–`f` test, the usual split); `--subset top50` keeps the clips with one of the 50 most frequent
///   tags of the file.
/// - musiccaps: track `ytid`; split `test` when `is_audioset_eval` is true, else `train`.
/// - audioset: track `YTID`; split `test` for a file whose name contains `eval`, else `train`.
/// - jamendo: track `TRACK_ID`, file `PATH` (or its `.low.mp3` twin); split from the file name
///   (`train.tsv`, `validation.tsv` → valid, `test.tsv`); other files give no split.
/// - song-describer: track `track_id` (one row per track, captions merged), file `path`; split `test`.
/// - fma: track the index (`track_id`), file `NNN/NNNNNN.mp3` (the id zero-padded to 6 digits, its first
///   3 as the folder, as in fma_large); split `set/split` (training → train, validation → valid, test);
///   `--subset small|medium|large` keeps the tracks of that subset (FMA's subsets are nested).
///
/// For musiccaps and audioset the file is found by name anywhere below the audio root: the first of
/// the `audioNames` templates (`{ytid}`, `{start}`, `{end}`) that names an audio file, whatever its
/// extension. With `segmentsInFile` (downloads of the whole video), the manifest carries the segment's
/// `start_s`/`end_s`; otherwise the files are taken to be the cut segments.
///
/// Every row ends up in the manifest or in the problems file (`track_id,split,reason,detail,file,line`):
/// audio that is not there, rows that cannot be read, a track given twice with different splits.
/// The manifest and problems file are written under temporary names and renamed.
public struct CorpusManifestBuilder {
    public var format: CorpusFormat
    public var audioRoot: String
    public var segmentsInFile = false
    public var audioNames = AudioSetConventions.audioNames
    /// `top50` (mtat): the clips that have one of the file's 50 most frequent tags; `small`, `medium`,
    /// `large` (fma): the tracks of that subset.
    public var subset: String?
    /// song-describer: write MTG-Jamendo's ids (`track_0001030` for 1030): its audio is Jamendo's, so
    /// that a Jamendo training set can hold it out (`mulan-shard --hold-out`).
    public var jamendoIDs = false

    public init(format: CorpusFormat, audioRoot: String) {
        self.format = format
        self.audioRoot = Paths.absolute(audioRoot)
    }

    /// One track as a corpus row gives it.
    struct Track {
        var id: String
        /// Relative paths to try (mtat, jamendo, song-describer) or names to look up (musiccaps, audioset).
        var paths: [String] = []
        var names: [String] = []
        var start: Double?
        var end: Double?
        var split: String
        var origin: SourceLocation
    }

    enum RowOutcome {
        case track(Track)
        case problem(CorpusProblem, String, SourceLocation)
        /// Outside the chosen subset (counted as excluded).
        case excluded
    }

    public func run(files: [String], manifest: String, problems: String) throws(MulanError) -> CorpusManifestReport {
        if let s = subset, !Self.subsets(format).contains(s) {
            throw MulanError(.usage, "--subset \(s) is not known for \(format.rawValue)",
                             hint: "--subset top50 is for --format mtat; small, medium or large for --format fma")
        }
        let index = try AudioIndex(root: audioRoot)
        var report = CorpusManifestReport(format: format.rawValue, files: files, audioRoot: audioRoot, manifest: manifest,
                                          problemsFile: problems)
        let kept: Set<String>?
        if format == .mtat, subset == "top50" {
            let (tags, clips) = try mtatTop50(files: files)
            report.subsetTags = tags
            kept = clips
        } else {
            kept = nil
        }
        let out = try StreamedFile(path: manifest)
        let bad = try StreamedFile(path: problems)
        try out.write("track_id,path,start_s,end_s,split\n")
        try bad.write("track_id,split,reason,detail,file,line\n")
        var seen: [String: String] = [:]   // track id → split
        func problem(_ reason: CorpusProblem, _ detail: String, _ at: SourceLocation, split: String = "") throws(MulanError) {
            try bad.write(Self.csvLine([at.trackID ?? "", split, reason.rawValue, detail, at.file ?? "", at.line.map(String.init) ?? ""]))
        }
        for file in files {
            try forEachRow(file) { (outcome: RowOutcome) throws(MulanError) in
                report.rows += 1
                switch outcome {
                case .excluded:
                    report.excluded += 1
                case .problem(let reason, let detail, let at):
                    report.rejected += 1
                    try problem(reason, detail, at)
                case .track(let t):
                    if let previous = seen[t.id] {
                        if previous == t.split {
                            report.mergedRows += 1
                        } else {
                            report.rejected += 1
                            try problem(.duplicateTrackID, "already listed with split '\(previous)'; this row says '\(t.split)' (the first is kept)",
                                        t.origin, split: t.split)
                        }
                        return
                    }
                    if let kept, !kept.contains(t.id) {
                        report.excluded += 1
                        seen[t.id] = t.split
                        return
                    }
                    seen[t.id] = t.split
                    report.tracks += 1
                    report.bySplit[t.split, default: .init()].tracks += 1
                    if let path = index.find(paths: t.paths, names: t.names) {
                        report.written += 1
                        report.bySplit[t.split, default: .init()].found += 1
                        let start = segmentsInFile ? t.start.map(Self.number) ?? "" : ""
                        let end = segmentsInFile ? t.end.map(Self.number) ?? "" : ""
                        try out.write(Self.csvLine([t.id, audioRoot + "/" + path, start, end, t.split]))
                    } else {
                        report.audioMissing += 1
                        report.bySplit[t.split, default: .init()].missing += 1
                        let expected = t.paths.first ?? t.names.first.map { "\($0).*" } ?? ""
                        try problem(.audioMissing, "no audio file \(expected) below \(audioRoot)", t.origin, split: t.split)
                    }
                }
            }
        }
        guard report.written > 0 else {
            out.discard()
            bad.discard()
            let hint = format == .musiccaps || format == .audioset
                ? "check --audio-root; files are looked up by name (\(audioNames.joined(separator: ", ")) with any audio extension): pass --audio-name for another naming"
                : "check --audio-root: the files' paths are relative to it (e.g. \(format == .mtat ? "f/…mp3" : "14/214.mp3"))"
            throw MulanError(.data, "none of the \(report.tracks) tracks of \(files.joined(separator: ", ")) has its audio below \(audioRoot)",
                             hint: hint)
        }
        try out.commit()
        try bad.commit()
        return report
    }

    /// The track ids of the corpus files' test split, without looking for audio (a benchmark's test
    /// tracks, for `mulan-shard --hold-out FORMAT:FILE`). Song Describer's are given both as its own
    /// ids and as MTG-Jamendo's (its audio is Jamendo's split-0 test set).
    public func testTracks(files: [String]) throws(MulanError) -> Set<String> {
        var ids = Set<String>()
        var builder = self
        builder.jamendoIDs = false
        for file in files {
            try builder.forEachRow(file) { (outcome: RowOutcome) throws(MulanError) in
                guard case .track(let t) = outcome, t.split == "test" else { return }
                ids.insert(t.id)
                if format == .songDescriber, let n = Int(t.id) { ids.insert(String(format: "track_%07d", n)) }
            }
        }
        return ids
    }

    // MARK: reading the corpus files

    private func forEachRow(_ file: String, _ body: (RowOutcome) throws(MulanError) -> Void) throws(MulanError) {
        let name = (file as NSString).lastPathComponent.lowercased()
        switch format {
        case .mtat:
            try readTable(file, delimiter: 0x09, needed: ["clip_id", "mp3_path"], body) { row, at in
                guard let id = row["clip_id"], !id.isEmpty, let path = row["mp3_path"], !path.isEmpty else {
                    return .problem(.invalidRow, "clip_id or mp3_path is empty", at)
                }
                guard let split = MTATConventions.split(mp3Path: path) else {
                    return .problem(.invalidRow, "mp3_path \(path) does not start with a folder 0–f", at)
                }
                return .track(Track(id: id, paths: [path], split: split, origin: at))
            }
        case .musiccaps:
            try readTable(file, delimiter: 0x2C, needed: ["ytid", "start_s", "end_s"], body) { row, at in
                guard let id = row["ytid"], !id.isEmpty else { return .problem(.invalidRow, "ytid is empty", at) }
                guard let start = Double(row["start_s"] ?? ""), let end = Double(row["end_s"] ?? ""), 0 <= start, start < end else {
                    return .problem(.invalidRow, "start_s/end_s are not seconds with start < end", at)
                }
                let eval = MusicCapsConventions.isAudioSetEval(row["is_audioset_eval"] ?? "")
                return .track(Track(id: id, names: names(ytid: id, start: start, end: end), start: start, end: end,
                                    split: eval ? "test" : "train", origin: at))
            }
        case .audioset:
            let split = AudioSetConventions.split(fileName: name)
            let csv = try CSVReader(path: file, skipInitialSpace: true, comment: 0x23)
            while let record = try csv.next() {
                let at = SourceLocation(file: file, line: record.line, trackID: record.fields.first)
                switch AudioSetConventions.segment(record) {
                case nil: continue
                case .failure(let problem)?: try body(.problem(.invalidRow, problem.detail, at))
                case .success(let s)?:
                    try body(.track(Track(id: s.ytid, names: names(ytid: s.ytid, start: s.start, end: s.end), start: s.start,
                                          end: s.end, split: split, origin: at)))
                }
            }
        case .jamendo:
            let split = JamendoConventions.split(fileName: name) ?? ""
            try readTable(file, delimiter: 0x09, needed: ["TRACK_ID", "PATH"], ragged: true, body) { row, at in
                guard let id = row["TRACK_ID"], !id.isEmpty, let path = row["PATH"], !path.isEmpty else {
                    return .problem(.invalidRow, "TRACK_ID or PATH is empty", at)
                }
                return .track(Track(id: id, paths: JamendoConventions.audioPaths(path), split: split, origin: at))
            }
        case .fma:
            try readFMA(file, body)
        case .songDescriber:
            try readTable(file, delimiter: 0x2C, needed: ["track_id", "path"], body) { row, at in
                guard let id = row["track_id"], !id.isEmpty, let path = row["path"], !path.isEmpty else {
                    return .problem(.invalidRow, "track_id or path is empty", at)
                }
                let track = jamendoIDs ? Int(id).map { String(format: "track_%07d", $0) } : id
                guard let track else { return .problem(.invalidRow, "track_id \(id) is not a number (--jamendo-ids)", at) }
                return .track(Track(id: track, paths: [path], split: "test", origin: at))
            }
        }
    }

    /// Reads a headed CSV/TSV, giving each row as {column: value} to `make`; `ragged`: rows may have
    /// more fields than the header (MTG-Jamendo's tags), which are ignored here.
    private func readTable(_ file: String, delimiter: UInt8, needed: [String], ragged: Bool = false,
                           _ body: (RowOutcome) throws(MulanError) -> Void,
                           make: ([String: String], SourceLocation) -> RowOutcome) throws(MulanError) {
        let csv = try CSVReader(path: file, delimiter: delimiter)
        var header: [String]?
        while let record = try csv.next() {
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            guard let columns = header else {
                let missing = needed.filter { !record.fields.contains($0) }
                if !missing.isEmpty {
                    throw MulanError(.manifest, "the header of this \(format.rawValue) file has no \(missing.joined(separator: ", ")) column",
                                     location: SourceLocation(file: file, line: record.line), hint: "is --format right for this file?")
                }
                header = record.fields
                continue
            }
            let at = SourceLocation(file: file, line: record.line, trackID: record.fields.first)
            if let error = record.error {
                try body(.problem(.invalidRow, error, at))
                continue
            }
            guard record.fields.count == columns.count || (ragged && record.fields.count >= columns.count - 1) else {
                try body(.problem(.invalidRow, "expected \(columns.count) fields, found \(record.fields.count)", at))
                continue
            }
            var row: [String: String] = [:]
            for (k, v) in zip(columns, record.fields) { row[k] = v }
            var outcome = make(row, at)
            if case .problem(let r, let d, var where_) = outcome {
                where_.trackID = row[needed[0]]
                outcome = .problem(r, d, where_)
            } else if case .track(var t) = outcome {
                t.origin.trackID = t.id
                outcome = .track(t)
            }
            try body(outcome)
        }
    }

    /// The `--subset` values a corpus knows.
    public static func subsets(_ format: CorpusFormat) -> [String] {
        switch format {
        case .mtat: ["top50"]
        case .fma: ["small", "medium", "large"]
        default: []
        }
    }

    /// FMA's tracks.csv: two header rows (group, field), an optional index-name line, then one row per track.
    private func readFMA(_ file: String, _ body: (RowOutcome) throws(MulanError) -> Void) throws(MulanError) {
        let csv = try CSVReader(path: file)
        var groups: [String]?, columns: [String]?, sawIndexLine = false
        let order = ["small", "medium", "large"]
        let largest = subset.flatMap { order.firstIndex(of: $0) }
        while let record = try csv.next() {
            if record.isBlank { continue }
            guard let g = groups else { groups = record.fields; continue }
            guard let names = columns else {
                var n = ["track_id"]
                for (group, field) in zip(g, record.fields).dropFirst() { n.append(group + "/" + field) }
                guard g.count == record.fields.count, n.contains("set/split") else {
                    throw MulanError(.manifest, "the header of this fma file is not tracks.csv's two rows (group, then field) with set/split",
                                     location: SourceLocation(file: file, line: record.line),
                                     hint: "pass fma_metadata/tracks.csv as published; is --format right for this file?")
                }
                columns = n
                continue
            }
            if !sawIndexLine {
                sawIndexLine = true
                if record.fields.first == "track_id" && record.fields.dropFirst().allSatisfy(\.isEmpty) { continue }
            }
            let at = SourceLocation(file: file, line: record.line, trackID: record.fields.first)
            guard record.error == nil, record.fields.count == names.count else {
                try body(.problem(.invalidRow, record.error ?? "expected \(names.count) fields, found \(record.fields.count)", at))
                continue
            }
            let row = Dictionary(zip(names, record.fields), uniquingKeysWith: { a, _ in a })
            guard let id = row["track_id"], let number = Int(id), number >= 0 else {
                try body(.problem(.invalidRow, "the track id (first column) is not a number", at))
                continue
            }
            if let largest {
                guard let s = row["set/subset"].flatMap({ order.firstIndex(of: $0) }), s <= largest else {
                    try body(.excluded)
                    continue
                }
            }
            let split = ["training": "train", "validation": "valid", "test": "test"][row["set/split"] ?? ""] ?? ""
            let name = String(format: "%06d", number)
            try body(.track(Track(id: id, paths: ["\(name.prefix(3))/\(name).mp3"], split: split, origin: at)))
        }
    }

    /// The 50 most frequent tags of MTAT annotation files (ties by name) and the clips that have one.
    func mtatTop50(files: [String]) throws(MulanError) -> ([String], Set<String>) {
        var counts: [String: Int] = [:]
        var tagsOf: [String: [String]] = [:]
        for file in files {
            let csv = try CSVReader(path: file, delimiter: 0x09)
            var header: [String]?
            while let record = try csv.next() {
                guard let columns = header else { header = record.fields; continue }
                guard record.error == nil, record.fields.count == columns.count else { continue }
                var id = "", tags: [String] = []
                for (k, v) in zip(columns, record.fields) {
                    if k == "clip_id" { id = v } else if k != "mp3_path" && v == "1" { tags.append(k) }
                }
                for t in tags { counts[t, default: 0] += 1 }
                tagsOf[id] = tags
            }
        }
        let top = MTATConventions.mostFrequent(counts, 50)
        let chosen = Set(top)
        return (Array(top), Set(tagsOf.compactMap { id, tags in tags.contains(where: chosen.contains) ? id : nil }))
    }

    private func names(ytid: String, start: Double, end: Double) -> [String] {
        AudioSetConventions.audioNames(ytid: ytid, start: start, end: end, templates: audioNames)
    }

    /// Seconds as written in a manifest: `30` for a whole number, else the shortest decimal.
    static func number(_ x: Double) -> String { AudioSetConventions.seconds(x) }

    static func csvLine(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",") + "\n"
    }
}

/// The audio files below a folder, found once: by relative path, and by file name without its
/// extension (for corpora whose files are named after a YouTube id).
public struct AudioIndex: Sendable {
    private var paths: Set<String> = []
    private var byStem: [String: String] = [:]

    public init(root: String) throws(MulanError) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw MulanError(.usage, "--audio-root \(root) is not a folder", hint: "pass the folder the corpus's audio was downloaded to")
        }
        for entry in try DirectoryScan(root: root, globs: []).rows() {
            guard case .row(let r) = entry else { continue }
            paths.insert(r.trackID)
            let name = (r.trackID as NSString).lastPathComponent
            let stem = (name as NSString).deletingPathExtension
            if byStem[stem] == nil { byStem[stem] = r.trackID }
        }
    }

    /// The first of `candidates` (paths relative to the root) that exists, else the first file whose
    /// name without extension is one of `names`; relative to the root.
    public func find(paths candidates: [String], names: [String]) -> String? {
        if let p = candidates.first(where: paths.contains) { return p }
        for n in names { if let p = byStem[n] { return p } }
        return nil
    }
}

/// A text file written under `PATH.tmp` and renamed into place by `commit()`.
final class StreamedFile {
    let path: String
    private let handle: FileHandle
    private var buffer = Data()

    init(path: String) throws(MulanError) {
        self.path = path
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: nil),
              let h = FileHandle(forWritingAtPath: path + ".tmp") else {
            throw MulanError(.io, "cannot create \(path).tmp", hint: "check that its folder exists and is writable")
        }
        handle = h
    }

    func write(_ text: String) throws(MulanError) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count > 1 << 20 { try flush() }
    }

    private func flush() throws(MulanError) {
        do { try handle.write(contentsOf: buffer) } catch {
            throw MulanError(.io, "cannot write \(path).tmp", cause: error)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func commit() throws(MulanError) {
        try flush()
        do {
            try handle.close()
        } catch {
            throw MulanError(.io, "cannot write \(path).tmp", cause: error)
        }
        try Durable.rename(path + ".tmp", to: path)
    }

    func discard() {
        try? handle.close()
        unlink(path + ".tmp")
    }
}
