import Foundation
import MulanCore

/// `mulan-search`'s job: ranks an index's audio rows by cosine similarity with a text query or an
/// audio file, embedded by the model that made the index. The command parses the options into this
/// configuration, opens the model (`openModel`) and prints the result.
public struct SearchJob {
    public enum Query: Sendable {
        /// A text, embedded with the index's vocabulary (or `--vocab`).
        case text(String)
        /// An audio file, embedded as mulan-embed does; its own row is left out of the ranking.
        case like(String)
    }

    /// Opens the model: the given checkpoint, else the index's (`fallbackCheckpoint`).
    public typealias OpenModel = (_ fallbackCheckpoint: String?, _ fallbackVocabulary: String?) throws(MulanError) -> Embedder

    /// An index folder written by mulan-embed.
    public var index: String
    public var query: Query
    /// How many results.
    public var top: Int

    public init(index: String, query: Query, top: Int) {
        self.index = index
        self.query = query
        self.top = top
    }

    public func run(openModel: OpenModel) throws(MulanError) -> SearchResult {
        let idx = try EmbeddingIndex(directory: index)
        let embedder = try openModel(idx.info.checkpoint, idx.info.vocabulary)
        try idx.checkSameModel(embedder)
        let vector: [Float]
        var candidates = idx.rows.filter { $0.kind == .audio }.map(\.row)
        var result = SearchResult(index: Paths.absolute(index), results: [])
        switch query {
        case .text(let query):
            result.query = query
            vector = try embedder.embed(texts: [query])
        case .like(let like):
            let path = Paths.absolute(like)
            result.like = path
            switch embedder.embed(audio: [.file(path)]).first {
            case .embedded(_, let e)?:
                vector = e
            case .failed(let f)?:
                throw MulanError(.media, "cannot embed --like \(path): \(f.reason): \(f.detail)")
            case nil:
                throw MulanError(.internalError, "no outcome for --like \(path)")
            }
            candidates.removeAll { idx.rows[$0].path == path }
        }
        let ranked = SimilaritySearch.rank(query: vector, in: idx, candidates: candidates, top: top)
        result.results = ranked.enumerated().map { i, r in
            let row = idx.rows[r.row]
            return SearchResult.Hit(rank: i + 1, score: r.score, row: r.row, path: row.path, shard: row.shard, key: row.key,
                                    track: row.track, label: row.label)
        }
        return result
    }
}

/// What `mulan-search` found: the ranked audio rows, and the query they answer.
public struct SearchResult: Encodable, Sendable {
    public struct Hit: Encodable, Sendable {
        public var rank: Int
        public var score: Float
        public var row: Int
        public var path: String?
        public var shard: String?
        public var key: String?
        public var track: String?
        public var label: String
    }

    /// The index folder (absolute).
    public var index: String
    /// The text query, or the audio file (absolute) the results are like.
    public var query: String?
    public var like: String?
    public var results: [Hit]

    /// The results as JSON (`--json`).
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The results as a table: rank, score and the row's label.
    public func text() -> String {
        var lines = ["rank  score   path"]
        for h in results { lines.append(String(format: "%4d  %6.3f  ", h.rank, h.score) + h.label) }
        if results.isEmpty { lines.append("(the index holds no other audio rows)") }
        return lines.joined(separator: "\n")
    }
}
