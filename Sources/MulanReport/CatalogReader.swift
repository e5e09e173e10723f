import Foundation
import MulanCatalog
import MulanCore

/// What the report shows of the catalog's audio: track outcomes, and distributions over clips.
struct AudioFigures {
    var tracksByOutcome: [(status: String, reason: String, count: Int)] = []
    var clipsKept = 0
    var clipsSilent = 0
    var keptSeconds = 0.0
    var clipDurations: Histogram?
    var trackDurations: Histogram?
    var rmsDBFS: Histogram?
    var peakDBFS: Histogram?
    /// EBU R128 loudness of kept clips; nil when the catalog predates it (schema version 5).
    var loudness: LoudnessFigures?
}

/// The EBU R128 columns of kept clips (schema version 5), and what `--loudness-target` did.
struct LoudnessFigures {
    /// Kept clips by `loudness_status` ("not measured" for NULL), in the order of `statusOrder`.
    var byStatus: [(status: String, count: Int)] = []
    var integratedLUFS: Histogram?
    var truePeakDBTP: Histogram?
    var loudnessRange: Histogram?
    /// `loudness_gain_db` of clips stored with normalization on.
    var gainDB: Histogram?
    /// Kept clips stored with normalization on (a gain recorded), and those of them whose gain put
    /// the true peak at the ceiling (`true_peak_before_db + loudness_gain_db` at the track's
    /// `loudness_max_true_peak_db` less ingest's 0.01 dB margin: the gain the ceiling limited).
    var normalized = 0
    var atCeiling = 0
    /// The (target, ceiling) pairs tracks were stored with, and how many tracks each.
    var targets: [(lufs: Double, ceilingDBTP: Double, tracks: Int)] = []

    static let notMeasured = "not measured"
    static let statusOrder = ["measured", "below-gate", "failed", notMeasured]
    var measured: Int { byStatus.filter { $0.status == "measured" }.map(\.count).reduce(0, +) }
    /// Whether any kept clip was measured (whatever the outcome).
    var any: Bool { byStatus.contains { $0.status != Self.notMeasured && $0.count > 0 } }
}

/// One text source: how many texts were loaded, and what its latest completed filter version decided.
struct SourceFigures {
    var source: String
    var loaded = 0
    var version: String?
    var unfiltered = false
    var decisions: [(status: String, reason: String, count: Int)] = []
    /// Kept texts by token count (as SQL grouped them).
    var tokenCounts: [(tokens: Int, texts: Int)] = []
    /// Descriptions only: the sentence-level decisions of the filter report (`filter_versions.stats`,
    /// schemas/filter-report.schema.json), reasons sorted by count.
    var sentences: (total: Int, kept: Int, dropped: [(reason: String, count: Int)])?
    var kept: Int { decisions.filter { $0.status == "kept" }.map(\.count).reduce(0, +) }
    var decided: Int { decisions.map(\.count).reduce(0, +) }
}

/// The long tail of kept tags: the most frequent ones, and for the rank/frequency plot how many
/// tags are carried by each number of tracks.
struct TagTail {
    var version: String
    var top: [(tag: String, tracks: Int)] = []
    /// (tracks carrying a tag, number of such tags), most tracks first.
    var tagsByFrequency: [(tracks: Int, tags: Int)] = []
    var distinctTags: Int { tagsByFrequency.map(\.tags).reduce(0, +) }
}

struct CatalogFigures {
    var path: String
    var schemaVersion: Int
    var audio = AudioFigures()
    /// nil when the catalog predates per-source text (schema version 1).
    var sources: [SourceFigures] = []
    var hasFilterDecisions = false
    var tagTail: TagTail?
    /// nil when the catalog predates the audio filter (schema version 6).
    var audioFilter: AudioFilterFigures?
}

/// Reads the catalog read-only, inside one read transaction (a consistent snapshot even while a
/// stage writes). Everything is aggregated by SQL or streamed row by row into fixed bins, so memory
/// does not grow with the catalog.
struct CatalogReader {
    /// The floor of the loudness axes: clips quieter than this are counted in the lowest bin.
    static let floorDBFS = -100.0
    /// How far under `--loudness-max-true-peak` mulan-ingest aims a gain the ceiling limits
    /// (LoudnessStep.ceilingMargin, docs/ingest.md#loudness); a limited gain puts the clip's true
    /// peak before normalization plus the gain exactly there, give or take floating-point rounding.
    static let ceilingMarginDB = 0.01
    static let ceilingToleranceDB = 1e-6
    /// The finest bin of the EBU R128 histograms, LU or dB.
    static let loudnessResolution = 0.1
    /// The order sources are shown in (MuLan's), then any other source by name.
    static let sourceOrder = ["tags", "descriptions", "playlists", "aset"]

