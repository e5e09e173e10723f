import ArgumentParser
import Foundation
import MulanCore
import MulanTraining

/// `mulan-search`: ranks an index's audio by similarity with a text or an audio file.
public struct SearchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-search",
        abstract: "Rank the audio of a mulan-embed index by cosine similarity with a text query or an audio file.",
        discussion: "Exit codes: 0 ok; 64 usage; 1 fatal (the message says what and where).",
        subcommands: [SearchRunCommand.self],
        defaultSubcommand: SearchRunCommand.self)

    public init() {}
}

public struct SearchRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Search (the default subcommand).",
        discussion: """
        The query is embedded by the model that made the index (its checkpoint is recorded in \
        embedding-info.json; --checkpoint/--run-dir may point to a moved copy, which must be the same \
        file). Text queries need the vocabulary (--vocab, default: the index's). --like FILE embeds the \
        file as mulan-embed does and ranks the other audio rows (the file's own row is left out).
        """)

    @OptionGroup public var global: GlobalOptions
    @OptionGroup public var model: ModelOptions

    @Option(help: ArgumentHelp("An index folder written by mulan-embed.", valueName: "dir"))
    public var index: String

    @Argument(help: "The text query.")
    public var query: String?

    @Option(help: ArgumentHelp("Rank by similarity with this audio file instead of a text.", valueName: "file"))
    public var like: String?

    @Option(help: "How many results.")
    public var top = 10

    @Flag(help: "Print the results as JSON.")
    public var json = false

    public init() {}

    public func validate() throws {
        if (query == nil) == (like == nil) { throw ValidationError("pass a text query or --like FILE (one of them)") }
        if top < 1 { throw ValidationError("--top must be at least 1") }
    }

    struct Hit: Encodable {
        var rank: Int
        var score: Float
        var row: Int
        var path: String?
        var shard: String?
        var key: String?
        var track: String?
        var label: String
    }

    struct Output: Encodable {
        var index: String
        var query: String?
        var like: String?
        var results: [Hit]
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            let idx = try EmbeddingIndex(directory: index)
            let embedder = try model.open(fallbackCheckpoint: idx.info.checkpoint, fallbackVocabulary: idx.info.vocabulary,
                                          jobs: global.jobs, console: console)
            try Self.checkSameModel(embedder, idx)
            let vector: [Float]
            var candidates = idx.rows.filter { $0.kind == .audio }.map(\.row)
            if let query {
                vector = try embedder.embed(texts: [query])
            } else if let like {
                let path = Paths.absolute(like)
                switch embedder.embed(audio: [.file(path)]).first {
                case .embedded(_, let e)?:
                    vector = e
                case .failed(let f)?:
                    throw MulanError(.media, "cannot embed --like \(path): \(f.reason): \(f.detail)")
                case nil:
                    throw MulanError(.internalError, "no outcome for --like \(path)")
                }
                candidates.removeAll { idx.rows[$0].path == path }
            } else {
                throw MulanError(.usage, "pass a text query or --like FILE")
            }
            let ranked = SimilaritySearch.rank(query: vector, in: idx, candidates: candidates, top: top)
            let hits = ranked.enumerated().map { i, r in
                let row = idx.rows[r.row]
                return Hit(rank: i + 1, score: r.score, row: r.row, path: row.path, shard: row.shard, key: row.key,
                           track: row.track, label: row.label)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let output = Output(index: Paths.absolute(index), query: query, like: like.map(Paths.absolute), results: hits)
                print(String(decoding: (try? encoder.encode(output)) ?? Data(), as: UTF8.self))
            } else {
                print("rank  score   path")
                for h in hits { print(String(format: "%4d  %6.3f  ", h.rank, h.score) + h.label) }
                if hits.isEmpty { print("(the index holds no other audio rows)") }
            }
            return .success
        }
    }

    /// Queries must be embedded by the model that embedded the index.
    static func checkSameModel(_ embedder: Embedder, _ index: EmbeddingIndex) throws(MulanError) {
        guard embedder.checkpointSHA256 == index.info.checkpointSHA256 else {
            throw MulanError(.usage, "\(embedder.checkpointPath) is not the model that embedded \(index.directory) "
                             + "(that was \(index.info.checkpoint), step \(index.info.step))",
                             hint: "pass that checkpoint, or re-embed with this one (mulan-embed)")
        }
    }
}
