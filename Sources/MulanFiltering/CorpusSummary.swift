import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanText

/// A description sentence's place in the global order in which "earlier in the source" is meant:
/// texts read from audio containers first (by the track's manifest file and line), then texts
/// loaded from annotation files (by file and line); then track id, the text's catalog id and the
/// sentence's position among the text's checked sentences. Everything but the catalog id is the
/// same whichever part holds the text, and the catalog id only orders texts of one track, which
/// always share a part. Strings compare by their UTF-8 bytes, as SQLite's BINARY collation does.
struct CandidateKey {
    var container: Bool
    var file: String
    var line: Int
    var track: String
    var rawTextID: Int
    var ordinal: Int

    static func precedes(_ a: CandidateKey, _ b: CandidateKey) -> Bool {
        if a.container != b.container { return a.container }
        if a.file != b.file { return a.file.utf8.lexicographicallyPrecedes(b.file.utf8) }
        if a.line != b.line { return a.line < b.line }
        if a.track != b.track { return a.track.utf8.lexicographicallyPrecedes(b.track.utf8) }
        if a.rawTextID != b.rawTextID { return a.rawTextID < b.rawTextID }
        return a.ordinal < b.ordinal
    }
}

/// The description filter's duplicate index during the local phase: it answers "not seen" and
/// records each checked sentence (its exact hash, MinHash signature and bands) in the run's own
/// summary (`TextFilterStore.recordCandidate`), so that the global phase can replay every part's
/// sentences in the global order and find the real answers.
final class CandidateRecorder: SentenceIndex {
    private let store: TextFilterStore
    private var key = CandidateKey(container: false, file: "", line: 0, track: "", rawTextID: 0, ordinal: 0)
    private var exact: UInt64 = 0
    private(set) var recorded = 0

    init(store: TextFilterStore) {
        self.store = store
    }

    /// The text whose sentences come next.
    func begin(_ key: CandidateKey) {
        self.key = key
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        exact = hash
        return false
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        try store.recordCandidate(SentenceCandidate(container: key.container, file: key.file, line: key.line,
                                                    trackID: key.track, rawTextID: key.rawTextID, ordinal: key.ordinal,
                                                    exact: exact, signature: DuplicateReplay.hex(signature),
                                                    bands: DuplicateReplay.hex(bands)))
        key.ordinal += 1
        recorded += 1
        return false
    }
}

/// Finds description duplicates as one process reading the whole source in the global order
/// would: every part's checked sentences are merged in `CandidateKey` order and put through the
/// same index (`SQLiteSentenceIndex`) the filter uses; the answers for this part's sentences are
/// kept (`TextFilterStore.recordDuplicateOutcome`) and patched into its decisions.
enum DuplicateReplay {
    static func hex(_ values: [UInt64]) -> String { SQLiteSentenceIndex.hex(values) }
    static func numbers(_ text: String) -> [UInt64] { SQLiteSentenceIndex.numbers(text) }

    /// Replays every part's candidates; `own` is the index of this part's summary in `summaries`.
    static func run(_ store: TextFilterStore, summaries: [TextFilterSummary], own: Int, threshold: Double, total: Int?,
                    console: Console) throws {
        try store.resetDuplicateOutcomes()
        let index = try SQLiteSentenceIndex(store: store)
        var count = total ?? 0
        if total == nil {
            for s in summaries { count += try s.candidateCount() }
        }
        let progress = ProgressMeter(total: count, unit: "sentences", console: console)
        var merge = try CandidateMerge(summaries)
        while let (candidate, source) = try merge.next() {
            var reason: String?
            if try index.seenExact(candidate.exact) {
                reason = "duplicate"
            } else if try index.nearDuplicate(signature: numbers(candidate.signature), bands: numbers(candidate.bands),
                                              threshold: threshold) {
                reason = "near-duplicate"
            }
            if let reason, source == own {
                try store.recordDuplicateOutcome(rawTextID: candidate.key.rawTextID, ordinal: candidate.key.ordinal,
                                                 reason: reason)
            }
            progress.advance()
        }
        progress.finish()
    }

    /// The details of one sentence, as `DescriptionFilter` writes them.
    private struct SentenceDetail: Decodable {
        var sentence: String
        var reason: String
        var relevance: Double?
    }

