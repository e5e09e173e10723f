import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanText

/// The steps both layouts share: resources, per-text decisions, corpus-wide rules, completion.
extension FilterJob {
    // MARK: Shared steps

    /// Loads the vocabulary and models and derives the filter version.
    func prepare() throws -> Resources {
        let vocabulary = try WordPieceVocabulary(path: vocabularyPath)
        let tokenizer = BertTokenizer(vocabulary: vocabulary)
        var model: RelevanceModel?
        var extra = ""
        if source == .descriptions, !unfiltered, !config.descriptions.relevanceModel.isEmpty {
            let path = config.resolve(config.descriptions.relevanceModel)
            model = try RelevanceModel.load(path: path)
            if model?.vocabularySHA256 != vocabulary.sha256 {
                throw MulanError(.usage, "the relevance model \(path) was trained with another vocabulary",
                                 hint: "retrain it with mulan-filter train-relevance --vocab \(vocabularyPath)")
            }
            extra += ";model=" + (try SHA256Digest.hex(ofFile: path).digest)
        }
        var labels: AudioSetLabels?
        if source == .aset {
            let path = labelsPath ?? (config.aset.ontology.isEmpty ? nil : config.resolve(config.aset.ontology))
            if let path {
                labels = try AudioSetLabels.load(path: path)
                extra += ";labels=" + (try SHA256Digest.hex(ofFile: path).digest)
            } else if !unfiltered {
                throw MulanError(.usage, "filtering aset needs the AudioSet ontology",
                                 hint: "pass --labels ontology.json or set aset.ontology in the configuration")
            }
        }
        let configText = unfiltered ? "{}" : config.canonical(source)
        let versionKey = "code=\(Self.codeVersion);source=\(source.rawValue);unfiltered=\(unfiltered);"
            + "config=\(configText);vocab=\(vocabulary.sha256)\(extra)"
        let digest = SHA256Digest.hex(of: Array(versionKey.utf8))
        let version = "\(source.rawValue)-\(unfiltered ? "unfiltered-" : "")\(digest.prefix(12))"
        return Resources(tokenizer: tokenizer, vocabularySHA256: vocabulary.sha256, model: model, labels: labels,
                         configText: configText, version: version, writeVersion: dryRun ? version + "~dry-run" : version)
    }

    func previousVersion(_ store: TextFilterStore, _ r: Resources) throws -> String? {
        try store.previousVersion(source: source.rawValue, preferring: r.version)
    }

    /// Decides every text of the source on its own (the corpus-wide rules come later) into an
    /// incomplete version, and fills the run's own summary (`TextFilterSummary`) with what the
    /// corpus-wide rules need from every part. Runs inside the caller's transaction.
    func decideTexts(_ store: TextFilterStore, _ r: Resources) throws -> LocalCounts {
        let total = try store.rawTextCount(source: source.rawValue)
        let progress = ProgressMeter(total: total, unit: "texts", console: console)
        try store.beginVersion(r.writeVersion, source: source.rawValue, unfiltered: unfiltered, config: r.configText,
                               vocabularySHA256: r.vocabularySHA256)
        try store.resetOwnSummary()
        let recorder = CandidateRecorder(store: store)
        let tags = source == .tags ? try TagFilter(config: config.tags, tokenizer: r.tokenizer) : nil
        let playlists = source == .playlists ? try PlaylistFilter(config: config.playlists, tokenizer: r.tokenizer) : nil
        let aset = source == .aset ? AsetFilter(config: config.aset, labels: r.labels, tokenizer: r.tokenizer) : nil
        let descriptions = source == .descriptions
            ? try DescriptionFilter(config: config.descriptions, tokenizer: r.tokenizer, model: r.model, index: recorder) : nil
        var counts = LocalCounts()

        // Descriptions carry their place in the global order (CandidateKey) for the duplicate replay.
        try store.forEachRawText(source: source.rawValue, withOrigin: source == .descriptions) { raw in
            let text = raw.text
            let d: TextDecision
            switch source {
            case .tags: d = tags!.decide(text, unfiltered: unfiltered)
            case .playlists: d = playlists!.decide(text, unfiltered: unfiltered)
            case .aset: d = aset!.decide(text, unfiltered: unfiltered)
            case .descriptions:
                recorder.begin(CandidateKey(container: raw.fromContainer, file: raw.file, line: raw.line,
                                            track: raw.trackID, rawTextID: raw.id, ordinal: 0))
                d = try descriptions!.decide(text, unfiltered: unfiltered)
                counts.sentences += d.sentenceReasons.count
                for reason in d.sentenceReasons where reason != "kept" { counts.sentenceReasons[reason, default: 0] += 1 }
            }
            try store.insert(TextFilterStore.Decision(rawTextID: raw.id, source: source.rawValue, trackID: raw.trackID,
                                                      kept: d.kept, reason: d.reason, normalized: d.normalized,
                                                      tokenIDs: d.kept ? d.tokenIDs : nil, details: d.details),
                             version: r.writeVersion)
            counts.texts += 1
            progress.advance()
        }
        progress.finish()
        counts.candidates = recorder.recorded
        if !unfiltered {
            switch source {
            case .tags:
                // Distinct tracks per kept tag: tracks are disjoint between parts, so the sum over the
                // parts is the corpus's count.
                try store.summarizeKeptTags(version: r.writeVersion)
            case .playlists:
                try store.summarizePlaylistSizes()
            case .descriptions, .aset:
                break
            }
        }
        return counts
    }

