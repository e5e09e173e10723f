import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// Which half of a filter run a worker does when the work directory is split into worker parts
/// (docs/scale-out.md). A single-process run does both, in one transaction.
public enum FilterPhase: String, Sendable, CaseIterable {
    /// Decide every text of this worker's part on its own, and publish the part's summary (tag
    /// frequencies, playlist sizes, description sentence fingerprints) for the global phase.
    case local
    /// Read every part's summary, apply the corpus-wide rules to this part's decisions with the
    /// whole corpus's figures, and complete the version.
    case global
}

/// What a filter run did: the finished decisions' statistics, or (the local phase of a worker)
/// what the global phase will finish.
public enum FilterOutcome: Sendable {
    case finished(FilterReport)
    case localPhase(texts: Int, summary: String, version: String, slice: WorkerSlice)
}

/// `mulan-filter --source S`: decides, for every raw text of one source, kept or dropped with a
/// reason, and writes the normalized text and its token ids under a filter version derived from
/// the configuration. The whole run is one transaction (a killed run leaves the previous state);
/// a dry run computes everything, reports what would change, and rolls back.
///
/// On a work directory split into worker parts each worker filters its own part's texts in two
/// phases (`FilterPhase`); the decisions equal those of one process over the whole corpus because
/// the corpus-wide rules read the same figures: summed per-part tag frequencies and playlist
/// sizes, and description sentences replayed in one global order.
public struct FilterJob: Sendable {
    public var workdir: String
    public var source: TextSource
    public var config: FilterConfig
    public var vocabularyPath: String
    public var labelsPath: String?
    public var unfiltered: Bool
    public var dryRun: Bool
    public var console: Console
    /// This process's worker, when the work directory is split into parts.
    public var slice: WorkerSlice
    /// Which phase to run on a partitioned work directory (required there, refused elsewhere).
    public var phase: FilterPhase?

    /// Bumped when the filtering code changes what it decides for the same configuration.
    /// 2: description duplicates are found in a global order (file, line; container texts first)
    /// rather than in catalog row order.
    public static let codeVersion = 2

    public init(workdir: String, source: TextSource, config: FilterConfig, vocabularyPath: String, labelsPath: String?,
                unfiltered: Bool, dryRun: Bool, console: Console, slice: WorkerSlice = .single, phase: FilterPhase? = nil) {
        self.workdir = Paths.absolute(workdir)
        self.source = source
        self.config = config
        self.vocabularyPath = Paths.absolute(vocabularyPath)
        self.labelsPath = labelsPath.map(Paths.absolute)
        self.unfiltered = unfiltered
        self.dryRun = dryRun
        self.console = console
        self.slice = slice
        self.phase = phase
    }

    /// The tokenizer, models and version of a run.
    struct Resources {
        var tokenizer: BertTokenizer
        var vocabularySHA256: String
        var model: RelevanceModel?
        var labels: AudioSetLabels?
        var configText: String
        var version: String
        var writeVersion: String
    }

    /// What the local phase found that the global phase adds to (kept in the version's `stats`
    /// column until the version completes).
    struct LocalCounts: Codable {
        var phase = "local"
        var texts = 0
        var sentences = 0
        var sentenceReasons: [String: Int] = [:]
        var candidates = 0
        var wallSeconds = 0.0
    }

    /// Convenience for a single-process run: the finished report.
    public func run() throws -> FilterReport {
        switch try execute() {
        case .finished(let report): return report
        case .localPhase:
            throw MulanError(.internalError, "the local phase has no finished report", hint: "use execute()")
        }
    }

