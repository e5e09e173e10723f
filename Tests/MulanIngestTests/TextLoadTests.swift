import Foundation
@testable import MulanCatalog
import MulanCore
import MulanTestSupport
import Testing

@Suite("mulan-ingest text")
struct TextLoadTests {
    static var ontology: String { TestPaths.audioSetOntology }

    func texts(_ h: IngestHarness) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT track_id, source, field, text, origin_line, IFNULL(group_id, ''), repaired FROM raw_texts
            WHERE origin LIKE 'file:%' ORDER BY origin_file, origin_line, id
            """).map { $0.map { $0.string ?? $0.int.map(String.init) ?? "" }.joined(separator: "|") }
    }

    @Test func musicCapsRowsBecomeThreeSources() throws {
        let h = IngestHarness()
        try h.dir.write("mc.csv", """
            ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval
            -0Gj8-vB1q4,30,40,"/m/04rlf,/m/zzzz","['low quality', ""children's song""]","A sad strings melody.
            Recorded live.",4,False,True
            abc,0,10,/m/0342h,[],,1,True,False

            """)
        let r = try h.ingest(["text", "--format", "musiccaps", "mc.csv", "--labels", Self.ontology,
                              "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")  // one unknown label id
        #expect(try texts(h) == [
            "-0Gj8-vB1q4|descriptions|caption|A sad strings melody.\nRecorded live.|2||0",
            "-0Gj8-vB1q4|tags|aspect_list|low quality|2||0",
            "-0Gj8-vB1q4|tags|aspect_list|children's song|2||0",
            "-0Gj8-vB1q4|aset|audioset_positive_labels|Music|2||0",
            "abc|aset|audioset_positive_labels|Guitar|4||0",
        ])
        let rejects = try h.catalog().database.rows("SELECT manifest_line, reason FROM rejected_rows")
        #expect(rejects.map { "\($0[0].int!):\($0[1].string!)" } == ["2:unknown-label"])
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["unmatched_texts"] as? Int == 5)
        #expect(report["texts_by_source"] as? [String: Int] == ["descriptions": 1, "tags": 2, "aset": 2])
        #expect(r.stderr.contains("mc.csv:2, track -0Gj8-vB1q4: unknown-label"))
        let compact = try JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: h.dir.file("r.json")))))
        #expect(try SchemaValidator.validate([String(decoding: compact, as: UTF8.self)], schema: "text-report.schema.json") == [nil])
    }

    /// song_describer.csv as published: the real header, a quoted caption with commas, quotes and a
    /// line break, several captions per track, a repeated caption id and an empty caption.
    @Test func songDescriberCaptionsBecomeDescriptions() throws {
        let h = IngestHarness()
        try h.dir.write("sd.csv", """
            caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,duration
            7,1030,"A calm piano piece, with ""soft"" strings.
            It ends quietly.",True,1,4521,12345,10/1030.2min.mp3,120.0
            8,1030,Upbeat rock with distorted guitars,False,0,4521,12345,10/1030.2min.mp3,120.0
            9,2207,Electronic ambient drone,True,2,77,88,07/2207.2min.mp3,119.9
            8,2207,A repeated caption id,True,2,77,88,07/2207.2min.mp3,119.9
            10,2207,,True,2,77,88,07/2207.2min.mp3,119.9

            """)
        let r = try h.ingest(["text", "--format", "song-describer", "sd.csv", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try texts(h) == [
            "1030|descriptions|caption|A calm piano piece, with \"soft\" strings.\nIt ends quietly.|2||0",
            "1030|descriptions|caption|Upbeat rock with distorted guitars|4||0",
            "2207|descriptions|caption|Electronic ambient drone|5||0",
        ])
        let rejects = try h.catalog().database.rows("SELECT manifest_line, reason, detail FROM rejected_rows ORDER BY manifest_line")
        #expect(rejects.map { "\($0[0].int!):\($0[1].string!)" } == ["6:invalid-row", "7:empty-text"])
        #expect(rejects.first?[2].string?.contains("caption_id 8 was already read on line 4") == true, "\(rejects)")
        // A file that is not Song Describer's is refused at its header.
        try h.dir.write("other.csv", "ytid,caption\nabc,x\n")
        let wrong = try h.ingest(["text", "--format", "song-describer", "other.csv"])
        #expect(wrong.status == 1 && wrong.stderr.contains("no caption_id, track_id column"), "\(wrong.stderr)")
    }

    @Test func audioSetAndMagnaTagATune() throws {
        let h = IngestHarness()
        try h.dir.write("seg.csv", """
            # Segments csv created Sun Mar  5 10:54:31 2017
            # YTID, start_seconds, end_seconds, positive_labels
            --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/m/04rlf"
            --ZhevVpy1s, 50.000, 60.000, "/m/042v_gx"

