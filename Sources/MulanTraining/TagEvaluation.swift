import Foundation
import MulanCore
import MulanFormats
import MulanRecords

/// Ground truth for zero-shot tagging: items (audio files or shard clips) and, per tag name, which
/// items carry it.
public struct TagGroundTruth: Sendable {
    public struct Item: Sendable {
        /// The absolute audio path (CSV) or the shard key.
        public var id: String
        public var audio: AudioItem?
        public var tags: Set<String>
        /// Where the item was declared (CSV file and line), for messages.
        public var origin: SourceLocation?
        /// The item's id in the corpus's own files (MTAT clip_id, Jamendo TRACK_ID, YouTube id).
        public var name: String?
        /// The corpus's official split of the item, where its files tell (MTAT's folders).
        public var split: String?

        public init(id: String, audio: AudioItem?, tags: Set<String>, origin: SourceLocation?, name: String? = nil,
                    split: String? = nil) {
            self.id = id
            self.audio = audio
            self.tags = tags
            self.origin = origin
            self.name = name
            self.split = split
        }
    }

    public var items: [Item]
    /// Tag names in a stable order (CSV column order, or sorted shard tag texts).
    public var tags: [String]
    /// The words a tag stands for in a prompt, where they differ from the tag (`genre---rock` →
    /// `rock`, `/m/064t9` → `Pop music`).
    public var words: [String: String] = [:]

    public init(items: [Item], tags: [String], words: [String: String] = [:]) {
        self.items = items
        self.tags = tags
        self.words = words
    }

    /// The text embedded for `tag`: `prompt` with `{tag}` replaced by the tag's words.
    public func prompt(_ tag: String, _ prompt: String) -> String {
        prompt.replacingOccurrences(of: "{tag}", with: words[tag] ?? tag)
    }

    /// A MagnaTagATune-style `annotations_final.csv`: tab-separated (commas are accepted too), a
    /// header with `clip_id`, the tag columns (0/1) and `mp3_path`, which is resolved under `audioRoot`.
    /// An optional `split` column (train, valid, test) gives each clip's split; without it, MTAT's
    /// folders do (0–b train, c valid, d–f test).
    public static func magnaTagATune(csv path: String, audioRoot: String) throws(MulanError) -> TagGroundTruth {
        guard let head = FileManager.default.contents(atPath: path)?.prefix(65536) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --csv")
        }
        let firstLine = head.prefix { $0 != 0x0A }
        let delimiter: UInt8 = firstLine.contains(0x09) ? 0x09 : 0x2C
        let reader = try CSVReader(path: path, delimiter: delimiter)
        var header: [String]?
        var items: [Item] = []
        var tagColumns: [(index: Int, name: String)] = []
        var pathColumn = 0
        var clipColumn: Int?
        var splitColumn: Int?
        let root = Paths.absolute(audioRoot)
        while let record = try reader.next() {
            let location = SourceLocation(file: path, line: record.line)
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            if let error = record.error {
                throw MulanError(.data, error, location: location, hint: "fix the CSV")
            }
            guard let columns = header else {
                let names = record.fields.map { $0.trimmingCharacters(in: .whitespaces) }
                guard let p = names.firstIndex(of: "mp3_path") else {
                    throw MulanError(.usage, "the header has no mp3_path column (it has: \(names.prefix(8).joined(separator: ", "))\(names.count > 8 ? ", …" : ""))",
                                     location: location,
                                     hint: "pass a MagnaTagATune-style annotations CSV: clip_id, tag columns of 0/1, mp3_path (tab-separated)")
                }
                guard names.contains("clip_id") else {
                    throw MulanError(.usage, "the header has no clip_id column", location: location,
                                     hint: "pass a MagnaTagATune-style annotations CSV: clip_id, tag columns of 0/1, mp3_path (tab-separated)")
                }
                pathColumn = p
                clipColumn = names.firstIndex(of: "clip_id")
                splitColumn = names.firstIndex(of: "split")
                tagColumns = names.enumerated().filter { !["clip_id", "mp3_path", "split"].contains($0.element) && !$0.element.isEmpty }
                    .map { ($0.offset, $0.element) }
                guard !tagColumns.isEmpty else {
                    throw MulanError(.usage, "the header names no tag column", location: location)
                }
                header = names
                continue
            }
            guard record.fields.count == columns.count else {
                throw MulanError(.data, "expected \(columns.count) fields as in the header, found \(record.fields.count)",
                                 location: location, hint: "fix the row (is the delimiter a tab throughout?)")
            }
            let relative = record.fields[pathColumn]
            guard !relative.isEmpty else {
                throw MulanError(.data, "mp3_path is empty", location: location, hint: "fix the row or remove it")
            }
            var tags = Set<String>()
            for (index, name) in tagColumns {
                switch record.fields[index] {
                case "1": tags.insert(name)
                case "0", "": break
                case let other:
                    throw MulanError(.data, "tag column \(name) holds \"\(other)\", expected 0 or 1", location: location,
                                     hint: "fix the row")
                }
            }
            let full = relative.hasPrefix("/") ? relative : root + "/" + relative
            var split = MTATConventions.split(mp3Path: relative)
            if let splitColumn {
                let value = record.fields[splitColumn].trimmingCharacters(in: .whitespaces)
                guard ["train", "valid", "test"].contains(value) else {
                    throw MulanError(.data, "split \"\(value)\" is not train, valid or test", location: location,
                                     hint: "fix the row's split column")
                }
                split = value
            }
            items.append(Item(id: full, audio: .file(full), tags: tags, origin: location,
                              name: clipColumn.map { record.fields[$0] }, split: split))
        }
        guard !items.isEmpty else {
            throw MulanError(.usage, "\(path) has no rows", hint: "pass an annotations CSV with at least one clip")
        }
        return TagGroundTruth(items: items, tags: tagColumns.map(\.name))
    }

    /// The clips of a shard split with their `tags` texts.
    public static func shards(_ split: DatasetSplit) throws(MulanError) -> TagGroundTruth {
        let clips = try Embedder.clips(of: split)
        var all = Set<String>()
        let items = clips.map { clip in
            let tags = Set((clip.record.texts[TextSource.tags.rawValue] ?? []).map(\.text))
            all.formUnion(tags)
            return Item(id: clip.key, audio: .shard(split, clip), tags: tags, origin: nil)
        }
        guard !all.isEmpty else {
            throw MulanError(.usage, "split '\(split.name)' of \(split.directory) has no tag texts to evaluate against",
                             hint: "shard a dataset whose tracks have tags (mulan-filter --source tags), or pass --csv")
        }
        return TagGroundTruth(items: items, tags: all.sorted())
    }

    /// Keeps only `names` (in that order); every name must be a tag of the ground truth.
    public func restricted(to names: [String], listedIn file: String) throws(MulanError) -> TagGroundTruth {
        let known = Set(tags)
        for (i, n) in names.enumerated() where !known.contains(n) {
            throw MulanError(.usage, "tag \"\(n)\" is not in the ground truth", location: SourceLocation(file: file, line: i + 1),
                             hint: "use the tag names of the CSV header or of the shards")
        }
        return TagGroundTruth(items: items, tags: names, words: words)
    }
}

