import Foundation
@testable import MulanCatalog
import MulanCore
@testable import MulanReport
import MulanTestSupport
import Testing

/// A catalog written row by row through the real schema (MulanCatalog's migrations), small enough
/// to know every figure the report should draw from it.
enum SyntheticCatalog {
    static let hostileTag = "<svg onload=alert(1)> \"r&b\""

    /// Tags per track (kept in version tags-new); `rare-N` tags are dropped as rare.
    static let tags: [[String]] = [
        ["rock", "piano", hostileTag], ["rock", "calm"], ["rock", "piano", "rare-1"], ["rock", "jazz", hostileTag],
    ]

    @discardableResult
    static func make(_ workdir: String) throws -> String {
        try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
        let path = workdir + "/catalog.sqlite"
        let catalog = try Catalog(path: path)
        let db = catalog.database
        let levels = [0.5, 0.25, 0.1, 0.05]
        for (i, level) in levels.enumerated() {
            try db.run("""
                INSERT INTO tracks (track_id, source_path, status, duration_s, clips_kept, sample_rate, settings_key, updated_at)
                VALUES (?, ?, 'ingested', ?, 2, 16000, 'k', 't')
                """, ["t\(i)", "/x/\(i).flac", 60.0 + 30 * Double(i)])
            let rowid = db.lastInsertRowID
            for k in 0..<2 {
                try db.run("""
                    INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak, silence_share, status,
                        flac_path, flac_sha256) VALUES (?, ?, ?, 30, 16000, ?, ?, 0, 'kept', 'p', ?)
                    """, [rowid, k, Double(30 * k), level, min(1, level * 2), "sha-\(i)-\(k)"])
            }
        }
        try db.run("""
            INSERT INTO tracks (track_id, source_path, status, reason, sample_rate, settings_key, updated_at)
            VALUES ('bad', '/x/bad.mp3', 'failed', 'corrupt', 16000, 'k', 't')
            """)
        try db.run("""
            INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak, silence_share, status)
            VALUES (1, 5, 150, 30, 16000, 0, 0, 1, 'silent')
            """)
        for v in [("tags-old", "2020-01-01"), ("tags-new", "2021-01-01"), ("tags-zzz~dry-run", "2022-01-01")] {
            try db.run("""
                INSERT INTO filter_versions (version, source, unfiltered, config, vocab_sha256, created_at, completed_at)
                VALUES (?, 'tags', 0, '{}', 'v', ?, ?)
                """, [v.0, v.1, v.1])
        }
        for (i, list) in tags.enumerated() {
            for tag in list {
                try db.run("INSERT INTO raw_texts (track_id, origin, field, text, source) VALUES (?, 'file:generic', 'tags', ?, 'tags')",
                           ["t\(i)", tag])
                let id = db.lastInsertRowID
                let kept = !tag.hasPrefix("rare")
                for version in ["tags-new", "tags-zzz~dry-run"] {
                    try db.run("""
                        INSERT INTO text_decisions (version, raw_text_id, source, track_id, status, reason, normalized, token_ids, token_count)
                        VALUES (?, ?, 'tags', ?, ?, ?, ?, ?, ?)
                        """, [version, id, "t\(i)", kept ? "kept" : "dropped", kept ? "kept" : "rare", tag,
                              kept ? "1 2" : nil, kept ? tag.count % 5 + 1 : 0])
                }
            }
        }
        try db.run("INSERT INTO raw_texts (track_id, origin, field, text, source) VALUES ('t0', 'file:generic', 'descriptions', 'x', 'descriptions')")
        try db.run("INSERT INTO raw_texts (track_id, origin, field, text) VALUES ('t0', 'container:format', 'encoder', 'lavf')")
        return path
    }
}

@Suite("mulan-report inputs")
struct ReportInputTests {
    static let sections = ["Audio: tracks and clips", "Audio filter: zero-shot keep rules", "Text: sources and filter decisions", "Tags: the long tail", "Shards",
                           "Training run", "Zero-shot evaluation"]

    /// Every `<svg>…</svg>` of a page.
    static func svgs(_ html: String) -> [String] {
        html.components(separatedBy: "<svg class=\"plot\"").dropFirst().map { "<svg class=\"plot\"" + $0.components(separatedBy: "</svg>")[0] + "</svg>" }
    }

