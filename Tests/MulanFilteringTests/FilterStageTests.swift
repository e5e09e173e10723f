import Foundation
@testable import MulanCatalog
import MulanCore
import MulanFormats
import MulanTestSupport
@testable import MulanText
import Testing

@Suite("mulan-filter --source S")
struct FilterStageTests {
    static var ontology: String { TestPaths.audioSetOntology }
    static var config: String { TestPaths.packageRoot + "/manifests/filters.toml" }

    /// A work directory with texts of every source loaded.
    static func corpus() throws -> (IngestHarness, String) {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        try h.dir.write("texts.jsonl", """
            {"track_id": "t1", "tags": ["Hip-Hop", "hiphop", "favorite", "1999", "Jazz", "rare one"]}
            {"track_id": "t2", "tags": ["hip hop", "jazz", "R&B"], "aset": ["Guitar", "Speech", "Music genre"]}
            {"track_id": "t3", "tags": ["rnb", "Rhythm and Blues", "seen live"], "aset": ["Guitar", "Guitar"]}
            {"track_id": "t1", "description": "A slow, sad piano ballad with soft strings. Subscribe to my channel! Visit www.example.com for tour dates."}
            {"track_id": "t2", "description": "A slow, sad piano ballad with soft strings. Follow us on Instagram."}
            {"track_id": "t3", "description": "Energetic punk rock with shouted choruses, fast power chords, a pounding bass line, crashing cymbals and a raw garage production that sounds like it was recorded live in a small sweaty club full of people. 0:00 Intro 3:15 Outro"}
            {"track_id": "t4", "description": "Energetic punk rock with shouted choruses, fast power chords, a pounding bass line, crashing cymbals and a raw garage production that sounds like it was recorded live in a small sweaty club full of fans."}
            {"track_id": "t5", "description": "I listened to this on my way to work this morning."}

            """)
        try h.dir.write("playlists.jsonl", """
            {"playlist_id": "p1", "title": "slow piano for sleep", "track_ids": ["t1", "t2"]}
            {"playlist_id": "p2", "title": "my mix 3", "track_ids": ["t1", "t2", "t3"]}
            {"playlist_id": "p3", "title": "road trip anthems", "track_ids": ["t3"]}
            {"playlist_id": "p4", "title": "🔥🔥🔥", "track_ids": ["t1", "t3"]}
            {"playlist_id": "p5", "title": "Slow Piano for Sleep", "track_ids": ["t1", "t4"]}

            """)
        #expect(try h.ingest(["text", "--format", "generic", "texts.jsonl"]).status == 0)
        #expect(try h.ingest(["text", "--format", "playlists", "playlists.jsonl"]).status == 0)
        return (h, vocab)
    }