public enum ZeroShotEvaluation {
    /// Scores every tag (row of `tagEmbeddings`) against every item (row of `audio`, both unit norm,
    /// `dim` wide): per-tag ROC-AUC and average precision, macro ROC-AUC and mAP over the tags that
    /// have both positive and negative items (as `Trainer.evaluate` does).
    ///
    /// `exclusive` (groups of tag indices, each tag in one group at most) adds, for the tags of a
    /// group, the figures of their scores among the group (`exclusiveScores` at `temperature`).
    public static func tagging(tags: [String], tagEmbeddings: [Float], audio: [Float], dim: Int,
                               labels: [Set<String>], exclusive: [[Int]] = [], temperature: Float = 1) -> TaggingReport {
        let n = labels.count
        let scores = tags.indices.map { k in
            let query = Array(tagEmbeddings[(k * dim)..<((k + 1) * dim)])
            return (0..<n).map { i in SimilaritySearch.dot(query, audio[(i * dim)..<((i + 1) * dim)]) }
        }
        var report = figures(tags: tags, labels: labels) { scores[$0] }
        guard !exclusive.isEmpty else { return report }
        let grouped = exclusiveScores(scores, groups: exclusive, temperature: temperature)
        let among = figures(tags: tags, labels: labels) { grouped[$0] }
        for k in tags.indices where grouped[k] != nil {
            report.perTag[k].exclusiveROCAUC = among.perTag[k].rocAUC
            report.perTag[k].exclusiveAveragePrecision = among.perTag[k].averagePrecision
        }
        report.exclusiveGroups = exclusive.map { $0.map { tags[$0] } }
        report.exclusiveTemperature = Double(temperature)
        return report
    }