    @Test func everySectionSaysWhatIsMissingWhenNothingExists() throws {
        let dir = TempDir("mulan-report")
        let result = Report.build(ReportInputs(workdir: dir.file("nowhere")))
        #expect(result.plots == 0 && result.problems.isEmpty)
        for title in Self.sections { #expect(result.html.contains("<h2>\(Markup.escape(title))</h2>"), "\(title)") }
        #expect(result.html.contains("No work directory at \(dir.file("nowhere"))"))
        #expect(result.html.contains("No training run given: pass --run RUN_DIR"))
        #expect(result.html.contains("No evaluation report given: pass --eval EVAL.json"))
        #expect(result.html.contains("No shards at"))
        #expect(!result.html.contains("<svg"))

        try FileManager.default.createDirectory(atPath: dir.file("empty"), withIntermediateDirectories: true)
        #expect(Report.build(ReportInputs(workdir: dir.file("empty"))).html.contains("No catalog at \(dir.file("empty"))/catalog.sqlite: run mulan-ingest first."))
    }

    @Test func namedInputsThatCannotBeReadAreProblems() throws {
        let dir = TempDir("mulan-report")
        let garbage = try dir.write("eval.json", "{\"tagging\": 12}")
        let result = Report.build(ReportInputs(workdir: dir.path, shards: dir.file("no-shards"), run: dir.file("no-run"), eval: garbage))
        #expect(result.problems.count == 3, "\(result.problems)")
        #expect(result.html.contains("The training run \(dir.file("no-run")) could not be read: cannot open \(dir.file("no-run"))/metrics.jsonl"))
        #expect(result.html.contains("is not a mulan-eval --json report"))
        #expect(result.plots == 0)
    }

    @Test func metricsAreReadLineByLineSkippingDamagedLines() throws {
        let dir = TempDir("mulan-report")
        var text = ""
        for step in 1...30 {
            text += "{\"step\": \(step), \"loss\": \(3.0 - Double(step) * 0.05), \"temperature\": 0.07, \"sources\": {\"tags\": 4}}\n"
            if step % 10 == 0 {
                text += "{\"step\": \(step), \"split\": \"valid\", \"loss\": null, \"t2a_recall_at_10\": \(Double(step) / 40), "
                    + "\"a2t_recall_at_10\": 0.5, \"tagging_roc_auc\": 0.6}\n"
            }
        }
        text += "{\"step\": 30, \"split\": \"test\", \"loss\": 1.5, \"t2a_recall_at_10\": 0.7, \"a2t_recall_at_10\": 0.6}\n"
        text += "not json\n\n{\"step\": 31, \"loss\": 1.2, \"temp"   // a foreign line, a blank one, a line cut short
        try dir.write("run/metrics.jsonl", text)
        let run = try RunReader.read(directory: dir.file("run"))
        #expect(run.lines == 36 && run.unreadableLines == 2 && run.lastStep == 30)
        #expect(run.trainLoss.result.count == 30 && run.temperature.result.count == 30)
        #expect(run.textToAudioR10["valid"]?.result.map(\.y) == [0.25, 0.5, 0.75])
        #expect(run.evalLoss["valid"] == nil && run.evalLoss["test"]?.result.first?.y == 1.5)
        #expect(run.evaluationSplits == ["valid", "test"])

        let result = Report.build(ReportInputs(workdir: dir.path, run: dir.file("run")))
        #expect(result.problems.isEmpty)
        #expect(result.sectionsWithPlots == ["Training run"])
        #expect(result.plots == 4, "loss, temperature, Recall@10, tagging ROC-AUC")
        #expect(result.html.contains("2 lines are not metrics records and were skipped"))
    }

    @Test func theCatalogIsReadOnlyAndItsFiguresAreRight() throws {
        let dir = TempDir("mulan-report")
        let workdir = dir.file("work")
        let path = try SyntheticCatalog.make(workdir)
        let before = try SHA256Digest.hex(ofFile: path).digest

        let figures = try CatalogReader(path: path).read(topTags: 3)
        #expect(figures.audio.tracksByOutcome.map(\.count) == [4, 1])
        #expect(figures.audio.clipsKept == 8 && figures.audio.clipsSilent == 1 && figures.audio.keptSeconds == 240)
        #expect(figures.audio.clipDurations?.total == 8 && figures.audio.trackDurations?.total == 4)
        // RMS levels: 20·log10 of 0.5, 0.25, 0.1, 0.05, two clips each.
        let rms = try #require(figures.audio.rmsDBFS)
        #expect(rms.total == 8)
        for level in [0.5, 0.25, 0.1, 0.05] { #expect(rms.counts[rms.bin(of: 20 * log10(level))] == 2) }
        // The latest completed version that is not a dry run; sources in MuLan's order, then unnamed.
        let tags = try #require(figures.sources.first)
        #expect(figures.sources.map(\.source) == ["tags", "descriptions", ""])
        #expect(tags.version == "tags-new" && tags.loaded == 11 && tags.kept == 10 && tags.decided == 11)
        #expect(tags.decisions.map(\.reason) == ["kept", "rare"])
        // Rank/frequency against a count done here: rock on 4 tracks, piano and the hostile tag on 2, calm and jazz on 1.
        let tail = try #require(figures.tagTail)
        #expect(tail.top.map(\.tag) == ["rock", SyntheticCatalog.hostileTag, "piano"])
        #expect(tail.tagsByFrequency.map { [$0.tracks, $0.tags] } == [[4, 1], [2, 2], [1, 2]])

        let result = Report.build(ReportInputs(workdir: workdir, topTags: 3))
        #expect(try SHA256Digest.hex(ofFile: path).digest == before, "the report must not modify the catalog")
        #expect(result.problems.isEmpty)
        #expect(result.sectionsWithPlots == [Self.sections[0], Self.sections[2], Self.sections[3]])
        #expect(result.plots == 10)
        #expect(result.html.contains("tags-new") && !result.html.contains("tags-old") && !result.html.contains("dry-run"))
        #expect(result.html.contains("descriptions: 1 texts, not filtered yet: run mulan-filter --source descriptions."))
        // The hostile tag is text everywhere: each plot parses as XML and no element was injected.
        #expect(!result.html.contains("<svg onload"))
        for svg in Self.svgs(result.html) {
            let probe = XMLProbe.parse(svg)
            #expect(probe.error == nil, "\(svg.prefix(200))")
            #expect(probe.elements.filter { $0 == "svg" }.count == 1)
        }
        #expect(result.html.contains(Markup.escape(SyntheticCatalog.hostileTag)))
        // Same inputs, same bytes.
        #expect(Report.build(ReportInputs(workdir: workdir, topTags: 3)).html == result.html)
    }

    @Test func sentenceReasonsComeFromTheFilterReport() throws {
        let stats = """
            {"sentences_total": 10, "sentences_kept": 4, "sentences_dropped_by_reason": {"boilerplate": 3, "too-short": 1, "duplicate": 2}}
            """
        let c = try #require(CatalogReader.sentenceCounts(stats))
        #expect(c.total == 10 && c.kept == 4)
        #expect(c.dropped.map(\.reason) == ["boilerplate", "duplicate", "too-short"])
        #expect(CatalogReader.sentenceCounts("{\"kept\": 3}") == nil && CatalogReader.sentenceCounts("nonsense") == nil)
        let svg = TextSections.sentenceFunnel("descriptions", c)
        #expect(XMLProbe.parse(svg).error == nil)
        #expect(svg.contains(">− boilerplate</text>") && svg.contains(">4 (40.0%)</text>"))
    }

    @Test func thePageIsWrittenUnderATemporaryNameAndRenamed() throws {
        let dir = TempDir("mulan-report")
        let out = dir.file("report.html")
        try dir.write("report.html", "old")
        let result = try Report.write(ReportInputs(workdir: dir.path), to: out)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == result.html)
        #expect(!FileManager.default.fileExists(atPath: out + ".tmp"))
        #expect(throws: MulanError.self) { try Report.write(ReportInputs(workdir: dir.path), to: dir.file("missing/dir/r.html")) }
    }
}