            """)
        #expect(try h.ingest(["text", "--format", "audioset", "seg.csv", "--labels", Self.ontology,
                              "--track-id-format", "{YTID}_{start_seconds}"]).status == 0)
        try h.dir.write("ann.csv", "clip_id\tno voice\tguitar\tmp3_path\n2\t0\t1\tf/a.mp3\n6\t1\t1\t0/b.mp3\n7\t0\t0\tc.mp3\n9\t2\t0\td.mp3\n")
        #expect(try h.ingest(["text", "--format", "mtat", "ann.csv"]).status == 3)
        #expect(try texts(h) == [
            "2|tags|mtat|guitar|2||0", "6|tags|mtat|no voice|3||0", "6|tags|mtat|guitar|3||0",
            "--PJHxphWEs_30.000|aset|positive_labels|Speech|3||0", "--PJHxphWEs_30.000|aset|positive_labels|Music|3||0",
            "--ZhevVpy1s_50.000|aset|positive_labels|Acoustic guitar|4||0",
        ])
        let rejects = try h.catalog().database.rows("SELECT manifest_line, reason FROM rejected_rows ORDER BY manifest_line")
        #expect(rejects.map { "\($0[0].int!):\($0[1].string!)" } == ["4:empty-text", "5:invalid-row"])
    }

    @Test func genericAndPlaylistJSONL() throws {
        let h = IngestHarness()
        var generic = Data("""
            {"track_id": "a", "source": "tags", "text": ["rock", "hip hop"]}
            {"track_id": "b", "tags": "jazz", "description": "A mellow trio.", "aset": ["/m/04rlf", "Piano"]}
            {"track_id": "c"}
            {oops
            {"track_id": "d", "source": "nope", "text": "x"}

            """.utf8)
        generic += Data([0x7B] + Array(#""track_id": "e", "tags": "caf"#.utf8) + [0xE9] + Array("\"}\n".utf8))
        try generic.write(to: URL(fileURLWithPath: h.dir.file("g.jsonl")))
        try h.dir.write("p.jsonl", """
            {"playlist_id": "p1", "title": "slow piano for sleep", "track_ids": ["a", "b"]}
            {"playlist_id": 2, "title": "", "description": "road trip", "track_ids": ["a"]}
            {"playlist_id": "p3", "title": "", "track_ids": ["a"]}

            """)
        #expect(try h.ingest(["text", "--format", "generic", "g.jsonl", "--labels", Self.ontology]).status == 3)
        #expect(try h.ingest(["text", "--format", "playlists", "p.jsonl"]).status == 3)
        #expect(try texts(h) == [
            "a|tags|text|rock|1||0", "a|tags|text|hip hop|1||0",
            "b|tags|tags|jazz|2||0", "b|descriptions|description|A mellow trio.|2||0",
            "b|aset|aset|Music|2||0", "b|aset|aset|Piano|2||0",
            "e|tags|tags|caf\u{FFFD}|6||1",
            "a|playlists|title|slow piano for sleep|1|p1|0", "b|playlists|title|slow piano for sleep|1|p1|0",
            "a|playlists|description|road trip|2|2|0",
        ])
        // With --invalid-utf8 reject, the bad record is rejected instead (a changed option re-reads the file).
        #expect(try h.ingest(["text", "--format", "generic", "g.jsonl", "--invalid-utf8", "reject"]).status == 3)
        let reasons = try h.catalog().database.rows(
            "SELECT manifest_line, reason FROM rejected_rows WHERE manifest_file LIKE '%g.jsonl' ORDER BY manifest_line")
            .map { "\($0[0].int!):\($0[1].string!)" }
        #expect(reasons == ["3:empty-text", "4:invalid-row", "5:invalid-row", "6:invalid-utf8"])
    }

    @Test func reloadingIsIdempotentAndAChangedFileIsReplaced() throws {
        let h = IngestHarness()
        try h.dir.write("g.jsonl", "{\"track_id\": \"a\", \"tags\": [\"rock\"]}\n")
        #expect(try h.ingest(["text", "--format", "generic", "g.jsonl"]).status == 0)
        let again = try h.ingest(["text", "--format", "generic", "g.jsonl", "--report", "r.json"])
        #expect(try h.report(h.dir.file("r.json"))["files_unchanged"] as? Int == 1)
        #expect(again.status == 0)
        try h.dir.write("g.jsonl", "{\"track_id\": \"a\", \"tags\": [\"pop\", \"dance\"]}\n")
        #expect(try h.ingest(["text", "--format", "generic", "g.jsonl"]).status == 0)
        #expect(try texts(h) == ["a|tags|tags|pop|1||0", "a|tags|tags|dance|1||0"])
    }

    @Test func overlongLinesAndLabelsRequirement() throws {
        let h = IngestHarness()
        let long = "{\"track_id\": \"a\", \"tags\": \"" + String(repeating: "x", count: 3000) + "\"}\n"
        try h.dir.write("g.jsonl", long + "{\"track_id\": \"b\", \"tags\": \"ok\"}\n")
        #expect(try h.ingest(["text", "--format", "generic", "g.jsonl", "--max-line-bytes", "1000"]).status == 3)
        #expect(try texts(h) == ["b|tags|tags|ok|2||0"])
        #expect(try h.catalog().database.row("SELECT reason FROM rejected_rows")?[0].string == "line-too-long")
        #expect(try h.ingest(["text", "--format", "audioset", "g.jsonl"]).status == 64)
    }

    @Test func nulBytesHaveADefinedOutcome() throws {
        let h = IngestHarness()
        // An escaped NUL is valid JSON: stored as given (normalization removes it later); a raw NUL
        // byte makes the line invalid JSON: rejected with its line.
        var data = Data(#"{"track_id": "a", "tags": "ja\u0000zz"}"#.utf8 + [0x0A])
        data += Data(#"{"track_id": "b", "tags": "ro"#.utf8) + Data([0x00]) + Data(#"ck"}"#.utf8 + [0x0A])
        try data.write(to: URL(fileURLWithPath: h.dir.file("nul.jsonl")))
        let r = try h.ingest(["text", "--format", "generic", "nul.jsonl"])
        #expect(r.status == 3, "\(r.stderr)")
        let c = try h.catalog()
        let stored = try c.database.row("SELECT text FROM raw_texts WHERE track_id = 'a'")?[0].string
        #expect(stored.map { Array($0.unicodeScalars) } == Array("ja\u{0}zz".unicodeScalars))
        let reject = try c.database.row("SELECT manifest_line, reason FROM rejected_rows")
        #expect(reject?[0].int == 2 && reject?[1].string == "invalid-row")
    }

    @Test func containerTagsFeedSources() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 31, tags: ["genre": "Ambient", "comment": "Rain at night",
                                                                   "artist": "Nobody"])
        try h.dir.write("m.csv", "track_id,path\na,a.ogg\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        let rows = Set(try h.catalog().database.rows(
            "SELECT lower(field), text, IFNULL(source, '-') FROM raw_texts WHERE track_id = 'a'")
            .map { "\($0[0].string!)=\($0[1].string!):\($0[2].string!)" })
        #expect(rows.isSuperset(of: ["genre=Ambient:tags", "comment=Rain at night:descriptions", "artist=Nobody:-"]))
    }

    @Test func exampleRecordsMatchSchemas() throws {
        let generic = [#"{"track_id": "a", "source": "tags", "text": ["rock"]}"#,
                       #"{"track_id": "b", "tags": "jazz", "description": "A trio."}"#]
        #expect(try SchemaValidator.validate(generic, schema: "text-generic.schema.json") == [nil, nil])
        let bad = [#"{"track_id": "c"}"#, #"{"track_id": "d", "source": "tags"}"#]
        #expect(try SchemaValidator.validate(bad, schema: "text-generic.schema.json").allSatisfy { $0 != nil })
        let playlists = [#"{"playlist_id": "p1", "title": "slow piano", "track_ids": ["a", "b"]}"#]
        #expect(try SchemaValidator.validate(playlists, schema: "text-playlists.schema.json") == [nil])
    }
}
