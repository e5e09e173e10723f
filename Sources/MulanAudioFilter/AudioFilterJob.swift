import Foundation
import MulanCatalog
import MulanCore
import MulanRecords
import MulanTraining

/// `mulan-filter audio`: scores every kept clip of the catalog against text prompts with a trained
/// checkpoint and keeps or drops it by `--keep` rules, recording each decision with its reason.
///
/// Two keys make it resumable and cheap to re-run:
/// - the *score set* hashes the checkpoint, the vocabulary and the prompts: scores depend on
///   nothing else, so a run with other rules reuses them and only decides again;
/// - the *version* hashes the score set and the rules, in order (the first failing rule is the
///   reason): `mulan-shard` leaves out the clips a version dropped.
/// Clips are embedded and decided in batches, each committed in one transaction, so a killed run
/// keeps its finished batches and a re-run does only the clips without a decision.
public struct AudioFilterJob {
    public var workdir: String
    public var checkpoint: String
    public var vocabulary: String
    public var prompts: [Prompt]
    public var rules: [KeepRule]
    public var console: Console
    /// Clips embedded and committed per transaction.
    public var batch = 16

    /// Bumped when the scoring code changes the scores for the same model and prompts.
    public static let codeVersion = 1

    public init(workdir: String, checkpoint: String, vocabulary: String, prompts: [Prompt], rules: [KeepRule],
                console: Console) {
        self.workdir = Paths.absolute(workdir)
        self.checkpoint = Paths.absolute(checkpoint)
        self.vocabulary = Paths.absolute(vocabulary)
        self.prompts = prompts
        self.rules = rules
        self.console = console
    }

    /// Checks prompt names (unique, not a measure or `others`) and that each rule's names exist;
    /// `option` is the flag the hints name (`mulan-ingest` takes prompts as `--clip-prompt`).
    public static func validate(prompts: [Prompt], rules: [KeepRule], option: String = "--prompt") throws(MulanError) {
        var seen = Set<String>()
        for p in prompts {
            guard let first = p.name.unicodeScalars.first, first == "_" || first.properties.isAlphabetic,
                  p.name.unicodeScalars.allSatisfy({ $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }) else {
                throw MulanError(.usage, "prompt name \"\(p.name)\" is not a name",
                                 hint: "use letters, digits and _ (not starting with a digit), e.g. \(option) solo_piano=\"solo piano\"")
            }
            if p.name == KeepRule.othersName || ClipMeasures.names.contains(p.name) {
                throw MulanError(.usage, "prompt name \"\(p.name)\" is reserved (\(KeepRule.othersName) and the clip measures "
                                 + ClipMeasures.names.joined(separator: ", ") + ")", hint: "choose another name")
            }
            if !seen.insert(p.name).inserted {
                throw MulanError(.usage, "prompt \"\(p.name)\" is given twice", hint: "give each prompt its own name")
            }
            if p.text.trimmingCharacters(in: .whitespaces).isEmpty {
                throw MulanError(.usage, "prompt \"\(p.name)\" has no text", hint: "write \(option) \(p.name)=\"some text\"")
            }
        }
        for rule in rules { try rule.check(prompts: prompts.map(\.name), measures: ClipMeasures.names) }
    }

    /// One clip to decide, as the catalog holds it.
    struct Pending {
        var clipID: Int
        var trackID: String
        var flacPath: String
        var flacSHA256: String
        var measures: [String: Double]
        /// Scores already stored for this score set and this clip's content, or this run's error.
        var stored: Result<[String: Double], StoredError>?
    }

    struct StoredError: Error { var reason: String }