    public func execute() throws -> FilterOutcome {
        switch try WorkLayout.inspect(workdir) {
        case .empty, .single:
            if !slice.isSingle {
                throw MulanError(.usage, "\(workdir) is not split into worker parts, so it is filtered by one process",
                                 hint: "run without --worker/--workers (ingest with --workers N to split it)")
            }
            if phase != nil {
                throw MulanError(.usage, "--phase is for work directories split into worker parts",
                                 hint: "leave it out: one process runs both phases")
            }
            return .finished(try runSingle())
        case .parts(let n, let present):
            guard !slice.isSingle else {
                throw MulanError(.usage, "\(workdir) is split into \(n) worker parts",
                                 hint: "run \(n) workers (--worker I --workers \(n), or an array of \(n) tasks): "
                                     + "--phase local on every worker, then --phase global on every worker")
            }
            guard slice.count == n else {
                throw MulanError(.usage, "\(workdir) is split into \(n) worker parts, not \(slice.count)",
                                 hint: "use --workers \(n)")
            }
            guard let phase else {
                throw MulanError(.usage, "a work directory split into worker parts is filtered in two phases",
                                 hint: "run --phase local on every worker, then --phase global on every worker")
            }
            guard present.contains(slice.index) else {
                throw MulanError(.usage, "worker \(slice.index) of \(n) has no part in \(workdir)/parts",
                                 hint: "run mulan-ingest as that worker first")
            }
            switch phase {
            case .local: return try runLocalPhase()
            case .global: return .finished(try runGlobalPhase())
            }
        }
    }

    // MARK: Layouts

