import Foundation
import MulanCore
import MulanFormats

/// The benchmarks of the MuLan paper and its peers, as `mulan-eval --benchmark` presets. A preset
/// only chooses the files' items, tags and split (with the corpora's own rules, `CorpusConventions`);
/// the scores come from `ZeroShotEvaluation` like any other ground truth.
public enum Benchmark: String, Sendable, CaseIterable, Codable {
    case mtatTop50 = "mtat-top50"
    case jamendoTop50 = "jamendo-top50"
    case jamendoGenre = "jamendo-genre"
    case jamendoInstrument = "jamendo-instrument"
    case jamendoMoodTheme = "jamendo-moodtheme"
    case audioSetGen25 = "audioset-gen25"
    case audioSetMu141 = "audioset-mu141"
    case musicCaps = "musiccaps"
    case songDescriber = "song-describer"

    /// The benchmark as the paper's tables name it.
    public var title: String {
        switch self {
        case .mtatTop50: "MTAT top-50"
        case .jamendoTop50: "MTG-Jamendo top-50"
        case .jamendoGenre: "MTG-Jamendo genre"
        case .jamendoInstrument: "MTG-Jamendo instrument"
        case .jamendoMoodTheme: "MTG-Jamendo mood/theme"
        case .audioSetGen25: "AudioSet Gen-25"
        case .audioSetMu141: "AudioSet Mu-141"
        case .musicCaps: "MusicCaps"
        case .songDescriber: "Song Describer"
        }
    }

    /// Caption retrieval (musiccaps, song-describer) rather than zero-shot tagging.
    public var isRetrieval: Bool { self == .musicCaps || self == .songDescriber }

    /// What `--data` takes, for help and messages.
    public var files: String {
        switch self {
        case .mtatTop50: "annotations_final.csv"
        case .jamendoTop50: "splits/split-0/autotagging_top50tags-test.tsv"
        case .jamendoGenre: "splits/split-0/autotagging_genre-test.tsv (or autotagging-test.tsv)"
        case .jamendoInstrument: "splits/split-0/autotagging_instrument-test.tsv (or autotagging-test.tsv)"
        case .jamendoMoodTheme: "splits/split-0/autotagging_moodtheme-test.tsv (or autotagging-test.tsv)"
        case .audioSetGen25, .audioSetMu141: "eval_segments.csv"
        case .musicCaps: "musiccaps-public.csv"
        case .songDescriber: "song_describer.csv"
        }
    }

    /// The Jamendo category a preset keeps (nil: every tag of the file).
    var jamendoCategory: String? {
        switch self {
        case .jamendoGenre: "genre"
        case .jamendoInstrument: "instrument"
        case .jamendoMoodTheme: "mood/theme"
        default: nil
        }
    }
}

/// An item of a benchmark whose audio is not under the audio root.
public struct MissingAudio: Codable, Sendable, Equatable {
    /// The item's id in the corpus files (clip_id, TRACK_ID, YTID, track_id).
    public var item: String
    /// The file looked for (a path below the audio root, or `NAME.*` for a YouTube id).
    public var expected: String
    public var file: String
    public var line: Int
}

/// What a preset chose: the ground truth (tagging) or caption set (retrieval), and the items left out.
public struct BenchmarkSet: Sendable {
    public var benchmark: Benchmark
    /// The split evaluated, as the files give it (`test, folders d–f`, `split-0 test`, …).
    public var split: String
    public var files: [String]
    public var truth: TagGroundTruth?
    public var captions: CaptionSet?
    /// Items of the split (with at least one of the preset's tags) whose audio is missing.
    public var missing: [MissingAudio] = []
    /// The preset's rule for its tags, for the report.
    public var tagRule: String

    /// Items of the benchmark, found or not.
    public var itemsListed: Int {
        missing.count + (truth?.items.count ?? Set((captions?.pairs ?? []).compactMap(\.path)).count)
    }
}

extension BenchmarkSet {
    /// Reads a benchmark's files. `data`: the corpus files (`Benchmark.files`); `audioRoot`: where
    /// their audio is; `labels`: for AudioSet, ontology.json (and class_labels_indices.csv for Mu-141).
    public static func load(_ benchmark: Benchmark, data: [String], audioRoot: String,
                            labels: [String] = []) throws(MulanError) -> BenchmarkSet {
        guard !data.isEmpty else {
            throw MulanError(.usage, "--benchmark \(benchmark.rawValue) needs its file", hint: "pass --data \(benchmark.files)")
        }
        for file in data where !FileManager.default.fileExists(atPath: file) {
            throw MulanError(.usage, "\(file) does not exist", hint: "pass --data \(benchmark.files)")
        }
        let root = Paths.absolute(audioRoot)
        switch benchmark {
        case .mtatTop50: return try mtat(data, root: root)
        case .jamendoTop50, .jamendoGenre, .jamendoInstrument, .jamendoMoodTheme: return try jamendo(benchmark, data, root: root)
        case .audioSetGen25, .audioSetMu141: return try audioSet(benchmark, data, root: root, labels: labels)
        case .musicCaps: return try musicCaps(data, root: root)
        case .songDescriber: return try songDescriber(data, root: root)
        }
    }