    public func run() throws -> AudioFilterReport {
        let started = Date()
        try Self.validate(prompts: prompts, rules: rules)
        switch try WorkLayout.inspect(workdir) {
        case .single: break
        case .empty:
            throw MulanError(.usage, "there is no catalog in \(workdir)", hint: "run mulan-ingest first")
        case .parts:
            throw MulanError(.usage, "\(workdir) is split into worker parts; mulan-filter audio runs on one catalog",
                             hint: "run it on each part's folder (--workdir \(workdir)/parts/I-of-N)")
        }
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        let catalog = try Catalog(path: workdir + "/catalog.sqlite")
        let store = AudioFilterStore(catalog)

        let embedder = try Embedder(checkpoint: checkpoint, vocabulary: vocabulary)
        let scorer = try ZeroShotScorer(embedder: embedder, prompts: prompts)
        let vocabularySHA256: String
        do { vocabularySHA256 = try SHA256Digest.hex(ofFile: vocabulary).digest } catch {
            throw MulanError(.io, "cannot read the vocabulary \(vocabulary)", cause: error)
        }
        // Prompt order changes no score: the score set hashes them sorted by name.
        let promptKey = prompts.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.text)" }.joined(separator: "\n")
        let scoreSet = "scores-" + SHA256Digest.hex(of: Array(
            "code=\(Self.codeVersion);checkpoint=\(embedder.checkpointSHA256);vocab=\(vocabularySHA256);prompts=\(promptKey)".utf8)).prefix(12)
        let ruleTexts = rules.map(\.description)
        let version = "audio-" + SHA256Digest.hex(of: Array(
            "code=\(Self.codeVersion);\(scoreSet);rules=\(ruleTexts.joined(separator: "\n"))".utf8)).prefix(12)

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let promptsJSON = String(decoding: (try? encoder.encode(prompts)) ?? Data(), as: UTF8.self)
        let rulesJSON = String(decoding: (try? encoder.encode(ruleTexts)) ?? Data(), as: UTF8.self)
        try store.register(.init(version: version, scoreSet: scoreSet, checkpoint: embedder.checkpointPath,
                                 checkpointSHA256: embedder.checkpointSHA256, checkpointStep: embedder.step,
                                 vocabularySHA256: vocabularySHA256, promptsJSON: promptsJSON, rulesJSON: rulesJSON))

