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

    func previousVersion(_ db: Database, _ r: Resources) throws -> String? {
        try db.row("""
            SELECT version FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL AND version NOT LIKE '%~dry-run'
            ORDER BY (version = ?) DESC, completed_at DESC LIMIT 1
            """, [source.rawValue, r.version])?[0].string
    }

    /// Decides every text of the source on its own (the corpus-wide rules come later) into an
    /// incomplete version, and fills the summary tables (`temp.summary_*`) that the corpus-wide
    /// rules need from every part. Runs inside the caller's transaction.
    func decideTexts(_ db: Database, _ r: Resources) throws -> LocalCounts {
        let total = try db.row("SELECT COUNT(*) FROM raw_texts WHERE source = ?", [source.rawValue])?[0].int ?? 0
        let progress = ProgressMeter(total: total, unit: "texts", console: console)
        try db.run("DELETE FROM filter_versions WHERE version = ?", [r.writeVersion])
        try db.run("""
            INSERT INTO filter_versions (version, source, unfiltered, config, vocab_sha256, created_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """, [r.writeVersion, source.rawValue, unfiltered, r.configText, r.vocabularySHA256, Timestamp.now()])
        try SummaryTables.create(db, schema: "temp")
        let recorder = CandidateRecorder(database: db)
        let tags = source == .tags ? try TagFilter(config: config.tags, tokenizer: r.tokenizer) : nil
        let playlists = source == .playlists ? try PlaylistFilter(config: config.playlists, tokenizer: r.tokenizer) : nil
        let aset = source == .aset ? AsetFilter(config: config.aset, labels: r.labels, tokenizer: r.tokenizer) : nil
        let descriptions = source == .descriptions
            ? try DescriptionFilter(config: config.descriptions, tokenizer: r.tokenizer, model: r.model, index: recorder) : nil
        var counts = LocalCounts()

        // Descriptions carry their place in the global order (CandidateKey) for the duplicate replay.
        let sql = source == .descriptions ? """
            SELECT r.id, r.track_id, r.text, r.origin LIKE 'container:%',
                   CASE WHEN r.origin LIKE 'container:%' THEN COALESCE(t.manifest_file, '') ELSE COALESCE(r.origin_file, '') END,
                   CASE WHEN r.origin LIKE 'container:%' THEN COALESCE(t.manifest_line, 0) ELSE COALESCE(r.origin_line, 0) END
            FROM raw_texts r LEFT JOIN tracks t ON t.track_id = r.track_id WHERE r.source = ? ORDER BY r.id
            """ : "SELECT id, track_id, text FROM raw_texts WHERE source = ? ORDER BY id"
        try db.forEach(sql, [source.rawValue]) { row in
            guard let id = row[0].int, let track = row[1].string else { return }
            let text = row[2].string ?? ""
            let d: TextDecision
            switch source {
            case .tags: d = tags!.decide(text, unfiltered: unfiltered)
            case .playlists: d = playlists!.decide(text, unfiltered: unfiltered)
            case .aset: d = aset!.decide(text, unfiltered: unfiltered)
            case .descriptions:
                recorder.begin(CandidateKey(container: row[3].int == 1, file: row[4].string ?? "", line: row[5].int ?? 0,
                                            track: track, rawTextID: id, ordinal: 0))
                d = try descriptions!.decide(text, unfiltered: unfiltered)
                counts.sentences += d.sentenceReasons.count
                for reason in d.sentenceReasons where reason != "kept" { counts.sentenceReasons[reason, default: 0] += 1 }
            }
            try db.run("""
                INSERT INTO text_decisions (version, raw_text_id, source, track_id, status, reason, normalized,
                    token_ids, token_count, details)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [r.writeVersion, id, source.rawValue, track, d.kept ? "kept" : "dropped", d.reason, d.normalized,
                      d.kept ? d.tokenIDs.map(String.init).joined(separator: " ") : nil,
                      d.kept ? d.tokenIDs.count : 0, d.details])
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
                try db.run("""
                    INSERT INTO temp.summary_tag_freq (normalized, tracks)
                    SELECT normalized, COUNT(DISTINCT track_id) FROM text_decisions
                    WHERE version = ? AND status = 'kept' GROUP BY normalized
                    """, [r.writeVersion])
            case .playlists:
                try db.execute("""
                    INSERT INTO temp.summary_group_sizes (group_id, tracks)
                    SELECT group_id, COUNT(DISTINCT track_id) FROM raw_texts
                    WHERE source = 'playlists' AND group_id IS NOT NULL GROUP BY group_id
                    """)
            case .descriptions, .aset:
                break
            }
        }
        return counts
    }

    /// Copies the summary tables into their own file (`…summary.sqlite`, rollback journal, written
    /// as `.tmp` and renamed), which the other workers read while this worker goes on.
    func exportSummary(_ db: Database, to path: String, writeVersion: String) throws {
        let tmp = path + ".tmp"
        for leftover in [tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"] { unlink(leftover) }
        try db.run("ATTACH DATABASE ? AS summary_out", [tmp])
        do {
            try db.execute("PRAGMA summary_out.journal_mode = DELETE")
            try SummaryTables.create(db, schema: "summary_out")
            try db.execute("""
                INSERT INTO summary_out.summary_tag_freq SELECT * FROM temp.summary_tag_freq;
                INSERT INTO summary_out.summary_group_sizes SELECT * FROM temp.summary_group_sizes;
                INSERT INTO summary_out.summary_candidates SELECT * FROM temp.summary_candidates
                    ORDER BY container DESC, file, line, track_id, raw_text_id, ordinal;
                """)
            try SummaryTables.index(db, schema: "summary_out")
            try db.run("""
                INSERT INTO summary_out.summary_meta (version, source, worker, workers, created_at) VALUES (?, ?, ?, ?, ?)
                """, [writeVersion, source.rawValue, slice.index, slice.count, Timestamp.now()])
            try db.execute("DETACH DATABASE summary_out")
        } catch {
            try? db.execute("DETACH DATABASE summary_out")
            unlink(tmp)
            throw error
        }
        try Durable.rename(tmp, to: path)
    }

    /// The corpus-wide rules, with the figures of every part (`summaries`; `own` is this part's),
    /// then the statistics. Runs inside the caller's transaction.
    func applyCorpusRules(_ db: Database, _ r: Resources, summaries: [SummarySource], own: Int,
                          counts: LocalCounts) throws -> FilterReport {
        var report = FilterReport(source: source.rawValue, version: r.version, unfiltered: unfiltered, dryRun: dryRun)
        var sentenceReasons = counts.sentenceReasons
        if !unfiltered {
            switch source {
            case .tags:
                try SummaryTables.sumTagFrequencies(db, summaries)
                try applyTagRules(db, version: r.writeVersion)
            case .playlists:
                try SummaryTables.sumGroupSizes(db, summaries)
                try applyPlaylistRules(db, version: r.writeVersion)
            case .aset:
                try dropDuplicatesPerTrack(db, version: r.writeVersion)
            case .descriptions:
                if config.descriptions.dedupe {
                    let total = summaries.count == 1 ? counts.candidates : nil
                    try DuplicateReplay.run(db, summaries: summaries, own: own,
                                            threshold: config.descriptions.nearDuplicateThreshold,
                                            total: total, console: console)
                    for (reason, n) in try DuplicateReplay.patch(db, version: r.writeVersion, tokenizer: r.tokenizer) {
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
        try collectStatistics(db, version: r.writeVersion, into: &report)
        return report
    }

    func changes(_ db: Database, _ r: Resources, previous: String?) throws -> FilterReport.Changes? {
        if dryRun { return try compare(db, version: r.writeVersion, with: previous) }
        if let previous { return try compare(db, version: r.writeVersion, with: previous == r.version ? nil : previous) }
        return nil
    }

    func complete(_ db: Database, _ r: Resources, report: FilterReport) throws {
        try db.run("UPDATE filter_versions SET completed_at = ?, stats = ? WHERE version = ?",
                   [Timestamp.now(), report.json(), r.writeVersion])
    }
}
