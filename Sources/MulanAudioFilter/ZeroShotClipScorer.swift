import Foundation
import MulanCore
import MulanRecords
import MulanTraining
import Synchronization

/// What `mulan-ingest --clip-score` ranks `best:N`'s candidates by, from a clip's prompt scores
/// (the cosines `mulan-filter audio` stores):
/// - `NAME`: the score of prompt NAME;
/// - `NAME - OTHER`: NAME's score minus prompt OTHER's (a margin: "music - speech");
/// - `NAME - others`: NAME's score minus the highest score of every other prompt, so the windows
///   that match NAME *better than anything else* win, not the ones that match every prompt.
/// Names are prompt names (letters, digits, `_`), so `-` is always the minus.
public struct ClipRankRule: Sendable, Hashable, CustomStringConvertible {
    public enum Baseline: Sendable, Hashable {
        case none
        case prompt(String)
        case others
    }

    public var name: String
    public var baseline: Baseline

    public init(name: String, baseline: Baseline = .none) {
        self.name = name
        self.baseline = baseline
    }

    /// The canonical text (`music - others`), as the settings key and the track's detail show it.
    public var description: String {
        switch baseline {
        case .none: name
        case .prompt(let other): "\(name) - \(other)"
        case .others: "\(name) - \(KeepRule.othersName)"
        }
    }

    /// Parses `NAME`, `NAME - OTHER` or `NAME - others`.
    public init(parsing text: String) throws(MulanError) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        func isName(_ s: String) -> Bool {
            guard let first = s.unicodeScalars.first, first == "_" || first.properties.isAlphabetic else { return false }
            return s.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }
        }
        guard parts.count <= 2, parts.allSatisfy(isName), parts[0] != KeepRule.othersName else {
            throw MulanError(.usage, "--clip-score \"\(text)\" is not a score rule",
                             hint: "write a prompt name (\"music\": its score), \"music - speech\" (its margin over another "
                                 + "prompt) or \"music - others\" (its margin over the best other prompt)")
        }
        name = parts[0]
        baseline = parts.count == 1 ? .none : (parts[1] == KeepRule.othersName ? .others : .prompt(parts[1]))
    }

    /// Checks that the names are prompts and that there is another prompt to compare with.
    public func check(prompts: [String]) throws(MulanError) {
        var names = [name]
        if case .prompt(let other) = baseline { names.append(other) }
        for n in names where !prompts.contains(n) {
            throw MulanError(.usage, "--clip-score \"\(self)\": \"\(n)\" is not a prompt (\(prompts.joined(separator: ", ")))",
                             hint: "add --clip-prompt \(n)=TEXT, or fix the name")
        }
        if case .prompt(let other) = baseline, other == name {
            throw MulanError(.usage, "--clip-score \"\(self)\" compares a prompt with itself", hint: "name another prompt")
        }
        if baseline == .others, prompts.count < 2 {
            throw MulanError(.usage, "--clip-score \"\(self)\": there is no other prompt",
                             hint: "add another --clip-prompt NAME=TEXT, or rank by \"\(name)\" alone")
        }
    }

    /// The rank score of a clip from its scores, given in the order of `prompts`.
    public func value(scores: [Float], prompts: [String]) -> Double {
        func score(_ n: String) -> Double? { prompts.firstIndex(of: n).map { Double(scores[$0]) } }
        guard let own = score(name) else { return -.infinity }
        switch baseline {
        case .none:
            return own
        case .prompt(let other):
            return score(other).map { own - $0 } ?? -.infinity
        case .others:
            let best = zip(prompts, scores).filter { $0.0 != name }.map { Double($0.1) }.max()
            return best.map { own - $0 } ?? -.infinity
        }
    }
}

/// Ranks `best:N`'s candidate windows with a trained model: each window is embedded as
/// `mulan-filter audio` embeds a stored clip (the renormalized mean of the model's windows over
/// it, `Embedder.embed(clips:)`), scored against the prompts, and ranked by `rule`.
///
/// Ingest calls `score` from every worker thread. The model's forward pass keeps per-call state
/// in its layers and is not safe to run concurrently, and it already spreads one batch over
/// `BLAS.threads`: so one model is shared and the calls take turns behind a mutex (the
/// workers still decode, cut and encode in parallel).
public final class ZeroShotClipScorer: ClipScorer {
    public let rule: ClipRankRule
    public let prompts: [Prompt]
    /// The model's sample rate: ingest's `--sample-rate` must equal it.
    public let sampleRate: Int
    public let checkpointPath: String
    public let checkpointSHA256: String
    public let vocabularySHA256: String
    public let key: String?
    private let scorer: Mutex<ZeroShotScorer>

    /// Opens `checkpoint` with `vocabulary` and embeds the prompts. Refuses a model whose sample
    /// rate is not `ingestSampleRate` (the windows would be heard at the wrong speed; ingest does
    /// not resample a second time).
    public init(checkpoint: String, vocabulary: String, prompts: [Prompt], rule: ClipRankRule,
                ingestSampleRate: Int) throws(MulanError) {
        try AudioFilterJob.validate(prompts: prompts, rules: [], option: "--clip-prompt")
        try rule.check(prompts: prompts.map(\.name))
        let embedder = try Embedder(checkpoint: checkpoint, vocabulary: vocabulary)
        let rate = embedder.config.logMel.sampleRate
        guard rate == ingestSampleRate else {
            throw MulanError(.usage, "the model \(checkpoint) was trained on \(rate) Hz audio but --sample-rate is "
                             + "\(ingestSampleRate) Hz; ingest does not resample the candidates again for the model",
                             hint: "ingest with --sample-rate \(rate), or pass a model trained at \(ingestSampleRate) Hz")
        }
        do { vocabularySHA256 = try SHA256Digest.hex(ofFile: vocabulary).digest } catch {
            throw MulanError(.usage, "cannot read the vocabulary \(vocabulary)", hint: "check --clip-vocab", cause: error)
        }
        self.rule = rule
        self.prompts = prompts
        sampleRate = rate
        checkpointPath = embedder.checkpointPath
        checkpointSHA256 = embedder.checkpointSHA256
        // Content, not paths: the same checkpoint copied elsewhere ranks alike, another one does not.
        // Prompt order changes no score, so they are hashed sorted by name (as the filter's score set).
        let promptText = prompts.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.text)" }.joined(separator: "\n")
        key = "zero-shot/\(AudioFilterJob.codeVersion):checkpoint=\(checkpointSHA256):vocab=\(vocabularySHA256)"
            + ":prompts=\(SHA256Digest.hex(of: Array(promptText.utf8)).prefix(16)):score=\(rule)"
        scorer = Mutex(try ZeroShotScorer(embedder: embedder, prompts: prompts))
    }

    /// `zero-shot "music - others"`.
    public var name: String { "zero-shot \"\(rule)\"" }

    /// The prompt scores of a clip (mono samples at the model's rate), in prompt order, as
    /// `mulan-filter audio` would store them for the same samples; nil without samples.
    public func promptScores(_ samples: [Float]) -> [Float]? {
        scorer.withLock { $0.scores(clips: [samples]) }.first ?? nil
    }

    /// The rank score of a window. Ingest does not ask for a window it calls silent (it scores −∞
    /// without being embedded, as with `LoudnessScorer`).
    public func score(_ samples: [Float], stats: ClipStats) -> Double {
        guard let scores = promptScores(samples) else { return -.infinity }
        return rule.value(scores: scores, prompts: prompts.map(\.name))
    }
}