        let pending = try pendingClips(store, version: version, scoreSet: scoreSet)
        var report = AudioFilterReport(version: version, scoreSet: scoreSet, checkpoint: embedder.checkpointPath,
                                       checkpointSHA256: embedder.checkpointSHA256, checkpointStep: embedder.step,
                                       prompts: prompts, rules: ruleTexts)
        if !pending.isEmpty {
            console.log(.info, "audio filter \(version): \(pending.count) clips to decide", event: "start",
                        fields: ["version": version, "clips": String(pending.count)])
        }
        let progress = ProgressMeter(total: pending.count, unit: "clips", console: console) { _, _ in
            "\(report.scoredThisRun) scored, \(report.scoresReused) reused"
        }
        for lo in stride(from: 0, to: pending.count, by: max(1, batch)) {
            var part = Array(pending[lo..<min(pending.count, lo + max(1, batch))])
            let toScore = part.indices.filter { part[$0].stored == nil }
            report.scoresReused += part.count - toScore.count
            let outcomes = scorer.score(toScore.map { AudioItem.file(workdir + "/" + part[$0].flacPath) })
            var newScores: [AudioFilterStore.Scores] = []
            for (k, i) in toScore.enumerated() {
                switch outcomes[k] {
                case .success(let s):
                    var named: [String: Double] = [:]
                    for (p, v) in zip(prompts, s.scores) { named[p.name] = Double(v) }
                    part[i].stored = .success(named)
                    newScores.append(.init(clipID: part[i].clipID, flacSHA256: part[i].flacSHA256, scores: named,
                                           windows: s.windows, error: nil))
                case .failure(let f):
                    part[i].stored = .failure(StoredError(reason: "\(f.reason): \(f.detail)"))
                    newScores.append(.init(clipID: part[i].clipID, flacSHA256: part[i].flacSHA256, scores: nil,
                                           windows: 0, error: "\(f.reason): \(f.detail)"))
                    console.log(.warning, "clip \(part[i].flacPath) of track \(part[i].trackID) cannot be scored (\(f.reason)): "
                                + "\(f.detail); it is dropped as unreadable (restore the clip store, or re-ingest the track, and run again)",
                                event: "unreadable", fields: ["track": part[i].trackID, "reason": f.reason])
                }
            }
            let decisions = part.map { clip in
                let d = decide(clip)
                return AudioFilterStore.Decision(clipID: clip.clipID, trackID: clip.trackID, kept: d.kept, reason: d.reason,
                                                 detail: d.detail)
            }
            try store.record(scoreSet: scoreSet, scores: newScores, version: version, decisions: decisions)
            report.scoredThisRun += newScores.count
            report.decidedThisRun += part.count
            progress.advance(by: part.count)
        }
        progress.finish()
        try collectStatistics(store, version: version, scoreSet: scoreSet, into: &report)
        report.wallSeconds = Date().timeIntervalSince(started)
        try store.complete(version: version, stats: report.json())
        return report
    }

    /// Kept clips of ingested tracks without a decision of `version`, with the scores already
    /// stored for their content.
    func pendingClips(_ store: AudioFilterStore, version: String, scoreSet: String) throws -> [Pending] {
        let measures = ClipMeasures.all
        var pending: [Pending] = []
        try store.forEachPendingClip(version: version, scoreSet: scoreSet, measureColumns: measures.map(\.column)) { clip in
            var values: [String: Double] = [:]
            for m in measures {
                if let v = clip.measures[m.column] { values[m.name] = m.transform(v) }
            }
            // A stored error is not reused: the clip is tried again (its file may have been restored).
            pending.append(Pending(clipID: clip.clipID, trackID: clip.trackID, flacPath: clip.flacPath,
                                   flacSHA256: clip.flacSHA256, measures: values, stored: clip.storedScores.map { .success($0) }))
        }
        return pending
    }

    /// Kept when every rule holds; else dropped with the first failing rule as the reason and the
    /// numbers in the detail. A clip that could not be decoded is dropped as `unreadable`.
    func decide(_ clip: Pending) -> (kept: Bool, reason: String, detail: String) {
        let scores: [String: Double]
        switch clip.stored {
        case .success(let s)?: scores = s
        case .failure(let e)?: return (false, "unreadable", e.reason)
        case nil: return (false, "unreadable", "not scored")
        }
        let names = prompts.map(\.name)
        let all = names.compactMap { n in scores[n].map { "\(n) \(String(format: "%.3f", $0))" } }.joined(separator: ", ")
        for rule in rules {
            let outcome = rule.evaluate(value: { scores[$0] ?? clip.measures[$0] }, prompts: names)
            if !outcome.holds { return (false, rule.description, outcome.detail + "; scores: " + all) }
        }
        return (true, "kept", "scores: " + all)
    }

    /// Counts and score quantiles over every decision of the version.
    func collectStatistics(_ store: AudioFilterStore, version: String, scoreSet: String,
                           into report: inout AudioFilterReport) throws {
        for row in try store.decisionCounts(version: version) {
            report.clipsTotal += row.clips
            if row.kept {
                report.kept += row.clips
            } else {
                report.dropped += row.clips
                report.droppedByReason[row.reason ?? "?", default: 0] += row.clips
            }
        }
        var values: [String: [Double]] = [:]
        try store.forEachDecidedScores(version: version, scoreSet: scoreSet) { scores in
            for (name, v) in scores { values[name, default: []].append(v) }
        }
        for (name, list) in values {
            let sorted = list.sorted()
            func q(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))] }
            report.scoreDistribution[name] = .init(min: sorted.first ?? 0, p10: q(0.1), p50: q(0.5), p90: q(0.9),
                                                   max: sorted.last ?? 0, mean: sorted.reduce(0, +) / Double(sorted.count),
                                                   clips: sorted.count)
        }
    }
}
