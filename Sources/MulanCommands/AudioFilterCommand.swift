import ArgumentParser
import Foundation
import MulanAudioFilter
import MulanCore
import MulanRecords
import MulanTensor
import MulanTraining

/// `mulan-filter audio`: zero-shot audio filtering of the catalog's clips with a trained model.
public struct AudioFilterCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audio",
        abstract: "Score every kept clip against text prompts with a trained model; keep or drop it by rules.",
        discussion: """
        Each clip (its stored FLAC: the mean of three windows of the model's length) and each prompt is \
        embedded; a prompt's score is their cosine. A clip is kept when every --keep rule holds: \
        "music > speech", "music > speech + 0.05" (a margin), "piano > others" (above every other prompt), \
        "piano >= 0.3" (a threshold), or a clip measure: \(ClipMeasures.names.joined(separator: ", ")) \
        ("rms_db > -45"). Every clip gets a decision, the first failing rule as its reason, under a \
        version hashed from the checkpoint, the vocabulary, the prompts and the rules; mulan-shard leaves \
        out the clips the latest version dropped. Scores are stored per checkpoint and prompts, so other \
        rules re-decide without embedding again; a re-run (after kill -9 too) does only what is missing. \
        Exit codes: 0 ok; 3 done, but some clips could not be read (dropped as unreadable); 64 usage; 1 fatal.
        """)

    @OptionGroup public var global: GlobalOptions

    @Option(help: ArgumentHelp("A mulan-train run directory (its newest checkpoint) or a checkpoint file.", valueName: "path"))
    public var model: String

    @Option(help: ArgumentHelp("The WordPiece vocab.txt the model's texts were tokenized with.", valueName: "file"))
    public var vocab: String

    @Option(help: ArgumentHelp("A prompt NAME=TEXT (repeatable), e.g. piano=\"solo piano\".", valueName: "name=text"))
    public var prompt: [String] = []

    @Option(help: ArgumentHelp("A file of prompts, one NAME=TEXT per line (# comments and blank lines skipped).",
                               valueName: "file"))
    public var prompts: String?

    @Option(help: ArgumentHelp("A rule every kept clip satisfies (repeatable; all must hold).", valueName: "rule"))
    public var keep: [String] = []

    @Option(help: ArgumentHelp("Write the summary as JSON to this file.", valueName: "file"))
    public var report: String?

    @Option(help: "Clips embedded and committed per transaction.")
    public var batch = 16

    @Option(help: "Threads for decoding, log-mel and the kernels (default: --jobs).")
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if prompt.isEmpty && prompts == nil { throw ValidationError("no prompt: pass --prompt NAME=TEXT or --prompts FILE") }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    }

    public func run() async throws {
        let console = global.console
        try await runStage(console: console) {
            // Everything the user typed is checked before the model loads.
            var list = try prompt.map { try Self.parsePrompt($0, location: nil) }
            if let prompts { list += try Self.readPrompts(prompts) }
            let rules = try keep.map { try KeepRule.parse($0) }
            try AudioFilterJob.validate(prompts: list, rules: rules)
            try startBLAS(threads: threads ?? global.jobs, console: console)
            let checkpoint = try ModelOption.checkpoint(model, option: "--model")
            var job = AudioFilterJob(workdir: global.workdir, checkpoint: checkpoint, vocabulary: vocab, prompts: list,
                                     rules: rules, console: console)
            job.batch = batch
            let summary = try job.run()
            if let report { try summary.write(to: report) }
            print(summary.text())
            return (summary.droppedByReason["unreadable"] ?? 0) > 0 ? .completedWithFailures : .success
        }
    }

    /// `NAME=TEXT`; the error names the argument or the file and line.
    static func parsePrompt(_ value: String, location: SourceLocation?) throws(MulanError) -> Prompt {
        guard let eq = value.firstIndex(of: "=") else {
            throw MulanError(.usage, "prompt \"\(value)\" has no name", location: location,
                             hint: "write NAME=TEXT, e.g. piano=solo piano music")
        }
        let name = value[..<eq].trimmingCharacters(in: .whitespaces)
        let text = value[value.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        return Prompt(name: name, text: text)
    }

    static func readPrompts(_ path: String) throws(MulanError) -> [Prompt] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --prompts")
        }
        guard let content = String(validating: [UInt8](data), as: UTF8.self) else {
            throw MulanError(.data, "\(path) is not UTF-8 text", hint: "re-save it as UTF-8, one NAME=TEXT per line")
        }
        var list: [Prompt] = []
        for (i, line) in content.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty || t.hasPrefix("#") { continue }
            list.append(try parsePrompt(t, location: SourceLocation(file: path, line: i + 1)))
        }
        return list
    }
}