    /// A preset's items of every split, for a probe trained and tested on the official splits;
    /// only the presets whose files give train, valid and test (mtat-top50) have them.
    public static func loadAllSplits(_ benchmark: Benchmark, data: [String], audioRoot: String) throws(MulanError) -> BenchmarkSet {
        guard benchmark == .mtatTop50 else {
            throw MulanError(.usage, "--benchmark \(benchmark.rawValue) gives only its test split; the probe needs train, valid and test",
                             hint: "use --benchmark mtat-top50, or a tags CSV with a split column (--csv), or --shards")
        }
        for file in data where !FileManager.default.fileExists(atPath: file) {
            throw MulanError(.usage, "\(file) does not exist", hint: "pass --data \(benchmark.files)")
        }
        return try mtat(data, root: Paths.absolute(audioRoot), allSplits: true)
    }

    private static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// mtat-top50: the 50 most frequent tags of the whole file; the clips of folders d–f that carry
    /// at least one of them.
    /// With `allSplits` (the linear probe), the clips of every folder, each with its split (0–b
    /// train, c valid, d–f test).
    static func mtat(_ data: [String], root: String, allSplits: Bool = false) throws(MulanError) -> BenchmarkSet {
        guard data.count == 1 else {
            throw MulanError(.usage, "mtat-top50 reads one file", hint: "pass --data annotations_final.csv")
        }
        let all = try TagGroundTruth.magnaTagATune(csv: data[0], audioRoot: root)
        var counts: [String: Int] = [:]
        for item in all.items { for t in item.tags { counts[t, default: 0] += 1 } }
        let top = MTATConventions.mostFrequent(counts, 50)
        let chosen = Set(top)
        var set = BenchmarkSet(benchmark: .mtatTop50, split: allSplits ? "train 0–b, valid c, test d–f" : "test, folders d–f",
                               files: data, truth: nil,
                               tagRule: "the \(top.count) most frequent tags of \((data[0] as NSString).lastPathComponent)")
        var items: [TagGroundTruth.Item] = []
        for var item in all.items where (allSplits ? item.split != nil : item.split == "test") && !item.tags.isDisjoint(with: chosen) {
            item.tags.formIntersection(chosen)
            if exists(item.id) {
                items.append(item)
            } else {
                set.missing.append(MissingAudio(item: item.name ?? item.id, expected: item.id, file: data[0],
                                                line: item.origin?.line ?? 0))
            }
        }
        set.truth = TagGroundTruth(items: items, tags: top)
        return set
    }

