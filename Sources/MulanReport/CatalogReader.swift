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

    let queries: ReportQueries
    let path: String

    init(path: String) throws(MulanError) {
        self.path = path
        queries = try ReportQueries(path: path)
    }

    func read(topTags: Int) throws -> CatalogFigures {
        try queries.snapshot { () throws -> CatalogFigures in
            let tables = try queries.tables()
            guard tables.contains("tracks"), tables.contains("clips") else {
                throw MulanError(.data, "\(path) is not a mulan catalog (it has no tracks or clips table)")
            }
            let version = tables.contains("schema_migrations") ? try queries.schemaVersion() : 0
            var figures = CatalogFigures(path: path, schemaVersion: version)
            figures.audio = try audio()
            let clipColumns = try queries.columns(of: "clips")
            if clipColumns.isSuperset(of: ["lufs", "loudness_range", "true_peak_db", "loudness_status", "lufs_before",
                                           "true_peak_before_db", "loudness_gain_db"]) {
                figures.audio.loudness = try r128Loudness()
            }
            if tables.isSuperset(of: ["audio_filter_versions", "audio_decisions", "audio_scores"]) {
                figures.audioFilter = try audioFilter()
            }
            let rawColumns = try queries.columns(of: "raw_texts")
            figures.hasFilterDecisions = tables.contains("text_decisions") && tables.contains("filter_versions")
            figures.sources = try sources(hasSourceColumn: rawColumns.contains("source"),
                                          hasDecisions: figures.hasFilterDecisions)
            if let tags = figures.sources.first(where: { $0.source == "tags" }), let v = tags.version {
                figures.tagTail = try tagTail(version: v, top: topTags)
            }
            return figures
        }
    }

    // MARK: Audio

    private func audio() throws -> AudioFigures {
        var a = AudioFigures()
        a.tracksByOutcome = try queries.tracksByOutcome()
        for r in try queries.clipsByStatus() {
            if r.status == "kept" {
                a.clipsKept = r.clips
                a.keptSeconds = r.seconds
            } else if r.status == "silent" {
                a.clipsSilent = r.clips
            }
        }
        a.clipDurations = try histogram(.keptClips(column: "duration_s"))
        a.trackDurations = try histogram(.ingestedTracks(column: "duration_s"))
        (a.rmsDBFS, a.peakDBFS) = try loudness()
        return a
    }

    /// A histogram of `values` binned by SQL: MIN and MAX choose round bins, then one GROUP BY counts
    /// them; nil when no row has a value.
    func histogram(_ values: ReportQueries.Values, minimumWidth: Double = 0) throws -> Histogram? {
        try histograms(values, minimumWidth: minimumWidth).first?.histogram
    }

    /// Histograms of `values`, one per distinct key (sorted by key; a single one for values without
    /// keys), all on the same bins so that they compare: one query for MIN and MAX, then one GROUP BY
    /// key and bin. Bins are at least `minimumWidth` wide (`Histogram.covering`).
    func histograms(_ values: ReportQueries.Values, target: Int = 40,
                    minimumWidth: Double = 0) throws -> [(key: String, histogram: Histogram)] {
        var covering: Histogram?
        guard let counts = try queries.binnedCounts(values, bins: { lo, hi in
            let bins = Histogram.covering(lo, hi, target: target, minimumWidth: minimumWidth)
            covering = bins
            return (bins.lower, bins.width)
        }), let bins = covering else { return [] }
        var byKey: [String: Histogram] = [:]
        for c in counts { byKey[c.key, default: bins].add(bin: c.bin, count: c.count) }
        return byKey.keys.sorted().map { ($0, byKey[$0] ?? bins) }
    }

    static func dBFS(_ linear: Double) -> Double {
        linear > 0 ? max(floorDBFS, 20 * log10(linear)) : floorDBFS
    }

    /// RMS and peak level of kept clips in dBFS (20·log10 of the linear value, full scale 1.0).
    /// SQLite has no logarithm in every build, so the rows are streamed into bins fixed from MIN/MAX.
    private func loudness() throws -> (Histogram?, Histogram?) {
        guard let r = try queries.keptClipLevelRange() else { return (nil, nil) }
        var rms = Histogram.covering(Self.dBFS(r.rms.min ?? 0), Self.dBFS(r.rms.max ?? 0), target: 40)
        var peak = Histogram.covering(Self.dBFS(r.peak.min ?? 0), Self.dBFS(r.peak.max ?? 0), target: 40)
        try queries.forEachKeptClipLevel { r, p in
            rms.add(Self.dBFS(r ?? 0))
            peak.add(Self.dBFS(p ?? 0))
        }
        return (rms, peak)
    }

    /// The EBU R128 columns of kept clips, binned by SQL (they are LUFS, dBTP and LU already).
    private func r128Loudness() throws -> LoudnessFigures {
        var l = LoudnessFigures()
        var counts: [String: Int] = [:]
        for r in try queries.keptClipsByLoudnessStatus() {
            counts[r.status ?? LoudnessFigures.notMeasured, default: 0] += r.clips
        }
        let order = LoudnessFigures.statusOrder
        func rank(_ s: String) -> Int { order.firstIndex(of: s) ?? order.count }
        l.byStatus = counts.keys.sorted { (rank($0), $0) < (rank($1), $1) }.map { ($0, counts[$0] ?? 0) }
        // Bins of at least 0.1 LU (dB): normalized clips reach the target to within 10⁻⁶ LU, and finer
        // bins would only spread that rounding out.
        let resolution = Self.loudnessResolution
        l.integratedLUFS = try histogram(.keptClips(column: "lufs"), minimumWidth: resolution)
        l.truePeakDBTP = try histogram(.keptClips(column: "true_peak_db"), minimumWidth: resolution)
        l.loudnessRange = try histogram(.keptClips(column: "loudness_range"), minimumWidth: resolution)
        l.gainDB = try histogram(.keptClips(column: "loudness_gain_db"), minimumWidth: resolution)
        if let r = try queries.normalizedClips(ceilingMargin: Self.ceilingMarginDB + Self.ceilingToleranceDB) {
            l.normalized = r.normalized
            l.atCeiling = r.atCeiling
        }
        l.targets = try queries.loudnessTargets()
        return l
    }

    // MARK: Text

    private func sources(hasSourceColumn: Bool, hasDecisions: Bool) throws -> [SourceFigures] {
        var bySource: [String: SourceFigures] = [:]
        for r in try queries.loadedTexts(bySource: hasSourceColumn) where r.texts > 0 {
            bySource[r.source, default: SourceFigures(source: r.source)].loaded = r.texts
        }
        if hasDecisions {
            // The latest completed version of each source, as mulan-shard picks it.
            for r in try queries.completedFilterVersions() {
                guard let s = r.source, let v = r.version, bySource[s]?.version == nil else { continue }
                var f = bySource[s] ?? SourceFigures(source: s)
                f.version = v
                f.unfiltered = r.unfiltered
                f.sentences = r.stats.flatMap(Self.sentenceCounts)
                f.decisions = try queries.textDecisionCounts(version: v)
                f.tokenCounts = try queries.keptTokenCounts(version: v)
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
        tail.top = try queries.topKeptTexts(version: version, limit: top).map { ($0.text, $0.tracks) }
        tail.tagsByFrequency = try queries.keptTextsByTrackCount(version: version).map { ($0.tracks, $0.texts) }
        return tail
    }
}
