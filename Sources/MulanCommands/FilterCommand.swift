import ArgumentParser
import Foundation
import MulanCore
import MulanText

/// `mulan-filter`: normalize, tokenize and filter the weak text sources.
public struct FilterCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-filter",
        abstract: "Normalize, tokenize (BERT WordPiece) and filter weak text.",
        discussion: "Exit codes: 0 ok; 3 some inputs failed (recorded); 64 usage; 1 fatal.",
        subcommands: [TokenizeCommand.self])

    public init() {}
}

public struct TokenizeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize lines from standard input: one line of space-separated ids per input line.",
        discussion: """
        Tokenization is BERT uncased WordPiece, id for id as Hugging Face tokenizers' \
        BertWordPieceTokenizer(vocab, lowercase=True). An empty line gives an empty line. \
        Lines longer than --max-line-bytes are tokenized from their first bytes and reported.
        """)

    @Option(help: ArgumentHelp("The WordPiece vocabulary (a BERT vocab.txt).", valueName: "file"))
    public var vocab: String

    @Flag(help: "Add [CLS] and [SEP] around each line's ids.")
    public var special = false

    @Option(help: ArgumentHelp("Longest line read whole, in bytes.", valueName: "n"))
    public var maxLineBytes: Int = 1 << 20

    @Flag(help: "Print no summary on standard error.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        if maxLineBytes < 1 { throw ValidationError("--max-line-bytes must be at least 1") }
    }

    public func run() async throws {
        let console = Console(format: .text, quiet: quiet)
        try await runStage(console: console) {
            let vocabulary = try WordPieceVocabulary(path: vocab)
            var lines = LineTokenizer(tokenizer: BertTokenizer(vocabulary: vocabulary), special: special)
            lines.maxLineBytes = maxLineBytes
            let started = Date()
            let summary = try lines.run(input: 0, output: 1)
            let seconds = Date().timeIntervalSince(started)
            for line in summary.overlongLines.prefix(10) {
                console.log(.warning, "stdin:\(line): line longer than \(maxLineBytes) bytes; only its first bytes were tokenized")
            }
            console.log(.info, String(format: "tokenized %d lines (%d tokens, %.1f MB) in %.2f s: %.0f lines/s",
                                      summary.lines, summary.tokens, Double(summary.bytes) / 1e6, seconds,
                                      seconds > 0 ? Double(summary.lines) / seconds : 0))
            return summary.overlongLines.isEmpty ? .success : .completedWithFailures
        }
    }
}