    /// jamendo-*: the tracks of the given test TSVs, their tags of the preset's category (all of
    /// them for top-50), prompted without the category prefix.
    static func jamendo(_ benchmark: Benchmark, _ data: [String], root: String) throws(MulanError) -> BenchmarkSet {
        var splits: Set<String> = []
        for file in data {
            guard JamendoConventions.split(fileName: file) == "test" else {
                throw MulanError(.usage, "\(file) is not a test split file (autotagging…-test.tsv)",
                                 hint: "\(benchmark.rawValue) evaluates the split-0 test set: pass --data \(benchmark.files)")
            }
            let folder = ((file as NSString).deletingLastPathComponent as NSString).lastPathComponent
            splits.insert(folder.hasPrefix("split-") ? "\(folder) test" : "test")
        }
        var set = BenchmarkSet(benchmark: benchmark, split: splits.sorted().joined(separator: ", "), files: data, truth: nil,
                               tagRule: benchmark.jamendoCategory.map { "the \($0) tags of the files" } ?? "every tag of the files")
        var items: [TagGroundTruth.Item] = []
        var tags: [String] = [], seenTags: Set<String> = [], seenTracks: Set<String> = []
        var words: [String: String] = [:]
        for file in data {
            let csv = try CSVReader(path: file, delimiter: 0x09)
            var fixed: Int?
            var trackColumn = 0, pathColumn = 0
            while let record = try csv.next() {
                if record.isBlank { continue }
                let at = SourceLocation(file: file, line: record.line)
                guard let tagsAt = fixed else {
                    guard let t = record.fields.firstIndex(of: "TAGS"), let id = record.fields.firstIndex(of: "TRACK_ID"),
                          let p = record.fields.firstIndex(of: "PATH") else {
                        throw MulanError(.usage, "the header has no TRACK_ID, PATH and TAGS columns", location: at,
                                         hint: "pass an MTG-Jamendo autotagging TSV (TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS)")
                    }
                    (fixed, trackColumn, pathColumn) = (t, id, p)
                    continue
                }
                guard record.error == nil, record.fields.count > tagsAt else {
                    throw MulanError(.data, record.error ?? "expected \(tagsAt) fields and then the tags, found \(record.fields.count)",
                                     location: at, hint: "fix the row (the file is tab-separated)")
                }
                let track = record.fields[trackColumn], path = record.fields[pathColumn]
                guard seenTracks.insert(track).inserted else { continue }
                var own = Set<String>()
                for field in record.fields[tagsAt...] where !field.isEmpty {
                    guard let (category, name) = JamendoConventions.tag(field) else {
                        throw MulanError(.data, "tag \"\(field)\" is not category---name", location: at, hint: "fix the row")
                    }
                    if let wanted = benchmark.jamendoCategory, wanted != category { continue }
                    own.insert(field)
                    words[field] = name
                    if seenTags.insert(field).inserted { tags.append(field) }
                }
                guard !own.isEmpty else { continue }
                let candidates = JamendoConventions.audioPaths(path).map { root + "/" + $0 }
                if let found = candidates.first(where: exists) {
                    items.append(.init(id: found, audio: .file(found), tags: own, origin: at, name: track, split: "test"))
                } else {
                    set.missing.append(MissingAudio(item: track, expected: candidates[0], file: file, line: record.line))
                }
            }
        }
        if benchmark == .jamendoTop50 && tags.count > 50 {
            throw MulanError(.usage, "the files hold \(tags.count) tags, not the top 50",
                             hint: "pass splits/split-0/autotagging_top50tags-test.tsv (or use jamendo-genre, -instrument, -moodtheme)")
        }
        guard !tags.isEmpty else {
            throw MulanError(.usage, "the files hold no \(benchmark.jamendoCategory ?? "") tag", hint: "pass --data \(benchmark.files)")
        }
        tags.sort()
        set.truth = TagGroundTruth(items: items, tags: tags, words: words)
        return set
    }

