import Foundation
@testable import MulanCatalog
import MulanCore
import MulanTestSupport
import Testing

/// Hostile text and manifest inputs (issue 8): each has a defined outcome — a recorded reject with
/// file, line and track id, a filter decision with its reason, or a repair — and never a crash, a
/// hang, unbounded memory or raw terminal control sequences in messages. Every input is generated
/// here; docs/reliability.md lists which test covers which input.
@Suite("HostileText: hostile text and manifest inputs", .serialized)
struct HostileTextTests {
    static var config: String { TestPaths.packageRoot + "/manifests/filters.toml" }

    static func writeBytes(_ h: IngestHarness, _ name: String, _ bytes: [UInt8]) throws -> String {
        let path = h.dir.file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Rejected rows as "file:line|track|reason|detail".
    static func rejects(_ h: IngestHarness) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT manifest_file, manifest_line, IFNULL(track_id, '-'), reason, detail FROM rejected_rows
            ORDER BY manifest_file, manifest_line, id
            """).map {
            "\(($0[0].string ?? "") .split(separator: "/").last ?? ""):\($0[1].int ?? 0)|\($0[2].string ?? "")|"
                + "\($0[3].string ?? "")|\($0[4].string ?? "")"
        }
    }

    /// Raw texts as "track|source|text|line|repaired".
    static func texts(_ h: IngestHarness) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT track_id, IFNULL(source, '-'), text, IFNULL(origin_line, 0), repaired FROM raw_texts ORDER BY id
            """).map { "\($0[0].string!)|\($0[1].string!)|\($0[2].string!)|\($0[3].int!)|\($0[4].int!)" }
    }

    /// Decisions of the latest completed version of a source as "track|status|reason|normalized|token ids".
    static func decisions(_ h: IngestHarness, _ source: String) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT d.track_id, d.status, d.reason, d.normalized, IFNULL(d.token_ids, '') FROM text_decisions d
            JOIN filter_versions v ON v.version = d.version
            WHERE d.source = ? AND v.completed_at IS NOT NULL ORDER BY d.raw_text_id
            """, [source]).map { $0.map { $0.string ?? "" }.joined(separator: "|") }
    }

    static func jsonLine(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// Hugging Face `tokenizers`' ids (BertWordPieceTokenizer, lowercase) for each line, the reference.
    static func referenceIDs(_ lines: [String], vocab: String) throws -> [String] {
        let dir = TempDir("hostile-ref")
        let input = try dir.write("lines.json", String(decoding: try JSONSerialization.data(withJSONObject: lines), as: UTF8.self))
        let script = """
            import json, sys
            from tokenizers import BertWordPieceTokenizer
            t = BertWordPieceTokenizer(sys.argv[1], lowercase=True)
            for line in json.load(open(sys.argv[2], encoding="utf-8")):
                print(" ".join(str(i) for i in t.encode(line, add_special_tokens=False).ids))
            """
        let r = try TestProcess.run(TestPython.path, ["-c", script, vocab, input])
        if r.status != 0 { throw TestFailure("reference tokenizer failed: \(r.stderr)") }
        return r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    // MARK: Invalid UTF-8

    @Test func invalidUTF8InManifestsAnnotationCSVsAndContainerTags() throws {
        let h = IngestHarness()
        // Audio manifests, JSONL and CSV: the row is rejected with its line (the CSV reader's unit
        // test is ManifestReaderTests.csvInvalidUTF8IsRejectedWithLine; this runs the executable).
        _ = try Self.writeBytes(h, "m.jsonl", Array(#"{"track_id": "ok", "path": "gone.wav"}"#.utf8) + [0x0A]
                                + Array(#"{"track_id": "b"#.utf8) + [0xC3, 0x28] + Array(#"", "path": "b.wav"}"#.utf8) + [0x0A])
        _ = try Self.writeBytes(h, "m.csv", Array("track_id,path\n".utf8) + [0x62, 0xFF, 0xFE] + Array(",b.wav\n".utf8))
        let audio = try h.ingest(["--manifest", "m.jsonl", "--manifest", "m.csv"])
        #expect(audio.status == 3, "\(audio.stderr)")
        #expect(try Self.rejects(h) == [
            "m.csv:2|-|invalid-row|field 1 is not valid UTF-8",
            "m.jsonl:2|-|invalid-row|line is not valid UTF-8",
        ])
        #expect(audio.stderr.contains("m.jsonl:2: invalid-row: line is not valid UTF-8"))

        // An annotation CSV (MusicCaps): by default the text is kept with U+FFFD and flagged
        // repaired; with --invalid-utf8 reject, the record is rejected with its line.
        var mc = Array("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption\n".utf8)
        mc += Array("y1,0,10,,['calm'],A sad caf".utf8) + [0xE9] + Array(" piano.\n".utf8)
        mc += Array("y2,0,10,,['fast'],A loud drum.\n".utf8)
        _ = try Self.writeBytes(h, "mc.csv", mc)
        let args = ["text", "--format", "musiccaps", "mc.csv", "--labels", TestPaths.audioSetOntology]
        #expect(try h.ingest(args).status == 0)
        let repaired = try h.catalog().database.rows(
            "SELECT track_id, text, repaired FROM raw_texts WHERE source = 'descriptions' ORDER BY origin_line")
            .map { "\($0[0].string!)|\($0[1].string!)|\($0[2].int!)" }
        #expect(repaired == ["y1|A sad caf\u{FFFD} piano.|1", "y2|A loud drum.|0"])
        #expect(try h.ingest(args + ["--invalid-utf8", "reject"]).status == 3)
        #expect(try Self.rejects(h).filter { $0.hasPrefix("mc.csv") } == ["mc.csv:2|-|invalid-utf8|field 6 is not valid UTF-8"])

        // A container tag (FLAC Vorbis comment) with invalid UTF-8: stored with U+FFFD and flagged
        // repaired, noted in the track's detail; normalization removes U+FFFD; the track is ingested.
        try TestMedia.tone(h.dir.file("t.flac"), seconds: 31, tags: ["genre": "QQQQQQQQ"])
        var flac = try Data(contentsOf: URL(fileURLWithPath: h.dir.file("t.flac")))
        let marker = Data("QQQQQQQQ".utf8)
        let at = try #require(flac.range(of: marker))
        flac.replaceSubrange(at, with: Data([0x6A, 0x61, 0x7A, 0x7A, 0xFF, 0xFE, 0xC3, 0x28]))  // "jazz" + bad bytes
        try flac.write(to: URL(fileURLWithPath: h.dir.file("bad-tag.flac")))
        try h.dir.write("tags.csv", "track_id,path\nbadtag,bad-tag.flac\n")
        let ingest = try h.ingest(["--manifest", "tags.csv"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let genre = try h.catalog().database.row(
            "SELECT text FROM raw_texts WHERE track_id = 'badtag' AND lower(field) = 'genre'")?[0].string
        #expect(genre == "jazz\u{FFFD}\u{FFFD}\u{FFFD}(")
        #expect(try h.catalog().database.row(
            "SELECT repaired FROM raw_texts WHERE track_id = 'badtag' AND lower(field) = 'genre'")?[0].int == 1)
        #expect(try h.catalog().database.row(
            "SELECT COUNT(*) FROM raw_texts WHERE track_id = 'badtag' AND repaired = 1")?[0].int == 1)
        let detail = try h.catalog().database.row("SELECT detail FROM tracks WHERE track_id = 'badtag'")?[0].string ?? ""
        #expect(detail.contains("container tag GENRE had invalid UTF-8") || detail.contains("container tag genre had invalid UTF-8"),
                "\(detail)")
        let vocab = try TestPython.bertVocabulary()
        try h.dir.write("one.toml", "[tags]\nmin_frequency = 1\n")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("one.toml")]).status == 0)
        #expect(try Self.decisions(h, "tags").contains { $0.hasPrefix("badtag|kept|kept|jazz|") })
    }

    // MARK: 10 MB lines

    @Test func tenMegabyteLinesAreRejectedWithBoundedMessages() throws {
        let h = IngestHarness()
        let big = String(repeating: "x", count: 10 << 20)
        // A text file: the line is over --max-line-bytes (1 MiB by default), rejected; its raw text
        // is kept capped; the next line loads.
        try h.dir.write("big.jsonl", #"{"track_id": "a", "tags": ""# + big + "\"}\n" + #"{"track_id": "b", "tags": "ok"}"# + "\n")
        let started = Date()
        let text = try h.ingest(["text", "--format", "generic", "big.jsonl"])
        #expect(text.status == 3)
        #expect(try Self.texts(h) == ["b|tags|ok|2|0"])
        #expect(try Self.rejects(h).map { String($0.prefix(28)) } == ["big.jsonl:1|-|line-too-long|"])
        #expect(try h.catalog().database.row("SELECT length(raw) FROM rejected_rows")?[0].int ?? 0 <= 4096)

        // Manifests: a 10 MB track id or path is rejected with its line, and the messages do not
        // repeat the 10 MB (the id is not named; a path over PATH_MAX is refused before any open).
        try h.dir.write("bigm.jsonl", #"{"track_id": ""# + big + #"", "path": "a.wav"}"# + "\n"
                        + #"{"track_id": "p", "path": ""# + big + "\"}\n")
        try h.dir.write("big.csv", "track_id,path\n" + big + ",a.wav\n")
        let manifest = try h.ingest(["--manifest", "bigm.jsonl", "--manifest", "big.csv"])
        #expect(manifest.status == 3)
        #expect(try Self.rejects(h).filter { !$0.hasPrefix("big.jsonl:") } == [
            "big.csv:2|-|invalid-row|track_id is 10485760 bytes long, more than 1024; give the track a shorter id",
            "bigm.jsonl:1|-|invalid-row|track_id is 10485760 bytes long, more than 1024; give the track a shorter id",
            "bigm.jsonl:2|p|invalid-row|path is 10485760 bytes long, more than the system's limit of 4096",
        ])
        #expect(try h.catalog().count("SELECT COUNT(*) FROM tracks") == 0)
        #expect(manifest.stderr.utf8.count < 64 << 10 && text.stderr.utf8.count < 64 << 10)
        #expect(Date().timeIntervalSince(started) < 120)
    }

    // MARK: Control characters

    @Test func controlCharactersAreNormalizedAwayAndEscapedInMessages() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        // Texts with C0, C1 and ESC sequences are stored as given and normalized to plain text;
        // a track id with control characters is rejected (as in audio manifests); a bidi override
        // in a track id is allowed but shown escaped.
        try h.dir.write("ctl.jsonl", #"""
            {"track_id": "t1", "tags": ["ro\u0007ck", "\u009bjazz\u0000", "\u001b[31mred\u001b[0m"]}
            {"track_id": "t2", "tags": ["rock", "jazz"]}
            {"track_id": "\u001b]0;pwned\u0007\u001b[31mred", "tags": "x"}
            {"track_id": "\u202egnp.exe", "source": "nope", "text": "x"}
            {"track_id": "a\nwarning: forged", "tags": "x"}

            """#)
        let r = try h.ingest(["text", "--format", "generic", "ctl.jsonl"])
        #expect(r.status == 3)
        #expect(try Self.rejects(h) == [
            "ctl.jsonl:3|\u{1B}]0;pwned\u{7}\u{1B}[31mred|invalid-row|track_id contains control characters; remove them from the id",
            "ctl.jsonl:4|\u{202E}gnp.exe|invalid-row|source must be one of tags, descriptions, playlists, aset",
            "ctl.jsonl:5|a\nwarning: forged|invalid-row|track_id contains control characters; remove them from the id",
        ])
        // Messages never carry raw control or bidi characters: they are written as \u{…}.
        let unsafe = r.stderr.unicodeScalars.filter { $0 != "\n" && ($0.value < 0x20 || (0x7F...0x9F).contains($0.value)
                                                                    || (0x202A...0x202E).contains($0.value)) }
        #expect(unsafe.isEmpty, "\(r.stderr.debugDescription)")
        #expect(r.stderr.contains(#"track \u{202E}gnp.exe: invalid-row"#), "\(r.stderr)")
        #expect(r.stderr.contains(#"ctl.jsonl:3, track \u{1B}]0;pwned\u{7}\u{1B}[31mred: invalid-row"#), "\(r.stderr)")
        #expect(r.stderr.contains(#"ctl.jsonl:5, track a\u{A}warning: forged: invalid-row"#), "\(r.stderr)")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(try Self.decisions(h, "tags").map { $0.split(separator: "|").prefix(4).joined(separator: "|") } == [
            "t1|kept|kept|rock", "t1|kept|kept|jazz", "t1|dropped|rare|31mred 0m", "t2|kept|kept|rock", "t2|kept|kept|jazz",
        ])

        // The audio manifest's reject names the line; the escape sequences are not replayed.
        try h.dir.write("m.csv", "track_id,path\n\"\u{1B}[2J\u{1B}[31mevil\",a.wav\n\"\u{9B}31m\",b.wav\n")
        let a = try h.ingest(["--manifest", "m.csv"])
        #expect(a.status == 3)
        #expect(!a.stderr.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" }, "\(a.stderr.debugDescription)")
        #expect(a.stderr.contains(#"m.csv:2, track \u{1B}[2J\u{1B}[31mevil: invalid-row: track_id contains control"#),
                "\(a.stderr)")
        #expect(a.stderr.contains(#"m.csv:3, track \u{9B}31m: invalid-row"#), "\(a.stderr)")
        // JSON logs escape them as JSON does, and keep the fields exact.
        let j = try h.ingest(["text", "--format", "generic", "ctl.jsonl", "--log-format", "json", "--invalid-utf8", "reject"])
        #expect(!j.stderr.unicodeScalars.contains("\u{1B}"))
    }

    // MARK: Right-to-left text

    @Test func rightToLeftTextAndBidiOverrides() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        let tags = ["\u{202E}kcor", "موسيقى هادئة", "\u{202B}שיר\u{202C}", "\u{2067}עברית\u{2069} rock"]
        let description = "\u{202E}A calm oud melody over soft hand drums, موسيقى عربية هادئة."
        let lines = try [["track_id": "r1", "tags": tags, "description": description] as [String: Any],
                         ["track_id": "r2", "tags": tags]].map(Self.jsonLine)
        try h.dir.write("rtl.jsonl", lines.joined(separator: "\n") + "\n")
        #expect(try h.ingest(["text", "--format", "generic", "rtl.jsonl"]).status == 0)
        // Stored as given (the raw text keeps the overrides) ...
        #expect(Array(try Self.texts(h).prefix(4)) == tags.map { "r1|tags|\($0)|1|0" })
        // ... normalized without them (format characters), tokenized as the reference does.
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(try h.filter(["--source", "descriptions", "--vocab", vocab, "--config", Self.config]).status == 0)
        let decided = try Self.decisions(h, "tags").filter { $0.hasPrefix("r1|") } + Self.decisions(h, "descriptions")
        let normalized = ["kcor", "موسيقى هادئة", "שיר", "עברית rock",
                          "A calm oud melody over soft hand drums, موسيقى عربية هادئة."]
        #expect(decided.map { $0.split(separator: "|").prefix(4).joined(separator: "|") }
                == normalized.map { "r1|kept|kept|\($0)" })
        let reference = try Self.referenceIDs(normalized, vocab: vocab)
        #expect(decided.map { String($0.split(separator: "|").last ?? "") } == reference)
        #expect(!decided.contains { $0.unicodeScalars.contains { (0x202A...0x202E).contains($0.value)
                                                                    || (0x2066...0x2069).contains($0.value) } })
    }

    // MARK: Stacked combining marks

    @Test func stackedCombiningMarksNormalizeAndTokenize() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        let zalgo = "Z" + String(repeating: "\u{301}", count: 250) + String(repeating: "\u{308}", count: 250)
        let sentence = "A calm piano \(zalgo) piece with soft strings and warm pads."
        let lines = try [["track_id": "z1", "tags": [zalgo, "rock"], "description": sentence] as [String: Any],
                         ["track_id": "z2", "tags": [zalgo, "rock"]]].map(Self.jsonLine)
        try h.dir.write("z.jsonl", lines.joined(separator: "\n") + "\n")
        #expect(try h.ingest(["text", "--format", "generic", "z.jsonl"]).status == 0)
        let started = Date()
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(try h.filter(["--source", "descriptions", "--vocab", vocab, "--config", Self.config]).status == 0)
        #expect(Date().timeIntervalSince(started) < 60)
        // NFKC composes Z + U+0301 into Ź (case-folded ź for tags); the other 499 marks stay. The
        // tokenizer strips them (BERT lowercasing removes nonspacing marks): the ids are "z"'s.
        let tagForm = "\u{17A}" + String(repeating: "\u{301}", count: 249) + String(repeating: "\u{308}", count: 250)
        let sentenceForm = "A calm piano \u{179}" + String(repeating: "\u{301}", count: 249)
            + String(repeating: "\u{308}", count: 250) + " piece with soft strings and warm pads."
        let reference = try Self.referenceIDs([tagForm, sentenceForm, "z"], vocab: vocab)
        #expect(reference[0] == reference[2])
        let tags = try Self.decisions(h, "tags")
        #expect(tags == ["z1|kept|kept|\(tagForm)|\(reference[0])", "z1|kept|kept|rock|2600",
                         "z2|kept|kept|\(tagForm)|\(reference[0])", "z2|kept|kept|rock|2600"])
        let descriptions = try Self.decisions(h, "descriptions")
        #expect(descriptions == ["z1|kept|kept|\(sentenceForm)|\(reference[1])"])
    }

    // MARK: 100,000 tags on one track

    @Test func hundredThousandTagsOnOneTrackAreCappedPerTrack() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        let tags = (0..<100_000).map { "t\($0)" }
        let line = String(decoding: try JSONSerialization.data(withJSONObject: ["track_id": "many", "tags": tags]), as: UTF8.self)
        #expect(line.utf8.count < 1 << 20)  // one line, under the default --max-line-bytes
        try h.dir.write("many.jsonl", line + "\n")
        let started = Date()
        let load = try h.ingest(["text", "--format", "generic", "many.jsonl", "--report", "r.json"])
        #expect(load.status == 0)
        #expect(try h.report(h.dir.file("r.json"))["texts_by_source"] as? [String: Int] == ["tags": 100_000])
        try h.dir.write("one.toml", "[tags]\nmin_frequency = 1\n")
        let r = try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("one.toml"), "--report", "f.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 120)
        // max_per_track (20) keeps the most frequent; ties go to the first listed.
        let report = try h.report(h.dir.file("f.json"))
        #expect(report["kept"] as? Int == 20)
        #expect(report["dropped_by_reason"] as? [String: Int] == ["over-max-per-track": 99_980])
        let kept = try h.catalog().database.rows(
            "SELECT normalized FROM text_decisions WHERE status = 'kept' ORDER BY raw_text_id").map { $0[0].string! }
        #expect(kept == (0..<20).map { "t\($0)" })
    }

    // MARK: CSV quotes

    @Test func annotationCSVWithStrayAndUnclosedQuotes() throws {
        let h = IngestHarness()
        // Quoted newlines keep later line numbers true; a stray quote after a closing quote makes
        // the record invalid; an unclosed quote runs to the end of the file and is one reject.
        try h.dir.write("mc.csv", """
            ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption
            q1,0,10,,['calm'],"Two lines
            of caption, with ""quotes""."
            q2,0,10,,['calm'],"closed" and more
            q3,0,10,,['calm'],a "stray" quote inside
            q4,0,10,,['calm'],"never closed
            q5,0,10,,['fast'],swallowed

            """)
        let r = try h.ingest(["text", "--format", "musiccaps", "mc.csv", "--labels", TestPaths.audioSetOntology])
        #expect(r.status == 3)
        #expect(try Self.texts(h).filter { $0.contains("|descriptions|") } == [
            "q1|descriptions|Two lines\nof caption, with \"quotes\".|2|0",
            "q3|descriptions|a \"stray\" quote inside|5|0",
        ])
        #expect(try Self.rejects(h) == [
            "mc.csv:4|-|invalid-row|unexpected character after a closing quote",
            "mc.csv:6|-|invalid-row|a quoted field is not closed before the end of the file",
        ])
        #expect(r.stderr.contains("mc.csv:4: invalid-row: unexpected character after a closing quote"))
    }

    // MARK: Deeply nested JSON

    @Test func deeplyNestedJSONIsRejectedNotRecursed() throws {
        let h = IngestHarness()
        let nested = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        try h.dir.write("g.jsonl", #"{"track_id": "a", "tags": "# + nested + "}\n" + nested + "\n"
                        + #"{"track_id": "b", "tags": "ok"}"# + "\n")
        try h.dir.write("p.jsonl", #"{"playlist_id": "p", "title": "x", "track_ids": "# + nested + "}\n")
        let g = try h.ingest(["text", "--format", "generic", "g.jsonl"])
        let p = try h.ingest(["text", "--format", "playlists", "p.jsonl"])
        #expect(g.status == 3 && p.status == 3, "\(g.stderr) \(p.stderr)")  // 3: completed, not a signal
        #expect(try Self.texts(h) == ["b|tags|ok|3|0"])
        try h.dir.write("m.jsonl", #"{"track_id": "a", "path": "# + nested + "}\n" + nested + "\n")
        let m = try h.ingest(["--manifest", "m.jsonl"])
        #expect(m.status == 3, "\(m.stderr)")
        let depth = "Too many nested arrays or dictionaries around character"
        let rejects = try Self.rejects(h)
        #expect(rejects.count == 5)
        #expect(rejects.allSatisfy { $0.contains("|invalid-row|") && $0.contains(depth) }, "\(rejects)")
        #expect(rejects.map { $0.split(separator: "|")[0] } == ["g.jsonl:1", "g.jsonl:2", "m.jsonl:1", "m.jsonl:2", "p.jsonl:1"])
    }

    // MARK: Duplicate ids

    @Test func duplicateIDsInManifestsAndTextFiles() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        // Audio manifest: the first row of an id wins, later ones are rejected (BadInputTests covers
        // the plain case); ids equal under Unicode canonical equivalence count as the same id.
        try h.dir.write("m.csv", "track_id,path\ncaf\u{E9},gone.wav\ncafe\u{301},gone.wav\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 3)
        #expect(try Self.rejects(h).map { $0.split(separator: "|").prefix(3).joined(separator: "|") }
                == ["m.csv:3|cafe\u{301}|duplicate-track-id"])
        #expect(try h.catalog().database.rows("SELECT track_id FROM tracks").map { $0[0].string! } == ["caf\u{E9}"])

        // Text files: every record of an id is kept (texts add up, each with its file and line);
        // the filter keeps one copy of a tag per track and drops the others as duplicate.
        try h.dir.write("a.jsonl", """
            {"track_id": "d", "tags": ["rock", "jazz"]}
            {"track_id": "d", "tags": ["rock"]}
            {"track_id": "e", "tags": ["rock", "jazz"]}

            """)
        try h.dir.write("b.jsonl", #"{"track_id": "d", "tags": ["Rock", "folk"]}"# + "\n")
        #expect(try h.ingest(["text", "--format", "generic", "a.jsonl", "b.jsonl"]).status == 0)
        #expect(try h.catalog().count("SELECT COUNT(*) FROM raw_texts WHERE track_id = 'd'") == 5)
        try h.dir.write("one.toml", "[tags]\nmin_frequency = 1\n")
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("one.toml")]).status == 0)
        #expect(try Self.decisions(h, "tags").map { $0.split(separator: "|").prefix(4).joined(separator: "|") } == [
            "d|kept|kept|rock", "d|kept|kept|jazz", "d|dropped|duplicate|rock",
            "e|kept|kept|rock", "e|kept|kept|jazz", "d|dropped|duplicate|rock", "d|kept|kept|folk",
        ])
    }

    // MARK: Path-like ids (ingest, text, filter; shards: HostileTextShardKeyTests)

    @Test func pathLikeIDsWriteNothingOutsideTheWorkDirectory() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        let ids = ["../../etc/passwd", "a/../../b", ".hidden", "...", ".", "..", "/abs/x", "a\\..\\b", "~", "-rf"]
        try TestMedia.tone(h.dir.file("audio/t.ogg"), seconds: 31)
        var csv = "track_id,path\n"
        var jsonl = ""
        for id in ids {
            csv += "\"\(id)\",../audio/t.ogg\n"
            jsonl += try Self.jsonLine(["track_id": id, "tags": ["rock", "calm"]]) + "\n"
        }
        try h.dir.write("sub/m.csv", csv)
        try h.dir.write("sub/t.jsonl", jsonl)
        let before = IngestHarness.files(below: h.dir.path)
        #expect(try h.ingest(["--manifest", "sub/m.csv"]).status == 0)
        #expect(try h.ingest(["text", "--format", "generic", "sub/t.jsonl"]).status == 0)
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", Self.config]).status == 0)
        let c = try h.catalog()
        #expect(Set(try c.database.rows("SELECT track_id FROM tracks WHERE status = 'ingested'").map { $0[0].string! }) == Set(ids))
        #expect(try c.count("SELECT COUNT(*) FROM text_decisions WHERE status = 'kept'") == 2 * ids.count)
        #expect(try c.count("SELECT COUNT(*) FROM raw_texts WHERE origin_file IS NOT NULL AND track_id NOT IN (SELECT track_id FROM tracks)") == 0)
        // Only the work directory grew, and its clip store holds content hashes only.
        let after = IngestHarness.files(below: h.dir.path)
        #expect(after.subtracting(before).allSatisfy { $0.hasPrefix("work/") }, "\(after.subtracting(before).sorted())")
        let clips = IngestHarness.files(below: h.workdir + "/clips")
        #expect(!clips.isEmpty && clips.allSatisfy { $0.range(of: #"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.flac$"#,
                                                                   options: .regularExpression) != nil })
    }
}