    static func decisions(_ h: IngestHarness, _ source: String) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT d.track_id, r.text, d.status, d.reason, d.normalized FROM text_decisions d
            JOIN raw_texts r ON r.id = d.raw_text_id JOIN filter_versions v ON v.version = d.version
            WHERE d.source = ? AND v.completed_at IS NOT NULL ORDER BY d.raw_text_id
            """, [source]).map { "\($0[0].string!)|\($0[1].string!)|\($0[3].string!)|\($0[4].string!)" }
    }

    @Test func tagsCanonicalizeAndFilter() throws {
        let (h, vocab) = try Self.corpus()
        let r = try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config, "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.decisions(h, "tags") == [
            "t1|Hip-Hop|kept|hip hop", "t1|hiphop|duplicate|hip hop", "t1|favorite|stoplist|favorite",
            "t1|1999|stop-pattern|1999", "t1|Jazz|kept|jazz", "t1|rare one|rare|rare one",
            "t2|hip hop|kept|hip hop", "t2|jazz|kept|jazz", "t2|R&B|kept|rnb",
            "t3|rnb|kept|rnb", "t3|Rhythm and Blues|duplicate|rnb", "t3|seen live|stoplist|seen live",
        ])
        // Kept texts carry their WordPiece ids.
        let ids = try h.catalog().database.row(
            "SELECT token_ids FROM text_decisions WHERE normalized = 'hip hop' AND status = 'kept' LIMIT 1")?[0].string
        #expect(ids == BertTokenizer(vocabulary: try WordPieceVocabulary(path: vocab)).encode("hip hop").map(String.init)
            .joined(separator: " "))
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["kept"] as? Int == 6 && report["dropped"] as? Int == 6)
        #expect(report["dropped_by_reason"] as? [String: Int] == ["duplicate": 2, "stoplist": 2, "stop-pattern": 1, "rare": 1])
        #expect(r.stdoutText.contains("stoplist"))
        #expect(try SchemaValidator.validate([Self.compactJSON(h.dir.file("r.json"))], schema: "filter-report.schema.json") == [nil])
    }

    static func compactJSON(_ path: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test func maxTagsPerTrackKeepsTheMostFrequent() throws {
        let (h, vocab) = try Self.corpus()
        try h.dir.write("one.toml", "[tags]\nmax_per_track = 1\nmin_frequency = 1\n")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("one.toml")]).status == 0)
        let kept = try h.catalog().database.rows("""
            SELECT track_id, normalized FROM text_decisions d JOIN filter_versions v ON v.version = d.version
            WHERE d.status = 'kept' ORDER BY track_id
            """).map { "\($0[0].string!):\($0[1].string!)" }
        #expect(kept == ["t1:hip hop", "t2:hip hop", "t3:rnb"])
    }

    @Test func descriptionsKeepRelevantUniqueSentences() throws {
        let (h, vocab) = try Self.corpus()
        let r = try h.filter(["--source", "descriptions", "--vocab", vocab, "--config", Self.config, "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try Self.decisions(h, "descriptions").map { $0.split(separator: "|").map(String.init) }
        #expect(rows.map { "\($0[0]):\($0[2])" } == ["t1:kept", "t2:no-sentence-kept", "t3:kept", "t4:no-sentence-kept",
                                                     "t5:no-sentence-kept"])
        #expect(rows[0][3] == "A slow, sad piano ballad with soft strings.")
        #expect(rows[2][3].hasPrefix("Energetic punk rock with shouted choruses") && rows[2][3].hasSuffix("full of people."))
        let report = try h.report(h.dir.file("r.json"))
        let reasons = report["sentences_dropped_by_reason"] as? [String: Int] ?? [:]
        #expect(reasons["boilerplate"] == 4)      // subscribe, URL, follow, timestamps
        #expect(reasons["duplicate"] == 1)        // t2's copy of t1's sentence
        #expect(reasons["near-duplicate"] == 1)   // t4 rephrases t3
        #expect(reasons["not-relevant"] == 1)     // t5 is about the listener, not the music
        let details = try h.catalog().database.row(
            "SELECT details FROM text_decisions WHERE track_id = 't1' AND source = 'descriptions'")?[0].string ?? ""
        #expect(details.contains("\"reason\":\"boilerplate\"") && details.contains("relevance"))
        #expect(try SchemaValidator.validate([Self.compactJSON(h.dir.file("r.json"))], schema: "filter-report.schema.json") == [nil])
    }

    @Test func playlistsDropGenericSmallAndDuplicateTitles() throws {
        let (h, vocab) = try Self.corpus()
        #expect(try h.filter(["--source", "playlists", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(try Self.decisions(h, "playlists").map { $0.split(separator: "|").prefix(3).joined(separator: "|") } == [
            "t1|slow piano for sleep|kept", "t2|slow piano for sleep|kept",
            "t1|my mix 3|generic-title", "t2|my mix 3|generic-title", "t3|my mix 3|generic-title",
            "t3|road trip anthems|too-few-tracks",
            "t1|🔥🔥🔥|generic-title", "t3|🔥🔥🔥|generic-title",
            "t1|Slow Piano for Sleep|duplicate", "t4|Slow Piano for Sleep|kept",
        ])
    }

    @Test func asetKeepsMusicLabels() throws {
        let (h, vocab) = try Self.corpus()
        #expect(try h.filter(["--source", "aset", "--vocab", vocab, "--config", Self.config]).status == 64)  // no ontology
        #expect(try h.filter(["--source", "aset", "--vocab", vocab, "--labels", Self.ontology]).status == 0)
        #expect(try Self.decisions(h, "aset").map { $0.split(separator: "|").prefix(3).joined(separator: "|") } == [
            "t2|Guitar|kept", "t2|Speech|outside-subtree", "t2|Music genre|restricted-abstract",
            "t3|Guitar|kept", "t3|Guitar|duplicate",
        ])
        try h.dir.write("anc.toml", "[aset]\nadd_ancestors = true\n")
        #expect(try h.filter(["--source", "aset", "--vocab", vocab, "--labels", Self.ontology,
                              "--config", h.dir.file("anc.toml")]).status == 0)
        let withAncestors = try h.catalog().database.rows("""
            SELECT normalized FROM text_decisions d JOIN filter_versions v ON v.version = d.version
            WHERE d.source = 'aset' AND v.config LIKE '%"add_ancestors":true%' AND status = 'kept' LIMIT 1
            """).first?[0].string
        #expect(withAncestors?.hasPrefix("Guitar, Plucked string instrument") == true)
    }

    @Test func unfilteredDryRunAndVersions() throws {
        let (h, vocab) = try Self.corpus()
        let c = try h.catalog()
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--no-filter"]).status == 0)
        let unfiltered = try c.database.rows("SELECT DISTINCT version FROM text_decisions").compactMap { $0[0].string }
        #expect(unfiltered.count == 1 && unfiltered[0].hasPrefix("tags-unfiltered-"))
        #expect(try c.count("SELECT COUNT(*) FROM text_decisions WHERE status = 'dropped'") == 0)

        // A dry run reports the change it would make and writes nothing.
        let dry = try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config, "--dry-run",
                                "--report", "dry.json"])
        #expect(dry.status == 0)
        #expect(try c.count("SELECT COUNT(*) FROM filter_versions") == 1)
        let changes = try h.report(h.dir.file("dry.json"))["changes"] as? [String: Any]
        #expect(changes?["kept_to_dropped"] as? Int == 6)
        #expect((changes?["compared_with"] as? String)?.hasPrefix("tags-unfiltered-") == true)

        // Running the same configuration twice gives the same version and rows, no duplicates.
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        let first = try c.database.rows("SELECT version, raw_text_id, status, reason, token_ids FROM text_decisions ORDER BY 1, 2")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(try c.database.rows("SELECT version, raw_text_id, status, reason, token_ids FROM text_decisions ORDER BY 1, 2") == first)
        #expect(try c.count("SELECT COUNT(*) FROM filter_versions") == 2)
        // Another setting is another version.
        try h.dir.write("other.toml", "[tags]\nmin_frequency = 1\n")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("other.toml")]).status == 0)
        #expect(try c.count("SELECT COUNT(*) FROM filter_versions") == 3)
    }

    @Test func badConfigurationIsAUsageError() throws {
        let (h, vocab) = try Self.corpus()
        try h.dir.write("bad.toml", "[tags]\nmin_frequencyy = 2\n")
        let r = try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("bad.toml")])
        #expect(r.status == 64)
        #expect(r.stderr.contains("unknown key tags.min_frequencyy"))
        try h.dir.write("bad2.toml", "[tags]\nstop_patterns = ['(unclosed']\n")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("bad2.toml")]).status == 64)
    }

    @Test func shippedRelevanceModelIsReproducible() throws {
        let dir = TempDir()
        let vocab = try TestPython.bertVocabulary()
        let model = dir.file("model.json")
        let r = try TestProcess.run(IngestHarness.filterBinary, [
            "train-relevance", "--labels", TestPaths.packageRoot + "/manifests/relevance-seed.jsonl",
            "--vocab", vocab, "--out", model])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutText.contains("precision"))
        let shipped = try String(contentsOfFile: TestPaths.packageRoot + "/manifests/relevance-model.json", encoding: .utf8)
        #expect(try String(contentsOfFile: model, encoding: .utf8) == shipped)
    }
}

@Suite("Text normalization and filters")
struct TextUnitTests {
    @Test func normalizer() {
        #expect(TextNormalizer.normalize(" ﬁne\u{0}\u{200B}  music\t\nhere ") == "fine music here")
        #expect(TextNormalizer.sentences("First one. Second one! Third?") == ["First one.", "Second one!", "Third?"])
        #expect(TextNormalizer.dominantScript("Привет мир") == "Cyrillic")
        #expect(TextNormalizer.dominantScript("hello, мир world") == "Latin")
        #expect(TextNormalizer.dominantScript("123 !") == "Common")
    }

    @Test func canonicalShortForms() {
        #expect(canonicalShortText("Hip-Hop") == "hip hop")
        #expect(canonicalShortText("  Drum'n'Bass ") == "drumnbass")
        #expect(canonicalShortText("R&B") == "r&b")
        #expect(canonicalShortText("ＪＡＺＺ") == "jazz")
    }

    @Test func minHashEstimatesJaccard() {
        let m = MinHasher(permutations: 128, shingleWords: 1)
        let a = m.signature("a b c d e f g h")
        let b = m.signature("a b c d e f g x")
        #expect(abs(MinHasher.similarity(a, b) - 7.0 / 9.0) < 0.15)
        #expect(MinHasher.similarity(a, a) == 1)
        #expect(MinHasher.bands(a, count: 16).count == 16)
    }

    @Test func pythonListLiterals() {
        #expect(PythonListLiteral.parse("['a', \"b's\", 'c\\'d']") == ["a", "b's", "c'd"])
        #expect(PythonListLiteral.parse("[]") == [])
        #expect(PythonListLiteral.parse("['a',]") == ["a"])
        #expect(PythonListLiteral.parse("['a'") == nil)
        #expect(PythonListLiteral.parse("a, b") == nil)
    }
}