    /// audioset-gen25 / -mu141: the eval segments that carry one of the preset's labels.
    static func audioSet(_ benchmark: Benchmark, _ data: [String], root: String,
                         labels files: [String]) throws(MulanError) -> BenchmarkSet {
        var ontology: AudioSetLabels?, classes: AudioSetLabels?
        for f in files {
            let l = try AudioSetLabels.load(path: f)
            if l.hasHierarchy { ontology = l } else { classes = l }
        }
        guard let ontology else {
            throw MulanError(.usage, "\(benchmark.rawValue) takes its labels from the AudioSet ontology",
                             hint: "pass --labels ontology.json\(benchmark == .audioSetMu141 ? " --labels class_labels_indices.csv" : "")")
        }
        let tags: [String]
        let rule: String
        if benchmark == .audioSetGen25 {
            tags = ontology.musicGenres()
            rule = "the children of \"Music genre\" in the ontology"
        } else {
            guard let classes else {
                throw MulanError(.usage, "audioset-mu141 keeps the music labels that are AudioSet classes",
                                 hint: "pass --labels class_labels_indices.csv as well as --labels ontology.json")
            }
            tags = ontology.musicLabels(classes: classes)
            rule = "the classes of the \"Music\" subtree without \"Music role\""
        }
        guard !tags.isEmpty else {
            throw MulanError(.usage, "the ontology has no \(benchmark == .audioSetGen25 ? "\"Music genre\"" : "\"Music\"") labels",
                             hint: "pass AudioSet's ontology.json")
        }
        for file in data where AudioSetConventions.split(fileName: file) != "test" {
            throw MulanError(.usage, "\(file) is not an eval segment file", hint: "pass --data eval_segments.csv")
        }
        let chosen = Set(tags)
        var words: [String: String] = [:]
        for t in tags { words[t] = ontology.name(of: t) ?? classes?.name(of: t) ?? t }
        var set = BenchmarkSet(benchmark: benchmark, split: "eval segments", files: data, truth: nil,
                               tagRule: rule)
        let index = try AudioIndex(root: root)
        var items: [TagGroundTruth.Item] = []
        var seen: Set<String> = []
        for file in data {
            let csv = try CSVReader(path: file, skipInitialSpace: true, comment: 0x23)
            while let record = try csv.next() {
                let at = SourceLocation(file: file, line: record.line)
                switch AudioSetConventions.segment(record) {
                case nil: continue
                case .failure(let problem)?: throw MulanError(.data, problem.detail, location: at, hint: "fix the row")
                case .success(let s)?:
                    let own = Set(s.labels).intersection(chosen)
                    guard !own.isEmpty, seen.insert(s.ytid).inserted else { continue }
                    if let found = index.find(paths: [], names: AudioSetConventions.audioNames(ytid: s.ytid, start: s.start, end: s.end)) {
                        let full = root + "/" + found
                        items.append(.init(id: full, audio: .file(full), tags: own, origin: at, name: s.ytid, split: "test"))
                    } else {
                        set.missing.append(MissingAudio(item: s.ytid, expected: s.ytid + ".*", file: file, line: s.line))
                    }
                }
            }
        }
        set.truth = TagGroundTruth(items: items, tags: tags, words: words)
        return set
    }

    /// musiccaps: the captions of the rows with is_audioset_eval true; audio by YouTube id.
    static func musicCaps(_ data: [String], root: String) throws(MulanError) -> BenchmarkSet {
        let index = try AudioIndex(root: root)
        var set = BenchmarkSet(benchmark: .musicCaps, split: "test, is_audioset_eval", files: data, truth: nil,
                               tagRule: "one caption per row")
        var pairs: [CaptionSet.Pair] = []
        for file in data {
            try table(file, needed: ["ytid", "start_s", "end_s", "caption", "is_audioset_eval"]) { row, line throws(MulanError) in
                guard MusicCapsConventions.isAudioSetEval(row["is_audioset_eval"] ?? "") else { return }
                let ytid = row["ytid"] ?? "", caption = row["caption"] ?? ""
                guard !ytid.isEmpty, let start = Double(row["start_s"] ?? ""), let end = Double(row["end_s"] ?? ""),
                      !caption.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    throw MulanError(.data, "ytid, start_s, end_s or caption is empty or not a number",
                                     location: SourceLocation(file: file, line: line), hint: "fix the row")
                }
                if let found = index.find(paths: [], names: AudioSetConventions.audioNames(ytid: ytid, start: start, end: end)) {
                    pairs.append(.init(path: root + "/" + found, key: nil, caption: caption, line: line))
                } else {
                    set.missing.append(MissingAudio(item: ytid, expected: ytid + ".*", file: file, line: line))
                }
            }
        }
        set.captions = CaptionSet(file: data[0], pairs: pairs)
        return set
    }

    /// song-describer: every caption, with the track's audio (`path` below the audio root); a
    /// caption id given twice is read once.
    static func songDescriber(_ data: [String], root: String) throws(MulanError) -> BenchmarkSet {
        var set = BenchmarkSet(benchmark: .songDescriber, split: "test, all captions", files: data, truth: nil,
                               tagRule: "every caption of each track")
        var pairs: [CaptionSet.Pair] = []
        var captionIDs: Set<String> = [], missingTracks: Set<String> = []
        for file in data {
            try table(file, needed: ["caption_id", "track_id", "caption", "path"]) { row, line throws(MulanError) in
                let id = row["caption_id"] ?? "", track = row["track_id"] ?? "", path = row["path"] ?? ""
                let caption = row["caption"] ?? ""
                guard !track.isEmpty, !path.isEmpty, !caption.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                    throw MulanError(.data, "track_id, path or caption is empty", location: SourceLocation(file: file, line: line),
                                     hint: "fix the row")
                }
                guard captionIDs.insert(id).inserted else { return }
                let full = root + "/" + path
                if exists(full) {
                    pairs.append(.init(path: full, key: nil, caption: caption, line: line))
                } else if missingTracks.insert(track).inserted {
                    set.missing.append(MissingAudio(item: track, expected: full, file: file, line: line))
                }
            }
        }
        set.captions = CaptionSet(file: data[0], pairs: pairs)
        return set
    }

    /// Rows of a headed CSV as {column: value}, with their line.
    private static func table(_ file: String, needed: [String],
                              _ body: ([String: String], Int) throws(MulanError) -> Void) throws(MulanError) {
        let csv = try CSVReader(path: file)
        var header: [String]?
        while let record = try csv.next() {
            if record.isBlank { continue }
            guard let columns = header else {
                let missing = needed.filter { !record.fields.contains($0) }
                guard missing.isEmpty else {
                    throw MulanError(.usage, "the header has no \(missing.joined(separator: ", ")) column",
                                     location: SourceLocation(file: file, line: record.line), hint: "is --benchmark right for this file?")
                }
                header = record.fields
                continue
            }
            guard record.error == nil, record.fields.count == columns.count else {
                throw MulanError(.data, record.error ?? "expected \(columns.count) fields, found \(record.fields.count)",
                                 location: SourceLocation(file: file, line: record.line), hint: "fix the row")
            }
            try body(Dictionary(zip(columns, record.fields), uniquingKeysWith: { a, _ in a }), record.line)
        }
    }
}