    /// Applies the replay's answers to this part's decisions: the sentences found to be duplicates
    /// are dropped with their reason, and each changed text is rebuilt exactly as the description
    /// filter builds it (kept sentences joined, their token ids, details). Returns the number of
    /// sentences newly dropped, by reason.
    static func patch(_ store: TextFilterStore, version: String, tokenizer: BertTokenizer) throws -> [String: Int] {
        var dropped: [String: Int] = [:]
        var current: Int?
        var answers: [Int: String] = [:]
        func flush() throws {
            guard let id = current else { return }
            try rewrite(store, version: version, rawTextID: id, answers: answers, tokenizer: tokenizer)
            for reason in answers.values { dropped[reason, default: 0] += 1 }
        }
        try store.forEachDuplicateOutcome { id, ordinal, reason in
            if id != current {
                try flush()
                current = id
                answers = [:]
            }
            answers[ordinal] = reason
        }
        try flush()
        return dropped
    }

    private static func rewrite(_ store: TextFilterStore, version: String, rawTextID: Int, answers: [Int: String],
                                tokenizer: BertTokenizer) throws {
        guard let row = try store.decisionDetails(version: version, rawTextID: rawTextID), let details = row.details else {
            throw MulanError(.internalError, "the decision of raw text \(rawTextID) in \(version) is missing")
        }
        var sentences = try JSONDecoder().decode([SentenceDetail].self, from: Data(details.utf8))
        var checked = 0
        for i in sentences.indices where sentences[i].reason == "kept" {
            if let reason = answers[checked] { sentences[i].reason = reason }
            checked += 1
        }
        let kept = sentences.filter { $0.reason == "kept" }.map(\.sentence)
        let joined = kept.joined(separator: " ")
        let items = sentences.map { s -> String in
            var item = "{\"sentence\":\(JSONText.quote(s.sentence)),\"reason\":\"\(s.reason)\""
            if let score = s.relevance { item += String(format: ",\"relevance\":%.4f", score) }
            return item + "}"
        }
        let ids = kept.isEmpty ? [] : tokenizer.encode(joined)
        try store.updateDecision(version: version, rawTextID: rawTextID, kept: !kept.isEmpty,
                                 reason: kept.isEmpty ? "no-sentence-kept" : "kept",
                                 normalized: kept.isEmpty ? TextNormalizer.normalize(row.text ?? "") : joined,
                                 tokenIDs: kept.isEmpty ? nil : ids, details: "[" + items.joined(separator: ",") + "]")
    }
}

/// One checked sentence read back from a summary.
struct Candidate {
    var key: CandidateKey
    var exact: UInt64
    var signature: String
    var bands: String
}

/// Merges the summaries' candidates (each read in `CandidateKey` order) into one ordered stream,
/// with a binary heap over the sources' next rows.
struct CandidateMerge {
    private var cursors: [SentenceCandidateCursor] = []
    private var heap: [(candidate: Candidate, source: Int)] = []

    init(_ summaries: [TextFilterSummary]) throws {
        for (i, s) in summaries.enumerated() {
            let cursor = try s.candidates()
            cursors.append(cursor)
            if let c = try Self.read(cursor) { push((c, i)) }
        }
    }

    private static func read(_ cursor: SentenceCandidateCursor) throws -> Candidate? {
        guard let c = try cursor.next() else { return nil }
        return Candidate(key: CandidateKey(container: c.container, file: c.file, line: c.line, track: c.trackID,
                                           rawTextID: c.rawTextID, ordinal: c.ordinal),
                         exact: c.exact, signature: c.signature, bands: c.bands)
    }

    private static func less(_ a: (candidate: Candidate, source: Int), _ b: (candidate: Candidate, source: Int)) -> Bool {
        if CandidateKey.precedes(a.candidate.key, b.candidate.key) { return true }
        if CandidateKey.precedes(b.candidate.key, a.candidate.key) { return false }
        return a.source < b.source
    }

    private mutating func push(_ item: (candidate: Candidate, source: Int)) {
        heap.append(item)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The next candidate in the global order and the index of the summary it came from.
    mutating func next() throws -> (Candidate, Int)? {
        guard let top = heap.first else { return nil }
        if let following = try Self.read(cursors[top.source]) {
            heap[0] = (following, top.source)
        } else {
            let last = heap.removeLast()
            if heap.isEmpty { return (top.candidate, top.source) }
            heap[0] = last
        }
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count && Self.less(heap[l], heap[smallest]) { smallest = l }
            if r < heap.count && Self.less(heap[r], heap[smallest]) { smallest = r }
            if smallest == i { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        return (top.candidate, top.source)
    }
}
