import Foundation
@testable import MulanCatalog
import MulanCore
@testable import MulanReport
import MulanRecords
import MulanTestSupport
import Testing

/// EBU R128 loudness (schema version 5) and `mulan-filter audio` decisions (schema version 6)
/// written row by row into `SyntheticCatalog`, small enough to know every figure.
enum SyntheticLoudnessAndAudioFilter {
    static let hostilePrompt = "<img src=x onerror=alert(1)>"
    static let hostileText = "\"</svg><script>alert('x')</script> & more"
    static let hostileRule = "\(hostilePrompt) < 0.5"

    /// Per kept clip, in id order: (status, lufs, loudness range, true peak, lufs before, true peak before, gain).
    /// Clips of tracks t0…t2 were normalized to −23 LUFS under a −1 dBTP ceiling; the 2nd and 4th
    /// clips hit it (true peak before + gain = −1.01 dBTP); t3's clips were not normalized.
    static let loudness: [(String?, Double?, Double?, Double?, Double?, Double?, Double?)] = [
        ("measured", -23.0, 0.0, -5.0, -13.0, 5.0, -10.0),
        ("measured", -28.01, 1.5, -1.01, -30.0, -3.0, 1.99),
        ("measured", -23.0, 3.0, -2.5, -20.0, -5.5, -3.0),
        ("measured", -25.5, 3.0, -1.01, -40.0, -16.01, 15.0),
        ("measured", -23.0, 7.2, -8.0, -23.0, -8.0, 0.0),
        ("below-gate", nil, nil, -75.0, nil, -75.0, 0.0),
        ("failed", nil, nil, nil, nil, nil, nil),
        (nil, nil, nil, nil, nil, nil, nil),
    ]

    /// Scores of the kept clips 1…6 (piano, hostile); clip 7 could not be decoded; clip 8 came later.
    static let scores: [(Double, Double)] = [(0.42, 0.1), (0.2, 0.3), (0.35, 0.05), (0.12, -0.02), (0.28, 0.2), (0.31, 0.61)]

