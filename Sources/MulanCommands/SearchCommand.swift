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

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            guard let query = query.map(SearchJob.Query.text) ?? like.map(SearchJob.Query.like) else {
                throw MulanError(.usage, "pass a text query or --like FILE")
            }
            let result = try SearchJob(index: index, query: query, top: top).run { (checkpoint, vocabulary) throws(MulanError) in
                try model.open(fallbackCheckpoint: checkpoint, fallbackVocabulary: vocabulary, jobs: global.jobs, console: console)
            }
            print(json ? result.json() : result.text())
            return .success
        }
    }
}