    /// The scores of the tags of each group among the group: per item, log p(tag | item) =
    /// s/τ − log Σ exp(s'/τ) over the group's similarities s' (the model's softmax over the group's
    /// prompts, as CLIP-style zero-shot classification picks one class of several). What an item's
    /// audio shares with every prompt of the group (its recording, its instrument samples) cancels;
    /// only the group's prompts compete. `scores[k][i]` is tag k's similarity with item i; the result
    /// holds the rows of the grouped tags.
    public static func exclusiveScores(_ scores: [[Float]], groups: [[Int]], temperature: Float) -> [Int: [Float]] {
        var out: [Int: [Float]] = [:]
        let tau = Double(temperature)
        for group in groups {
            guard let first = group.first else { continue }
            let n = scores[first].count
            var logSum = [Double](repeating: 0, count: n)
            for i in 0..<n {
                let z = group.map { Double(scores[$0][i]) / tau }
                let top = z.max() ?? 0
                logSum[i] = top + Foundation.log(z.reduce(0) { $0 + Foundation.exp($1 - top) })
            }
            for k in group { out[k] = (0..<n).map { Float(Double(scores[k][$0]) / tau - logSum[$0]) } }
        }
        return out
    }

    /// The tag indices of `--exclusive` groups: every name a tag of the ground truth, no tag in two
    /// groups, at least two tags per group.
    public static func exclusiveGroups(_ groups: [[String]], tags: [String]) throws(MulanError) -> [[Int]] {
        var index: [String: Int] = [:]
        for (k, t) in tags.enumerated() { index[t] = k }
        var seen = Set<String>()
        var out: [[Int]] = []
        for group in groups {
            guard Set(group).count >= 2 else {
                throw MulanError(.usage, "--exclusive \(group.joined(separator: ",")) names fewer than two distinct tags",
                                 hint: "list the mutually exclusive tags of one group, comma-separated (e.g. --exclusive major,minor)")
            }
            var ks: [Int] = []
            for name in group where !ks.contains(where: { tags[$0] == name }) {
                guard let k = index[name] else {
                    let known = tags.prefix(12).joined(separator: ", ") + (tags.count > 12 ? ", …" : "")
                    throw MulanError(.usage, "--exclusive names \"\(name)\", which is not a tag of the ground truth (\(known))",
                                     hint: "use the tag names of the CSV header or of the shards")
                }
                guard seen.insert(name).inserted else {
                    throw MulanError(.usage, "tag \"\(name)\" is in two --exclusive groups",
                                     hint: "put each tag in one group at most")
                }
                ks.append(k)
            }
            out.append(ks)
        }
        return out
    }

    /// Per-tag ROC-AUC and average precision of the items' `scores(k)` for tag k (nil: the tag has
    /// no scores, and is left out as a tag without positives or negatives is); macro ROC-AUC and
    /// mAP over the tags scored.
    public static func figures(tags: [String], labels: [Set<String>], scores: (Int) -> [Float]?) -> TaggingReport {
        let n = labels.count
        var perTag: [TaggingReport.PerTag] = []
        var skipped: [String] = []
        var aucs: [Double] = [], aps: [Double] = []
        for (k, tag) in tags.enumerated() {
            let truth = labels.map { $0.contains(tag) }
            let s = scores(k)
            let auc = s.flatMap { RetrievalMetrics.rocAUC(scores: $0, labels: truth) }
            let ap = auc == nil ? nil : s.flatMap { RetrievalMetrics.averagePrecision(scores: $0, labels: truth) }
            perTag.append(.init(tag: tag, positives: truth.filter { $0 }.count, rocAUC: auc, averagePrecision: ap))
            if let auc, let ap {
                aucs.append(auc)
                aps.append(ap)
            } else {
                skipped.append(tag)
            }
        }
        return TaggingReport(items: n, tagsScored: aucs.count, tagsSkipped: skipped,
                             macroROCAUC: aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count),
                             meanAveragePrecision: aps.isEmpty ? nil : aps.reduce(0, +) / Double(aps.count),
                             perTag: perTag)
    }

    /// Text→audio and audio→text Recall@1/5/10 and median rank of `n` pairs (row i of `text` is the
    /// caption of row i of `audio`). Pairs with the same caption text count as relevant to each
    /// other, as in `Trainer.evaluate`.
    public static func retrieval(captions: [String], text: [Float], audio: [Float], dim: Int) -> CaptionRetrievalReport {
        let n = captions.count
        var similarity = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            let a = Array(audio[(i * dim)..<((i + 1) * dim)])
            for j in 0..<n { similarity[i * n + j] = SimilaritySearch.dot(a, text[(j * dim)..<((j + 1) * dim)]) }
        }
        var groupOf: [String: Int] = [:]
        let groups = captions.map { c in
            if let g = groupOf[c] { return g }
            groupOf[c] = groupOf.count
            return groupOf.count - 1
        }
        func figures(_ ranks: [Int]) -> EvaluationResult.Retrieval {
            .init(recallAt1: RetrievalMetrics.recall(at: 1, ranks: ranks), recallAt5: RetrievalMetrics.recall(at: 5, ranks: ranks),
                  recallAt10: RetrievalMetrics.recall(at: 10, ranks: ranks), medianRank: RetrievalMetrics.median(ranks))
        }
        return CaptionRetrievalReport(
            pairs: n, tracks: nil,
            textToAudio: figures(RetrievalMetrics.diagonalRanks(similarity, n: n, transpose: true, groups: groups)),
            audioToText: figures(RetrievalMetrics.diagonalRanks(similarity, n: n, groups: groups)))
    }
}