    let db: Database
    let path: String

    init(path: String) throws(MulanError) {
        self.path = path
        db = try Database(path: path, readOnly: true)
    }

    func read(topTags: Int) throws -> CatalogFigures {
        try db.execute("BEGIN")
        defer { try? db.execute("COMMIT") }
        let tables = Set(try db.rows("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0[0].string })
        guard tables.contains("tracks"), tables.contains("clips") else {
            throw MulanError(.data, "\(path) is not a mulan catalog (it has no tracks or clips table)")
        }
        let version = tables.contains("schema_migrations")
            ? try db.row("SELECT MAX(version) FROM schema_migrations")?[0].int ?? 0 : 0
        var figures = CatalogFigures(path: path, schemaVersion: version)
        figures.audio = try audio()
        let clipColumns = Set(try db.rows("PRAGMA table_info(clips)").compactMap { $0[1].string })
        if clipColumns.isSuperset(of: ["lufs", "loudness_range", "true_peak_db", "loudness_status", "lufs_before",
                                       "true_peak_before_db", "loudness_gain_db"]) {
            figures.audio.loudness = try r128Loudness()
        }
        if tables.isSuperset(of: ["audio_filter_versions", "audio_decisions", "audio_scores"]) {
            figures.audioFilter = try audioFilter()
        }
        let rawColumns = Set(try db.rows("PRAGMA table_info(raw_texts)").compactMap { $0[1].string })
        figures.hasFilterDecisions = tables.contains("text_decisions") && tables.contains("filter_versions")
        figures.sources = try sources(hasSourceColumn: rawColumns.contains("source"),
                                      hasDecisions: figures.hasFilterDecisions)
        if let tags = figures.sources.first(where: { $0.source == "tags" }), let v = tags.version {
            figures.tagTail = try tagTail(version: v, top: topTags)
        }
        return figures
    }

    // MARK: Audio

    private func audio() throws -> AudioFigures {
        var a = AudioFigures()
        for r in try db.rows("SELECT status, COALESCE(reason, ''), COUNT(*) FROM tracks GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC, 2") {
            a.tracksByOutcome.append((r[0].string ?? "", r[1].string ?? "", r[2].int ?? 0))
        }
        for r in try db.rows("SELECT status, COUNT(*), TOTAL(duration_s) FROM clips GROUP BY status") {
            if r[0].string == "kept" {
                a.clipsKept = r[1].int ?? 0
                a.keptSeconds = r[2].double ?? 0
            } else if r[0].string == "silent" {
                a.clipsSilent = r[1].int ?? 0
            }
        }
        a.clipDurations = try histogram(column: "duration_s", from: "clips WHERE status = 'kept'")
        a.trackDurations = try histogram(column: "duration_s", from: "tracks WHERE status = 'ingested'")
        (a.rmsDBFS, a.peakDBFS) = try loudness()
        return a
    }

    /// A histogram of `column` binned by SQL: MIN and MAX choose round bins, then one GROUP BY counts them.
    /// `from` is a FROM clause with a WHERE (`clips WHERE status = 'kept'`); nil when no row has a value.
    func histogram(column: String, from: String, minimumWidth: Double = 0) throws -> Histogram? {
        try histograms(value: column, key: nil, from: from, minimumWidth: minimumWidth).first?.histogram
    }

    /// Histograms of `value` over `from` (a FROM clause with a WHERE, whose `?` take `arguments`), one
    /// per distinct `key` (sorted by key; a single one when `key` is nil), all on the same bins so
    /// that they compare: one query for MIN and MAX, then one GROUP BY key and bin. Bins are at least
    /// `minimumWidth` wide (`Histogram.covering`).
    func histograms(value: String, key: String?, from: String, _ arguments: [any SQLBindable] = [],
                    target: Int = 40, minimumWidth: Double = 0) throws -> [(key: String, histogram: Histogram)] {
        guard let r = try db.row("SELECT MIN(\(value)), MAX(\(value)), COUNT(\(value)) FROM \(from)", arguments),
              let lo = r[0].double, let hi = r[1].double, (r[2].int ?? 0) > 0 else { return [] }
        let bins = Histogram.covering(lo, hi, target: target, minimumWidth: minimumWidth)
        var byKey: [String: Histogram] = [:]
        for row in try db.rows("""
            SELECT \(key ?? "''") AS k, CAST((\(value) - ?) / ? AS INTEGER) AS b, COUNT(*) FROM \(from) AND \(value) IS NOT NULL
            GROUP BY k, b
            """, [bins.lower, bins.width] + arguments) {
            byKey[row[0].string ?? "", default: bins].add(bin: row[1].int ?? 0, count: row[2].int ?? 0)
        }
        return byKey.keys.sorted().map { ($0, byKey[$0] ?? bins) }
    }

    static func dBFS(_ linear: Double) -> Double {
        linear > 0 ? max(floorDBFS, 20 * log10(linear)) : floorDBFS
    }

    /// RMS and peak level of kept clips in dBFS (20·log10 of the linear value, full scale 1.0).
    /// SQLite has no logarithm in every build, so the rows are streamed into bins fixed from MIN/MAX.
    private func loudness() throws -> (Histogram?, Histogram?) {
        guard let r = try db.row("SELECT MIN(rms), MAX(rms), MIN(peak), MAX(peak), COUNT(*) FROM clips WHERE status = 'kept'"),
              (r[4].int ?? 0) > 0 else { return (nil, nil) }
        var rms = Histogram.covering(Self.dBFS(r[0].double ?? 0), Self.dBFS(r[1].double ?? 0), target: 40)
        var peak = Histogram.covering(Self.dBFS(r[2].double ?? 0), Self.dBFS(r[3].double ?? 0), target: 40)
        try db.forEach("SELECT rms, peak FROM clips WHERE status = 'kept'") { row in
            rms.add(Self.dBFS(row[0].double ?? 0))
            peak.add(Self.dBFS(row[1].double ?? 0))
        }
        return (rms, peak)
    }

    /// The EBU R128 columns of kept clips, binned by SQL (they are LUFS, dBTP and LU already).
    private func r128Loudness() throws -> LoudnessFigures {
        var l = LoudnessFigures()
        var counts: [String: Int] = [:]
        for r in try db.rows("SELECT loudness_status, COUNT(*) FROM clips WHERE status = 'kept' GROUP BY 1") {
            counts[r[0].string ?? LoudnessFigures.notMeasured, default: 0] += r[1].int ?? 0
        }
        let order = LoudnessFigures.statusOrder
        func rank(_ s: String) -> Int { order.firstIndex(of: s) ?? order.count }
        l.byStatus = counts.keys.sorted { (rank($0), $0) < (rank($1), $1) }.map { ($0, counts[$0] ?? 0) }
        // Bins of at least 0.1 LU (dB): normalized clips reach the target to within 10⁻⁶ LU, and finer
        // bins would only spread that rounding out.
        let kept = "clips WHERE status = 'kept'", resolution = Self.loudnessResolution
        l.integratedLUFS = try histogram(column: "lufs", from: kept, minimumWidth: resolution)
        l.truePeakDBTP = try histogram(column: "true_peak_db", from: kept, minimumWidth: resolution)
        l.loudnessRange = try histogram(column: "loudness_range", from: kept, minimumWidth: resolution)
        l.gainDB = try histogram(column: "loudness_gain_db", from: kept, minimumWidth: resolution)
        if let r = try db.row("""
            SELECT COUNT(*), TOTAL(c.lufs_before IS NOT NULL AND c.true_peak_before_db IS NOT NULL
                                   AND c.true_peak_before_db + c.loudness_gain_db >= t.loudness_max_true_peak_db - ?)
            FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND c.loudness_gain_db IS NOT NULL
            """, [Self.ceilingMarginDB + Self.ceilingToleranceDB]) {
            l.normalized = r[0].int ?? 0
            l.atCeiling = Int(r[1].double ?? 0)
        }
        for r in try db.rows("""
            SELECT loudness_target_lufs, loudness_max_true_peak_db, COUNT(*) FROM tracks
            WHERE loudness_target_lufs IS NOT NULL AND status = 'ingested' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
            """) {
            l.targets.append((r[0].double ?? 0, r[1].double ?? 0, r[2].int ?? 0))
        }
        return l
    }

    // MARK: Text

    private func sources(hasSourceColumn: Bool, hasDecisions: Bool) throws -> [SourceFigures] {
        var bySource: [String: SourceFigures] = [:]
        let loadedSQL = hasSourceColumn ? "SELECT COALESCE(source, ''), COUNT(*) FROM raw_texts GROUP BY 1"
                                        : "SELECT '', COUNT(*) FROM raw_texts"
        for r in try db.rows(loadedSQL) where (r[1].int ?? 0) > 0 {
            let s = r[0].string ?? ""
            bySource[s, default: SourceFigures(source: s)].loaded = r[1].int ?? 0
        }
        if hasDecisions {
            // The latest completed version of each source, as mulan-shard picks it.
            for r in try db.rows("""
                SELECT source, version, unfiltered, stats FROM filter_versions
                WHERE completed_at IS NOT NULL AND version NOT LIKE '%~dry-run'
                ORDER BY source, completed_at DESC, version
                """) {
                guard let s = r[0].string, let v = r[1].string, bySource[s]?.version == nil else { continue }
                var f = bySource[s] ?? SourceFigures(source: s)
                f.version = v
                f.unfiltered = (r[2].int ?? 0) != 0
                f.sentences = r[3].string.flatMap(Self.sentenceCounts)
                for d in try db.rows("""
                    SELECT status, reason, COUNT(*) FROM text_decisions WHERE version = ? GROUP BY status, reason
                    ORDER BY status DESC, 3 DESC, reason
                    """, [v]) {
                    f.decisions.append((d[0].string ?? "", d[1].string ?? "", d[2].int ?? 0))
                }
                for t in try db.rows("""
                    SELECT token_count, COUNT(*) FROM text_decisions WHERE version = ? AND status = 'kept'
                    GROUP BY token_count ORDER BY token_count
                    """, [v]) {
                    f.tokenCounts.append((t[0].int ?? 0, t[1].int ?? 0))
                }
                bySource[s] = f
            }
        }
        return bySource.values.sorted { a, b in
            let ia = Self.sourceOrder.firstIndex(of: a.source) ?? (a.source.isEmpty ? Int.max : Self.sourceOrder.count)
            let ib = Self.sourceOrder.firstIndex(of: b.source) ?? (b.source.isEmpty ? Int.max : Self.sourceOrder.count)
            return (ia, a.source) < (ib, b.source)
        }
    }

    /// The sentence counts of a filter report, when it has them.
    static func sentenceCounts(_ stats: String) -> (total: Int, kept: Int, dropped: [(reason: String, count: Int)])? {
        struct Counts: Decodable {
            var total: Int?
            var kept: Int?
            var dropped: [String: Int]?
            enum CodingKeys: String, CodingKey {
                case total = "sentences_total", kept = "sentences_kept", dropped = "sentences_dropped_by_reason"
            }
        }
        guard let c = try? JSONDecoder().decode(Counts.self, from: Data(stats.utf8)), let total = c.total, total > 0 else {
            return nil
        }
        let dropped = (c.dropped ?? [:]).map { (reason: $0.key, count: $0.value) }
            .sorted { ($1.count, $0.reason) < ($0.count, $1.reason) }
        return (total, c.kept ?? total - dropped.map(\.count).reduce(0, +), dropped)
    }

    /// Kept tags of `version` counted by the tracks that carry them (canonical forms, as filtered).
    private func tagTail(version: String, top: Int) throws -> TagTail {
        var tail = TagTail(version: version)
        for r in try db.rows("""
            SELECT normalized, COUNT(DISTINCT track_id) AS n FROM text_decisions
            WHERE version = ? AND status = 'kept' GROUP BY normalized ORDER BY n DESC, normalized LIMIT ?
            """, [version, top]) {
            tail.top.append((r[0].string ?? "", r[1].int ?? 0))
        }
        for r in try db.rows("""
            SELECT n, COUNT(*) FROM (
                SELECT COUNT(DISTINCT track_id) AS n FROM text_decisions
                WHERE version = ? AND status = 'kept' GROUP BY normalized)
            GROUP BY n ORDER BY n DESC
            """, [version]) {
            tail.tagsByFrequency.append((r[0].int ?? 0, r[1].int ?? 0))
        }
        return tail
    }
}