    static func json(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @discardableResult
    static func make(_ workdir: String) throws -> String {
        let path = try SyntheticCatalog.make(workdir)
        let db = try Catalog(path: path).database
        let clips = try db.rows("SELECT id FROM clips WHERE status = 'kept' ORDER BY id").compactMap { $0[0].int }
        precondition(clips.count == loudness.count)
        try db.run("""
            UPDATE tracks SET loudness_target_lufs = -23, loudness_max_true_peak_db = -1 WHERE track_id IN ('t0', 't1', 't2')
            """)
        for (id, l) in zip(clips, loudness) {
            try db.run("""
                UPDATE clips SET loudness_status = ?, lufs = ?, loudness_range = ?, true_peak_db = ?, lufs_before = ?,
                    true_peak_before_db = ?, loudness_gain_db = ? WHERE id = ?
                """, [l.0, l.1, l.2, l.3, l.4, l.5, l.6, id])
        }
        let prompts = try json([["name": "piano", "text": "solo piano"], ["name": hostilePrompt, "text": hostileText]])
        for v in [("audio-old", "[\"piano > others\"]", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z" as String?),
                  ("audio-new", try json(["piano >= 0.3", hostileRule]), "2026-01-02T00:00:00Z", "2026-01-02T00:10:00Z"),
                  ("audio-wip", "[\"piano >= 0.9\"]", "2026-01-03T00:00:00Z", nil)] {
            try db.run("""
                INSERT INTO audio_filter_versions (version, score_set, checkpoint, checkpoint_sha256, checkpoint_step, vocab_sha256,
                    prompts, rules, created_at, completed_at) VALUES (?, 'scores-a', '/runs/m/checkpoint.bin', 'c', 300, 'v', ?, ?, ?, ?)
                """, [v.0, prompts, v.1, v.2, v.3])
        }
        for (k, id) in clips.prefix(7).enumerated() {
            let track = try db.row("SELECT t.track_id FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?", [id])?[0].string ?? ""
            if k < scores.count {
                try db.run("INSERT INTO audio_scores (score_set, clip_id, flac_sha256, scores, windows) VALUES ('scores-a', ?, 'x', ?, 3)",
                           [id, try json(["piano": scores[k].0, hostilePrompt: scores[k].1])])
            } else {
                try db.run("INSERT INTO audio_scores (score_set, clip_id, flac_sha256, error) VALUES ('scores-a', ?, 'x', 'corrupt: no frame')",
                           [id])
            }
            // The new version: piano >= 0.3 first, then the hostile prompt under 0.5; unreadable when not scored.
            let new: (String, String)
            if k >= scores.count {
                new = ("dropped", "unreadable")
            } else if scores[k].0 < 0.3 {
                new = ("dropped", "piano >= 0.3")
            } else if scores[k].1 >= 0.5 {
                new = ("dropped", hostileRule)
            } else {
                new = ("kept", "kept")
            }
            let old = k < scores.count && scores[k].0 > scores[k].1 ? ("kept", "kept") : ("dropped", k < scores.count ? "piano > others" : "unreadable")
            for (version, d) in [("audio-new", new), ("audio-old", old)] {
                try db.run("INSERT INTO audio_decisions (version, clip_id, track_id, status, reason, detail) VALUES (?, ?, ?, ?, ?, 'd')",
                           [version, id, track, d.0, d.1])
            }
        }
        return path
    }
}

@Suite("mulan-report loudness and audio filter")
struct ReportLoudnessAndAudioFilterTests {
    static let newPlots: Set<String> = ["fig-loudness-status", "fig-clip-lufs", "fig-clip-true-peak", "fig-clip-lra",
                                        "fig-loudness-gain", "fig-audio-filter-funnel", "fig-audio-score-1", "fig-audio-score-2"]

    static func plotIDs(_ html: String) -> Set<String> {
        Set(html.components(separatedBy: "<svg class=\"plot\" id=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) })
    }

    /// One plot's `<svg>` by id.
    static func svg(_ html: String, id: String) -> String {
        (html.components(separatedBy: "<svg class=\"plot\" id=\"\(id)\"").dropFirst().first ?? "").components(separatedBy: "</svg>")[0]
    }

    /// Each bin's count of a histogram recomputed here from the values SQL returns one by one.
    static func recount(_ h: Histogram, _ values: [Double]) -> [Int] {
        var counts = Array(repeating: 0, count: h.counts.count)
        for v in values { counts[h.bin(of: v)] += 1 }
        return counts
    }

    @Test func loudnessFiguresMatchCountsDoneHere() throws {
        let dir = TempDir("mulan-report")
        let path = try SyntheticLoudnessAndAudioFilter.make(dir.file("work"))
        let db = try Database(path: path, readOnly: true)
        let l = try #require(try CatalogReader(path: path).read(topTags: 3).audio.loudness)

        var byStatus: [(String, Int)] = []
        for r in try db.rows("SELECT COALESCE(loudness_status, 'not measured'), COUNT(*) FROM clips WHERE status = 'kept' GROUP BY 1") {
            byStatus.append((r[0].string ?? "", r[1].int ?? 0))
        }
        #expect(l.byStatus.map(\.status) == ["measured", "below-gate", "failed", "not measured"])
        for (status, n) in byStatus { #expect(l.byStatus.first { $0.status == status }?.count == n, "\(status)") }
        #expect(l.measured == 5 && l.any)

        for (h, column) in [(l.integratedLUFS, "lufs"), (l.truePeakDBTP, "true_peak_db"), (l.loudnessRange, "loudness_range"),
                            (l.gainDB, "loudness_gain_db")] {
            let values = try db.rows("SELECT \(column) FROM clips WHERE status = 'kept' AND \(column) IS NOT NULL").compactMap { $0[0].double }
            let histogram = try #require(h, "\(column)")
            #expect(histogram.total == values.count && !values.isEmpty, "\(column)")
            #expect(histogram.counts == Self.recount(histogram, values), "\(column)")
        }
        #expect(l.integratedLUFS?.total == 5 && l.truePeakDBTP?.total == 6 && l.gainDB?.total == 6)

        // The ceiling, recomputed here from the rows: a gain that put true peak before + gain at −1 − 0.01 dBTP.
        var normalized = 0, atCeiling = 0
        for r in try db.rows("""
            SELECT c.lufs_before, c.true_peak_before_db, c.loudness_gain_db, t.loudness_max_true_peak_db
            FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.status = 'kept' AND c.loudness_gain_db IS NOT NULL
            """) {
            normalized += 1
            if r[0].double != nil, let before = r[1].double, let gain = r[2].double, let ceiling = r[3].double,
               abs(before + gain - (ceiling - 0.01)) < 1e-9 { atCeiling += 1 }
        }
        #expect(l.normalized == normalized && normalized == 6)
        #expect(l.atCeiling == atCeiling && atCeiling == 2)
        #expect(l.targets.count == 1 && l.targets[0].lufs == -23 && l.targets[0].ceilingDBTP == -1 && l.targets[0].tracks == 3)

        let html = Report.build(ReportInputs(workdir: dir.file("work"), topTags: 3)).html
        let status = Self.svg(html, id: "fig-loudness-status")
        for text in [">measured</text>", ">5 (62.5%)</text>", ">below-gate</text>", ">1 (12.5%)</text>", ">not measured</text>"] {
            #expect(status.contains(text), "\(text)")
        }
        #expect(html.contains("2 of 6 normalized clips (33.3%) hit the true-peak ceiling"))
        #expect(html.contains("Target: -23.0 LUFS, ceiling -1.0 dBTP (3 tracks)"))
    }

    @Test func audioFilterFiguresMatchCountsDoneHere() throws {
        let dir = TempDir("mulan-report")
        let path = try SyntheticLoudnessAndAudioFilter.make(dir.file("work"))
        let db = try Database(path: path, readOnly: true)
        let f = try #require(try CatalogReader(path: path).read(topTags: 3).audioFilter)

        // The latest completed version, not the unfinished one created after it.
        #expect(f.versions.map(\.version) == ["audio-new", "audio-old", "audio-wip"])
        let v = try #require(f.latest)
        #expect(v.version == "audio-new" && v.rules == ["piano >= 0.3", SyntheticLoudnessAndAudioFilter.hostileRule])
        #expect(v.prompts.map(\.name) == ["piano", SyntheticLoudnessAndAudioFilter.hostilePrompt] && v.checkpointStep == 300)
        for x in f.versions {
            let kept = try db.row("SELECT COUNT(*) FROM audio_decisions WHERE version = ? AND status = 'kept'", [x.version])?[0].int
            let dropped = try db.row("SELECT COUNT(*) FROM audio_decisions WHERE version = ? AND status = 'dropped'", [x.version])?[0].int
            #expect(x.kept == kept && x.dropped == dropped, "\(x.version)")
        }
        #expect(v.kept == 2 && v.dropped == 5 && f.undecided == 1)
        var reasons: [String: Int] = [:]
        for r in try db.rows("SELECT reason FROM audio_decisions WHERE version = 'audio-new' AND status = 'dropped'") {
            reasons[r[0].string ?? "", default: 0] += 1
        }
        #expect(f.dropReasons.map(\.reason) == ["piano >= 0.3", SyntheticLoudnessAndAudioFilter.hostileRule, "unreadable"])
        for d in f.dropReasons { #expect(reasons[d.reason] == d.count, "\(d.reason)") }

        // Scores: one histogram per prompt, in the version's prompt order, on shared bins; recounted here from the JSON.
        #expect(f.scores.map(\.prompt) == v.prompts.map(\.name))
        var values: [String: [Double]] = [:]
        for r in try db.rows("""
            SELECT s.scores FROM audio_decisions d JOIN audio_scores s ON s.score_set = 'scores-a' AND s.clip_id = d.clip_id
            WHERE d.version = 'audio-new' AND s.scores IS NOT NULL
            """) {
            let scores = try #require(try JSONSerialization.jsonObject(with: Data((r[0].string ?? "").utf8)) as? [String: Double])
            for (k, x) in scores { values[k, default: []].append(x) }
        }
        for s in f.scores {
            #expect(s.histogram.total == 6 && s.histogram.counts == Self.recount(s.histogram, values[s.prompt] ?? []), "\(s.prompt)")
            #expect(s.histogram.lower == f.scores[0].histogram.lower && s.histogram.width == f.scores[0].histogram.width)
        }

        let result = Report.build(ReportInputs(workdir: dir.file("work"), topTags: 3))
        let html = result.html
        #expect(result.problems.isEmpty)
        #expect(Self.plotIDs(html).isSuperset(of: Self.newPlots), "missing: \(Self.newPlots.subtracting(Self.plotIDs(html)))")
        #expect(result.plots == 10 + Self.newPlots.count)
        let funnel = Self.svg(html, id: "fig-audio-filter-funnel")
        for text in [">all clips</text>", ">7</text>", ">− piano &gt;= 0.3</text>", ">−3 (42.9%)</text>", ">− unreadable</text>",
                     ">−1 (14.3%)</text>", ">kept</text>", ">2 (28.6%)</text>"] {
            #expect(funnel.contains(text), "\(text)")
        }
        #expect(html.contains("Latest version audio-new: rules piano &gt;= 0.3; "))
        #expect(html.contains("Model: /runs/m/checkpoint.bin at step 300"))
        #expect(html.contains("Created 2026-01-02T00:00:00Z, completed 2026-01-02T00:10:00Z"))
        // The versions table: each version with its counts; the dropped share of the latest in the summary.
        #expect(html.contains("<td>audio-new (latest)</td>") && html.contains("<td>audio-wip</td>") && html.contains("<td>not completed</td>"))
        #expect(html.contains("<td class=\"num\">71.4%</td>"))
        #expect(html.contains("1 kept clip has no decision of audio-new (ingested after it ran)"))
    }

    @Test func hostilePromptsAndRulesAreTextAndThePageIsDeterministic() throws {
        let dir = TempDir("mulan-report")
        try SyntheticLoudnessAndAudioFilter.make(dir.file("work"))
        let inputs = ReportInputs(workdir: dir.file("work"), topTags: 3)
        let html = Report.build(inputs).html
        #expect(!html.contains("<img") && !html.contains("<script>alert") && !html.contains("</svg><script>"))
        for text in [SyntheticLoudnessAndAudioFilter.hostilePrompt, SyntheticLoudnessAndAudioFilter.hostileText,
                     SyntheticLoudnessAndAudioFilter.hostileRule] {
            #expect(html.contains(Markup.escape(text)), "\(text)")
        }
        #expect(Self.svg(html, id: "fig-audio-score-2").contains("Prompt score: \(Markup.escape(SyntheticLoudnessAndAudioFilter.hostilePrompt))"))
        for svg in ReportInputTests.svgs(html) {
            let probe = XMLProbe.parse(svg)
            #expect(probe.error == nil, "\(svg.prefix(200))")
            #expect(probe.elements.filter { $0 == "svg" }.count == 1 && !probe.elements.contains("img") && !probe.elements.contains("script"))
        }
        #expect(Report.build(inputs).html == html, "same inputs, same bytes")
    }

    /// A catalog at schema version 4 (before loudness and the audio filter), opened read-only as it is.
    @Test func anOldCatalogWithoutLoudnessOrTheAudioFilterStillReports() throws {
        let dir = TempDir("mulan-report")
        let path = dir.file("work/catalog.sqlite")
        try FileManager.default.createDirectory(atPath: dir.file("work"), withIntermediateDirectories: true)
        do {
            let db = try Database(path: path)
            try db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            for m in Migrations.all where m.version <= 4 {
                try db.execute(m.sql)
                try m.after?(db)
                try db.run("INSERT INTO schema_migrations VALUES (?, ?, 'then')", [m.version, m.name])
            }
            try db.execute("""
                INSERT INTO tracks (id, track_id, source_path, status, duration_s, sample_rate, settings_key, updated_at)
                    VALUES (1, 't1', '/x/t1.wav', 'ingested', 60, 16000, 'k', 'then');
                INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak, silence_share,
                    status, flac_path, flac_sha256) VALUES
                    (1, 0, 0, 30, 16000, 0.1, 0.5, 0, 'kept', 'clips/aa.flac', 'aa'),
                    (1, 1, 30, 30, 16000, 0.2, 0.7, 0, 'kept', 'clips/bb.flac', 'bb');
                """)
        }
        let before = try SHA256Digest.hex(ofFile: path).digest
        let figures = try CatalogReader(path: path).read(topTags: 3)
        #expect(figures.schemaVersion == 4 && figures.audio.loudness == nil && figures.audioFilter == nil)
        let result = Report.build(ReportInputs(workdir: dir.file("work")))
        #expect(result.problems.isEmpty, "\(result.problems)")
        #expect(try SHA256Digest.hex(ofFile: path).digest == before, "still schema version 4: the report does not migrate")
        #expect(result.sectionsWithPlots == ["Audio: tracks and clips"])
        #expect(Self.plotIDs(result.html).isDisjoint(with: Self.newPlots))
        #expect(result.html.contains("This catalog (schema version 4) predates EBU R128 loudness (schema version 5)"))
        #expect(result.html.contains("This catalog (schema version 4) predates the zero-shot audio filter (schema version 6)"))
    }

    /// The current schema with nothing measured or filtered: notes instead of plots.
    @Test func aMigratedCatalogWithNothingMeasuredOrFilteredSaysSo() throws {
        let dir = TempDir("mulan-report")
        try SyntheticCatalog.make(dir.file("work"))
        let result = Report.build(ReportInputs(workdir: dir.file("work"), topTags: 3))
        #expect(Self.plotIDs(result.html).isDisjoint(with: Self.newPlots))
        #expect(result.html.contains("No kept clip has an EBU R128 loudness measurement yet"))
        #expect(result.html.contains("No audio filter run: mulan-filter audio"))
    }

    /// A version whose run stopped before its first batch: named, marked not completed, no funnel.
    @Test func anUnfinishedVersionWithoutDecisionsIsNamedWithoutAFunnel() throws {
        let dir = TempDir("mulan-report")
        let path = try SyntheticCatalog.make(dir.file("work"))
        try Catalog(path: path).database.run("""
            INSERT INTO audio_filter_versions (version, score_set, checkpoint, checkpoint_sha256, checkpoint_step, vocab_sha256,
                prompts, rules, created_at) VALUES ('audio-x', 's', 'm', 'c', 1, 'v', '[{"name": "a", "text": "b"}]', '["a > 0"]', 't')
            """)
        let result = Report.build(ReportInputs(workdir: dir.file("work"), topTags: 3))
        #expect(result.problems.isEmpty && Self.plotIDs(result.html).isDisjoint(with: Self.newPlots))
        #expect(result.html.contains("Latest version audio-x: rules a &gt; 0.") && result.html.contains("not completed"))
        #expect(result.html.contains("audio-x has no decision: no kept clip was decided"))
    }
}