extension ZeroShotEvaluation {
    /// Text→audio and audio→text retrieval when a track may have several captions: `captionTrack[c]`
    /// is the track (row of `audio`, `tracks` rows) of caption c (row of `text`).
    ///
    /// - text→audio: every caption is a query over the distinct tracks, its own track the one
    ///   relevant item (a track with three captions counts three times);
    /// - audio→text: every track is a query over all captions, any of its own captions relevant:
    ///   its rank is that of its best-ranked caption, among the other tracks' captions.
    ///
    /// Ties with an irrelevant item count against the query, as in `RetrievalMetrics.diagonalRanks`.
    public static func trackRetrieval(captionTrack: [Int], text: [Float], audio: [Float], tracks: Int,
                                      dim: Int) -> CaptionRetrievalReport {
        let n = captionTrack.count
        var similarity = [Float](repeating: 0, count: n * tracks)   // caption × track
        for c in 0..<n {
            let q = Array(text[(c * dim)..<((c + 1) * dim)])
            for t in 0..<tracks { similarity[c * tracks + t] = SimilaritySearch.dot(q, audio[(t * dim)..<((t + 1) * dim)]) }
        }
        let textRanks = (0..<n).map { c in
            let positive = similarity[c * tracks + captionTrack[c]]
            return 1 + (0..<tracks).filter { $0 != captionTrack[c] && similarity[c * tracks + $0] >= positive }.count
        }
        let audioRanks = (0..<tracks).compactMap { t -> Int? in
            let own = (0..<n).filter { captionTrack[$0] == t }
            guard let best = own.map({ similarity[$0 * tracks + t] }).max() else { return nil }
            return 1 + (0..<n).filter { captionTrack[$0] != t && similarity[$0 * tracks + t] >= best }.count
        }
        func figures(_ ranks: [Int]) -> EvaluationResult.Retrieval {
            .init(recallAt1: RetrievalMetrics.recall(at: 1, ranks: ranks), recallAt5: RetrievalMetrics.recall(at: 5, ranks: ranks),
                  recallAt10: RetrievalMetrics.recall(at: 10, ranks: ranks), medianRank: RetrievalMetrics.median(ranks))
        }
        return CaptionRetrievalReport(pairs: n, tracks: tracks, textToAudio: figures(textRanks), audioToText: figures(audioRanks))
    }
}

/// A caption set: JSONL lines with `caption` and the audio as `path` (relative to `audioRoot`, or
/// the file's folder) or `key` (a shard key).
public struct CaptionSet: Sendable {
    public struct Pair: Sendable {
        public var path: String?
        public var key: String?
        public var caption: String
        public var line: Int

        public init(path: String?, key: String?, caption: String, line: Int) {
            self.path = path
            self.key = key
            self.caption = caption
            self.line = line
        }
    }

    public init(file: String, pairs: [Pair]) {
        self.file = file
        self.pairs = pairs
    }

    public var file: String
    public var pairs: [Pair]

    public init(path: String, audioRoot: String?) throws(MulanError) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --captions (UTF-8 JSONL)")
        }
        let root = Paths.absolute(audioRoot ?? (Paths.absolute(path) as NSString).deletingLastPathComponent)
        var pairs: [Pair] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let location = SourceLocation(file: path, line: i + 1)
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw MulanError(.data, "not a JSON object", location: location, hint: "one {\"path\" or \"key\", \"caption\"} object per line")
            }
            guard let caption = object["caption"] as? String, !caption.isEmpty else {
                throw MulanError(.data, "no \"caption\" string", location: location, hint: "one {\"path\" or \"key\", \"caption\"} object per line")
            }
            let p = (object["path"] as? String).map { $0.hasPrefix("/") ? $0 : root + "/" + $0 }
            let key = object["key"] as? String
            guard p != nil || key != nil else {
                throw MulanError(.data, "neither \"path\" nor \"key\"", location: location, hint: "name the audio of each caption")
            }
            pairs.append(Pair(path: p.map(Paths.absolute), key: key, caption: caption, line: i + 1))
        }
        guard !pairs.isEmpty else { throw MulanError(.usage, "\(path) holds no captions") }
        file = path
        self.pairs = pairs
    }
}