    /// Copies the run's own summary into its own file (`…summary.sqlite`, rollback journal, written
    /// as `.tmp` and renamed), which the other workers read while this worker goes on.
    func exportSummary(_ store: TextFilterStore, to path: String, writeVersion: String) throws {
        let tmp = path + ".tmp"
        for leftover in [tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"] { unlink(leftover) }
        do {
            try store.exportOwnSummary(to: tmp, version: writeVersion, source: source.rawValue, worker: slice.index,
                                       workers: slice.count)
        } catch {
            unlink(tmp)
            throw error
        }
        try Durable.rename(tmp, to: path)
    }

    /// The corpus-wide rules, with the figures of every part (`summaries`; `own` is this part's),
    /// then the statistics. Runs inside the caller's transaction.
    func applyCorpusRules(_ store: TextFilterStore, _ r: Resources, summaries: [TextFilterSummary], own: Int,
                          counts: LocalCounts) throws -> FilterReport {
        var report = FilterReport(source: source.rawValue, version: r.version, unfiltered: unfiltered, dryRun: dryRun)
        var sentenceReasons = counts.sentenceReasons
        if !unfiltered {
            switch source {
            case .tags:
                try store.sumTagFrequencies(summaries)
                try applyTagRules(store, version: r.writeVersion)
            case .playlists:
                try store.sumGroupSizes(summaries)
                try applyPlaylistRules(store, version: r.writeVersion)
            case .aset:
                try store.dropDuplicatesPerTrack(version: r.writeVersion)
            case .descriptions:
                if config.descriptions.dedupe {
                    let total = summaries.count == 1 ? counts.candidates : nil
                    try DuplicateReplay.run(store, summaries: summaries, own: own,
                                            threshold: config.descriptions.nearDuplicateThreshold,
                                            total: total, console: console)
                    for (reason, n) in try DuplicateReplay.patch(store, version: r.writeVersion, tokenizer: r.tokenizer) {
                        sentenceReasons[reason, default: 0] += n
                    }
                }
            }
        }
        if source == .descriptions {
            report.sentencesTotal = counts.sentences
            report.sentencesKept = counts.sentences - sentenceReasons.values.reduce(0, +)
            report.sentencesDroppedByReason = sentenceReasons
        }
        try collectStatistics(store, version: r.writeVersion, into: &report)
        return report
    }

    func changes(_ store: TextFilterStore, _ r: Resources, previous: String?) throws -> FilterReport.Changes? {
        if dryRun { return try compare(store, version: r.writeVersion, with: previous) }
        if let previous { return try compare(store, version: r.writeVersion, with: previous == r.version ? nil : previous) }
        return nil
    }

    func complete(_ store: TextFilterStore, _ r: Resources, report: FilterReport) throws {
        try store.complete(version: r.writeVersion, stats: report.json())
    }
}