    private func runSingle() throws -> FilterReport {
        let started = Date()
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        let catalog = try Catalog(path: workdir + "/catalog.sqlite")
        let db = catalog.database
        let resources = try prepare()
        let previous = try previousVersion(db, resources)
        try db.execute("BEGIN IMMEDIATE")
        do {
            let counts = try decideTexts(db, resources)
            var report = try applyCorpusRules(db, resources, summaries: [SummarySource(database: db, schema: "temp")],
                                              own: 0, counts: counts)
            report.changes = try changes(db, resources, previous: previous)
            report.wallSeconds = Date().timeIntervalSince(started)
            try complete(db, resources, report: report)
            try db.execute(dryRun ? "ROLLBACK" : "COMMIT")
            return report
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    private var partDirectory: String { WorkLayout.partDirectory(root: workdir, slice: slice) }

    private func summaryPath(worker: Int, writeVersion: String) -> String {
        WorkLayout.partDirectory(root: workdir, index: worker, count: slice.count) + "/filter/\(writeVersion).summary.sqlite"
    }

    /// The local phase of a worker: tentative decisions in its part's catalog (an incomplete
    /// version), then its summary file, written under a temporary name and renamed into place.
    private func runLocalPhase() throws -> FilterOutcome {
        let started = Date()
        let directory = partDirectory
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): filtering \(source.rawValue) of \(directory), phase local",
                    event: "worker")
        let catalog = try Catalog(path: directory + "/catalog.sqlite")
        let db = catalog.database
        let resources = try prepare()
        let path = summaryPath(worker: slice.index, writeVersion: resources.writeVersion)
        // An older summary of this version no longer describes the part once it is decided again.
        unlink(path)
        var counts: LocalCounts
        try db.execute("BEGIN IMMEDIATE")
        do {
            counts = try decideTexts(db, resources)
            counts.wallSeconds = Date().timeIntervalSince(started)
            try db.run("UPDATE filter_versions SET stats = ? WHERE version = ?",
                       [String(decoding: try JSONEncoder().encode(counts), as: UTF8.self), resources.writeVersion])
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
        try Paths.makeDirectory((path as NSString).deletingLastPathComponent)
        try exportSummary(db, to: path, writeVersion: resources.writeVersion)
        return .localPhase(texts: counts.texts, summary: path, version: resources.writeVersion, slice: slice)
    }

    /// The global phase of a worker: every part's summary (read-only, immutable), the corpus-wide
    /// rules on this part's decisions, statistics; the version completes in this part.
    private func runGlobalPhase() throws -> FilterReport {
        let started = Date()
        let directory = partDirectory
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): filtering \(source.rawValue) of \(directory), phase global",
                    event: "worker")
        let catalog = try Catalog(path: directory + "/catalog.sqlite")
        let db = catalog.database
        let resources = try prepare()
        guard let row = try db.row("SELECT completed_at, stats FROM filter_versions WHERE version = ?",
                                   [resources.writeVersion]) else {
            throw MulanError(.usage, "filter version \(resources.writeVersion) has no local phase in \(directory)",
                             hint: "run --phase local on every worker first (with the same options)")
        }
        if row[0].string != nil, !dryRun {
            // Completed by an earlier run of this phase: nothing to redo (the local phase starts over).
            if let data = row[1].string?.data(using: .utf8), let report = try? JSONDecoder().decode(FilterReport.self, from: data) {
                console.log(.info, "version \(resources.version) is already complete in this part", event: "unchanged")
                return report
            }
        }
        guard let data = row[1].string?.data(using: .utf8),
              let counts = try? JSONDecoder().decode(LocalCounts.self, from: data), counts.phase == "local" else {
            throw MulanError(.usage, "filter version \(resources.writeVersion) in \(directory) is not waiting for its global phase",
                             hint: "run --phase local on every worker again, then --phase global")
        }
        var summaries: [SummarySource] = []
        for worker in 0..<slice.count {
            let path = summaryPath(worker: worker, writeVersion: resources.writeVersion)
            guard FileManager.default.fileExists(atPath: path) else {
                throw MulanError(.usage, "worker \(worker) has not finished the local phase of \(resources.writeVersion)",
                                 location: SourceLocation(file: path),
                                 hint: "run mulan-filter --phase local as worker \(worker) first")
            }
            let summary = try Database(path: path, immutable: true)
            let meta = try summary.row("SELECT version, worker, workers FROM summary_meta")
            guard meta?[0].string == resources.writeVersion, meta?[1].int == worker, meta?[2].int == slice.count else {
                throw MulanError(.data, "\(path) is not the summary of worker \(worker) of \(slice.count) for \(resources.writeVersion)",
                                 hint: "run --phase local on every worker again")
            }
            summaries.append(SummarySource(database: summary, schema: "main"))
        }
        let previous = try previousVersion(db, resources)
        try db.execute("BEGIN IMMEDIATE")
        do {
            var report = try applyCorpusRules(db, resources, summaries: summaries, own: slice.index, counts: counts)
            report.changes = try changes(db, resources, previous: previous)
            report.wallSeconds = counts.wallSeconds + Date().timeIntervalSince(started)
            try complete(db, resources, report: report)
            if dryRun {
                // The local phase had to write the dry run's decisions; they go now.
                try db.run("DELETE FROM filter_versions WHERE version = ?", [resources.writeVersion])
            }
            try db.execute("COMMIT")
            return report
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

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

    private func previousVersion(_ db: Database, _ r: Resources) throws -> String? {
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
    private func exportSummary(_ db: Database, to path: String, writeVersion: String) throws {
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
        if rename(tmp, path) != 0 {
            throw MulanError(.io, "cannot rename \(tmp) to \(path)", cause: String(cString: strerror(errno)))
        }
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

    private func changes(_ db: Database, _ r: Resources, previous: String?) throws -> FilterReport.Changes? {
        if dryRun { return try compare(db, version: r.writeVersion, with: previous) }
        if let previous { return try compare(db, version: r.writeVersion, with: previous == r.version ? nil : previous) }
        return nil
    }

    private func complete(_ db: Database, _ r: Resources, report: FilterReport) throws {
        try db.run("UPDATE filter_versions SET completed_at = ?, stats = ? WHERE version = ?",
                   [Timestamp.now(), report.json(), r.writeVersion])
    }

    /// Tags: minimum frequency (distinct tracks, over the whole corpus), one copy per track, at
    /// most N per track (the most frequent in the corpus kept). `temp.filter_global_freq` holds
    /// the corpus's frequency of every kept tag before these rules.
    private func applyTagRules(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'rare', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND normalized IN (
                SELECT normalized FROM temp.filter_global_freq WHERE n < ?2)
            """, [version, config.tags.minFrequency])
        try dropDuplicatesPerTrack(db, version: version)
        // A tag that survived the rare rule kept its count: duplicates leave one copy per track.
        try db.run("""
            WITH ranked AS (
                SELECT d.raw_text_id, ROW_NUMBER() OVER (
                    PARTITION BY d.track_id ORDER BY f.n DESC, d.raw_text_id) AS r
                FROM text_decisions d JOIN temp.filter_global_freq f ON f.normalized = d.normalized
                WHERE d.version = ?1 AND d.status = 'kept')
            UPDATE text_decisions SET status = 'dropped', reason = 'over-max-per-track', token_ids = NULL,
                token_count = 0
            WHERE version = ?1 AND raw_text_id IN (SELECT raw_text_id FROM ranked WHERE r > ?2)
            """, [version, config.tags.maxPerTrack])
    }

    /// Playlists: size bounds (distinct member tracks over the whole corpus, from
    /// `temp.filter_global_sizes`), one copy of a title per track.
    private func applyPlaylistRules(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped',
                reason = CASE WHEN (SELECT s.n FROM temp.filter_global_sizes s JOIN raw_texts r ON r.group_id = s.group_id
                                    WHERE r.id = text_decisions.raw_text_id) < ?2
                         THEN 'too-few-tracks' ELSE 'too-many-tracks' END,
                token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id IN (
                SELECT r.id FROM raw_texts r JOIN temp.filter_global_sizes s ON s.group_id = r.group_id
                WHERE r.source = 'playlists' AND (s.n < ?2 OR s.n > ?3))
            """, [version, config.playlists.minTracks, config.playlists.maxTracks])
        try dropDuplicatesPerTrack(db, version: version)
    }

    /// Keeps the first of identical normalized texts of a track.
    private func dropDuplicatesPerTrack(_ db: Database, version: String) throws {
        try db.run("""
            UPDATE text_decisions SET status = 'dropped', reason = 'duplicate', token_ids = NULL, token_count = 0
            WHERE version = ?1 AND status = 'kept' AND raw_text_id NOT IN (
                SELECT MIN(raw_text_id) FROM text_decisions WHERE version = ?1 AND status = 'kept'
                GROUP BY track_id, lower(normalized))
            """, [version])
    }

    private func collectStatistics(_ db: Database, version: String, into report: inout FilterReport) throws {
        for row in try db.rows("SELECT status, reason, COUNT(*) FROM text_decisions WHERE version = ? GROUP BY status, reason",
                               [version]) {
            let n = row[2].int ?? 0
            report.textsTotal += n
            if row[0].string == "kept" {
                report.kept += n
            } else {
                report.dropped += n
                report.droppedByReason[row[1].string ?? "?", default: 0] += n
            }
        }
        // Token-length distribution by SQL, so memory does not grow with the number of texts.
        let keptCount = report.kept
        if keptCount > 0 {
            func quantile(_ p: Double) throws -> Int {
                try db.row("""
                    SELECT token_count FROM text_decisions WHERE version = ? AND status = 'kept'
                    ORDER BY token_count LIMIT 1 OFFSET ?
                    """, [version, min(keptCount - 1, Int(Double(keptCount - 1) * p))])?[0].int ?? 0
            }
            var l = FilterReport.Lengths()
            l.min = try quantile(0)
            l.p50 = try quantile(0.5)
            l.p90 = try quantile(0.9)
            l.p99 = try quantile(0.99)
            l.max = try quantile(1)
            l.mean = try db.row("SELECT AVG(token_count) FROM text_decisions WHERE version = ? AND status = 'kept'",
                                [version])?[0].double ?? 0
            for row in try db.rows("""
                SELECT token_count, COUNT(*) FROM text_decisions WHERE version = ? AND status = 'kept' GROUP BY token_count
                """, [version]) {
                guard let n = row[0].int, let count = row[1].int else { continue }
                var lo = 1
                while lo * 2 <= n { lo *= 2 }
                l.histogram[n == 0 ? "0" : "\(lo)-\(lo * 2 - 1)", default: 0] += count
            }
            report.tokenLengths = l
        }
        report.topKept = try db.rows("""
            SELECT normalized, COUNT(*) AS n FROM text_decisions WHERE version = ? AND status = 'kept'
            GROUP BY normalized ORDER BY n DESC, normalized LIMIT 10
            """, [version]).map { FilterReport.Example(text: $0[0].string ?? "", count: $0[1].int ?? 0, reason: nil) }
        report.topDropped = try db.rows("""
            SELECT normalized, COUNT(*) AS n, reason FROM text_decisions WHERE version = ? AND status = 'dropped'
            GROUP BY normalized, reason ORDER BY n DESC, normalized LIMIT 10
            """, [version]).map { FilterReport.Example(text: $0[0].string ?? "", count: $0[1].int ?? 0, reason: $0[2].string) }
    }

    /// How decisions of `version` differ from those of `other` (per raw text).
    private func compare(_ db: Database, version: String, with other: String?) throws -> FilterReport.Changes {
        var c = FilterReport.Changes(comparedWith: other)
        guard let other else {
            c.newTexts = try db.row("SELECT COUNT(*) FROM text_decisions WHERE version = ?", [version])?[0].int ?? 0
            return c
        }
        let r = try db.row("""
            SELECT
              SUM(CASE WHEN o.status = 'kept' AND n.status = 'dropped' THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.status = 'dropped' AND n.status = 'kept' THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.status = n.status AND o.reason != n.reason THEN 1 ELSE 0 END),
              SUM(CASE WHEN o.raw_text_id IS NULL THEN 1 ELSE 0 END)
            FROM text_decisions n LEFT JOIN text_decisions o ON o.version = ?2 AND o.raw_text_id = n.raw_text_id
            WHERE n.version = ?1
            """, [version, other])
        c.keptToDropped = r?[0].int ?? 0
        c.droppedToKept = r?[1].int ?? 0
        c.reasonChanged = r?[2].int ?? 0
        c.newTexts = r?[3].int ?? 0
        return c
    }
}

/// Exact and near-duplicate sentence lookups in temporary SQLite tables (on disk, so memory stays
/// bounded however many sentences a source has).
final class SQLiteSentenceIndex: SentenceIndex {
    let db: Database

    init(database: Database) throws(MulanError) {
        db = database
        try db.execute("""
            CREATE TEMP TABLE IF NOT EXISTS seen_sentences (hash INTEGER PRIMARY KEY);
            CREATE TEMP TABLE IF NOT EXISTS sentence_signatures (id INTEGER PRIMARY KEY, signature TEXT NOT NULL);
            CREATE TEMP TABLE IF NOT EXISTS sentence_bands (band INTEGER NOT NULL, signature_id INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS temp.sentence_bands_band ON sentence_bands(band);
            DELETE FROM seen_sentences; DELETE FROM sentence_signatures; DELETE FROM sentence_bands;
            """)
    }

    func seenExact(_ hash: UInt64) throws -> Bool {
        try db.run("INSERT OR IGNORE INTO seen_sentences (hash) VALUES (?)", [Int64(bitPattern: hash)])
        return db.changes == 0
    }

    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool {
        var candidates = Set<Int>()
        for band in bands {
            for row in try db.rows("SELECT signature_id FROM sentence_bands WHERE band = ?", [Int64(bitPattern: band)]) {
                if let id = row[0].int { candidates.insert(id) }
            }
        }
        for id in candidates.sorted() {
            guard let text = try db.row("SELECT signature FROM sentence_signatures WHERE id = ?", [id])?[0].string else { continue }
            if MinHasher.similarity(signature, Self.numbers(text)) >= threshold { return true }
        }
        try db.run("INSERT INTO sentence_signatures (signature) VALUES (?)", [Self.hex(signature)])
        let id = db.lastInsertRowID
        for band in bands {
            try db.run("INSERT INTO sentence_bands (band, signature_id) VALUES (?, ?)", [Int64(bitPattern: band), id])
        }
        return false
    }

    /// Numbers as space-separated lowercase hex, the signatures' stored form.
    static func hex(_ values: [UInt64]) -> String { values.map { String($0, radix: 16) }.joined(separator: " ") }

    /// The numbers of `hex(_:)`, parsed straight from the UTF-8 bytes (this runs for every
    /// signature that shares a band with a new sentence, so it must be cheap).
    static func numbers(_ text: String) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(64)
        var value: UInt64 = 0
        var digits = 0
        for b in text.utf8 {
            let nibble: UInt8
            switch b {
            case 0x30...0x39: nibble = b - 0x30
            case 0x61...0x66: nibble = b - 0x61 + 10
            case 0x41...0x46: nibble = b - 0x41 + 10
            default:
                if digits > 0 { out.append(value) }
                value = 0
                digits = 0
                continue
            }
            value = value << 4 | UInt64(nibble)
            digits += 1
        }
        if digits > 0 { out.append(value) }
        return out
    }
}
