import Foundation
@testable import MulanCatalog
import MulanCore
import MulanFormats
import MulanTestSupport
import Testing

/// `scripts/make-demo-corpus.py`: the labeled demo corpus is reproducible, covers what its ground
/// truth says, keeps that ground truth out of the pipeline's inputs, and goes through `mulan-ingest`
/// with only its deliberately broken files failing.
@Suite("demo corpus generator")
struct DemoCorpusTests {
    /// Two corpora generated with the same seed, once for the whole suite (rendering is the slow part).
    static let corpora: Result<Corpora, any Error> = Result { try Corpora.generate() }

    static var ontology: String { TestPaths.audioSetOntology }
    static let families: Set = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"]

    struct Corpora: Sendable {
        let dir: TempDir
        let first: String
        let second: String
        let firstOutput: String

        static let tracks = 16

        static func generate() throws -> Corpora {
            let dir = TempDir("mulan-demo-corpus")
            // Both at once, with different --jobs: parallelism must not change a byte.
            let lock = NSLock()
            nonisolated(unsafe) var results: [Int: Result<ProcessResult, any Error>] = [:]  // guarded by lock
            DispatchQueue.concurrentPerform(iterations: 2) { k in
                let r = Result { try run(out: dir.file(k == 0 ? "a" : "b"), jobs: k + 1) }
                lock.withLock { results[k] = r }
            }
            let a = try lock.withLock { results[0] }?.get()
            _ = try lock.withLock { results[1] }?.get()
            return Corpora(dir: dir, first: dir.file("a"), second: dir.file("b"), firstOutput: a?.stdoutText ?? "")
        }

        static func run(out: String, jobs: Int) throws -> ProcessResult {
            let r = try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/make-demo-corpus.py", "--out", out,
                                                    "--tracks", "\(tracks)", "--seed", "11", "--jobs", "\(jobs)"])
            if r.status != 0 {
                throw TestFailure("make-demo-corpus.py failed (\(r.status)); it needs fluidsynth, fluid-soundfont-gm, "
                                  + "musescore-general-soundfont and ffmpeg (scripts/setup.sh installs them): \(r.stderr)")
            }
            return r
        }
    }

    static func corpus() throws -> Corpora { try corpora.get() }

    /// Rows of a CSV (or TSV) file as dictionaries keyed by the header.
    static func table(_ path: String, delimiter: UInt8 = 0x2C) throws -> (header: [String], rows: [[String: String]]) {
        let reader = try CSVReader(path: path, delimiter: delimiter)
        var header: [String] = []
        var rows: [[String: String]] = []
        while let record = try reader.next() {
            if record.fields == [""] { continue }
            if header.isEmpty { header = record.fields; continue }
            #expect(record.fields.count == header.count, "\(path):\(record.line)")
            rows.append(Dictionary(uniqueKeysWithValues: zip(header, record.fields)))
        }
        return (header, rows)
    }

    static func jsonLines(_ path: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestFailure("\(path): a line is not a JSON object: \(line)")
            }
            return object
        }
    }

    static func textCount(_ value: Any?) -> Int {
        switch value {
        case let list as [Any]: list.count
        case is String: 1
        default: 0
        }
    }

    @Test func sameSeedGivesTheSameBytesAndAReRunIsANoOp() throws {
        let c = try Self.corpus()
        let filesA = IngestHarness.files(below: c.first)
        let filesB = IngestHarness.files(below: c.second)
        #expect(filesA == filesB)
        for name in ["manifest.csv", "ground-truth.csv", "broken.csv", "eval/test-tags.csv", "eval/test-captions.jsonl",
                     "text/tags.jsonl", "text/descriptions.jsonl", "text/aset.jsonl", "text/playlists.jsonl", ".complete"] {
            #expect(filesA.contains(name), "\(name) is missing")
        }
        for name in filesA.sorted() {
            let a = try SHA256Digest.hex(ofFile: c.first + "/" + name).digest
            let b = try SHA256Digest.hex(ofFile: c.second + "/" + name).digest
            #expect(a == b, "\(name) differs between two runs with the same seed")
        }
        #expect(!FileManager.default.fileExists(atPath: c.first + ".tmp"))
        #expect(c.firstOutput.contains("16 tracks") && c.firstOutput.contains("broken inputs"))

        // The same arguments again: nothing is rewritten.
        let stamp = try String(contentsOfFile: c.first + "/.complete", encoding: .utf8)
        #expect(stamp.contains("seed=11") && stamp.contains("tracks=16") && stamp.contains("soundfonts=fluidr3,musescore"))
        let before = try FileManager.default.attributesOfItem(atPath: c.first + "/manifest.csv")[.modificationDate] as? Date
        let again = try Corpora.run(out: c.first, jobs: 2)
        #expect(again.stdoutText.contains("up to date"))
        let after = try FileManager.default.attributesOfItem(atPath: c.first + "/manifest.csv")[.modificationDate] as? Date
        #expect(before != nil && before == after)
    }

    @Test func groundTruthCoversFamiliesModesCodecsAndDurations() throws {
        let c = try Self.corpus()
        let truth = try Self.table(c.first + "/ground-truth.csv")
        #expect(Array(truth.header.prefix(13)) == ["track_id", "path", "split", "family", "program", "tempo_bpm", "tempo", "mode",
                                                  "key", "drums", "loudness", "duration_s", "codec"])
        let rows = truth.rows
        #expect(rows.count == Corpora.tracks)
        #expect(Set(rows.compactMap { $0["family"] }) == Self.families)
        #expect(Set(rows.compactMap { $0["mode"] }) == ["major", "minor"])
        #expect(Set(rows.compactMap { $0["drums"] }) == ["yes", "no"])
        #expect(Set(rows.compactMap { $0["loudness"] }) == ["loud", "quiet"])
        #expect(Set(rows.compactMap { $0["codec"] }).count >= 4)
        // Every family is in the test split.
        #expect(Set(rows.filter { $0["split"] == "test" }.compactMap { $0["family"] }) == Self.families)
        // The two training soundfonts (the default), balanced within each family: at two tracks per
        // family, one of each, so a soundfont says nothing about the family.
        for family in Self.families {
            let fonts = rows.filter { $0["family"] == family }.compactMap { $0["soundfont"] }
            #expect(fonts.sorted() == ["fluidr3", "musescore"], "\(family): \(fonts)")
        }
        // Each track's production variation is recorded, and varies.
        #expect(Set(rows.compactMap { $0["velocity_curve"] }).count > 8)
        #expect(rows.allSatisfy { (0.65...1.5).contains(Double($0["velocity_curve"] ?? "") ?? 0) })
        #expect(rows.allSatisfy { (0...127).contains(Int($0["reverb_send"] ?? "") ?? -1) && (0...127).contains(Int($0["chorus_send"] ?? "") ?? -1) })
        #expect(Set(rows.compactMap { $0["eq"] }).count == Corpora.tracks && rows.allSatisfy { $0["eq"]?.hasPrefix("bass=g=") == true })
        for row in rows {
            let id = row["track_id"] ?? "?"
            let bpm = Int(row["tempo_bpm"] ?? "") ?? 0
            let range = ["slow": 60...80, "medium": 95...115, "fast": 130...160][row["tempo"] ?? ""]
            #expect(range?.contains(bpm) == true, "\(id): \(bpm) BPM is not \(row["tempo"] ?? "?")")
            // The file's own duration (ffprobe), against the drawn one.
            let path = c.first + "/" + (row["path"] ?? "")
            let probe = try TestProcess.run("ffprobe", ["-v", "error", "-show_entries", "format=duration:format_tags:stream_tags",
                                                        "-of", "json", path])
            let json = try JSONSerialization.jsonObject(with: probe.stdout) as? [String: Any]
            let format = json?["format"] as? [String: Any]
            let seconds = Double(format?["duration"] as? String ?? "") ?? 0
            #expect((35...90.1).contains(seconds), "\(id): \(seconds) s")
            // The recorded level is the file's own (the ffmpeg CLI's astats over all its channels), mono
            // tracks included: version 2 measured their stereo render, up to 14 dB above the downmix.
            let stats = try TestProcess.run("ffmpeg", ["-nostdin", "-v", "info", "-i", path, "-af",
                                                       "astats=measure_perchannel=none:measure_overall=RMS_level", "-f", "null", "-"])
            let measured = stats.stderr.components(separatedBy: "RMS level dB: ").dropFirst().first
                .flatMap { Double($0.prefix { !$0.isNewline }.trimmingCharacters(in: .whitespaces)) }
            let recorded = Double(row["rms_dbfs"] ?? "")
            #expect(measured != nil && recorded != nil && abs(measured! - recorded!) < 1,
                    "\(id) (\(row["channels"] ?? "?") channels): the file's RMS is \(measured.map { "\($0)" } ?? "?") dBFS, ground truth says \(recorded.map { "\($0)" } ?? "?")")
            #expect(abs(seconds - (Double(row["duration_s"] ?? "") ?? 0)) < 0.1, "\(id): \(seconds) s")
            // Container tags are a title and an artist at most: never an attribute.
            let streams = json?["streams"] as? [[String: Any]] ?? []
            let tagSets = [format?["tags"]] + streams.map { $0["tags"] }
            let tags = Set(tagSets.flatMap { (($0 as? [String: Any]) ?? [:]).keys.map { $0.lowercased() } })
            #expect(tags.isSubset(of: ["title", "artist", "encoder"]), "\(id): \(tags)")
        }
        // Every quiet track is quieter than every loud one, by about 12 dB on average.
        func levels(_ loudness: String) -> [Double] {
            rows.filter { $0["loudness"] == loudness }.compactMap { Double($0["rms_dbfs"] ?? "") }
        }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(1, values.count)) }
        let loud = levels("loud"), quiet = levels("quiet")
        #expect(loud.count + quiet.count == Corpora.tracks)
        #expect((quiet.max() ?? 0) < (loud.min() ?? 0))
        let difference = mean(loud) - mean(quiet)
        #expect(difference > 9, "loud tracks are only \(difference) dB louder than quiet ones on average")

        // The held-out evaluation files: the test split only, in mulan-eval's formats.
        let tags = try Self.table(c.first + "/eval/test-tags.csv", delimiter: 0x09)
        #expect(tags.header.first == "clip_id" && tags.header.last == "mp3_path")
        #expect(Set(tags.header).isSuperset(of: Self.families.union(["slow", "fast", "major", "minor", "drums", "loud", "quiet"])))
        let test = rows.filter { $0["split"] == "test" }
        #expect(tags.rows.map { $0["clip_id"] ?? "" } == test.map { $0["track_id"] ?? "" })
        for (t, row) in zip(tags.rows, test) {
            #expect(t["mp3_path"] == row["path"])
            #expect(t[row["family"] ?? ""] == "1")
            #expect(Self.families.filter { t[$0] == "1" }.count == 1)
            #expect(t[row["mode"] ?? ""] == "1" && t["drums"] == (row["drums"] == "yes" ? "1" : "0"))
        }
        let captions = try Self.jsonLines(c.first + "/eval/test-captions.jsonl")
        #expect(captions.compactMap { $0["path"] as? String } == test.compactMap { $0["path"] })
        #expect(captions.allSatisfy { ($0["caption"] as? String)?.isEmpty == false })
    }

    /// The held-out evaluation corpus: another soundfont (csound's GM bank, never trained on), every
    /// good track in the evaluation files, recorded in the ground truth; two runs give the same bytes.
    /// The samples of a WAV file's `data` chunk (the headers differ: FluidSynth's CLI writes through
    /// libsndfile, which adds a `PEAK` chunk to float files).
    static func wavData(_ path: String) throws -> Data {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        var at = 12
        while at + 8 <= bytes.count {
            let id = String(decoding: bytes[at..<at + 4], as: UTF8.self)
            let size = bytes[at + 4..<at + 8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            if id == "data" { return bytes.subdata(in: at + 8..<min(bytes.count, at + 8 + size)) }
            at += 8 + size + (size & 1)
        }
        throw TestFailure("\(path) has no data chunk")
    }

    /// The generator renders with libfluidsynth in its own process, one soundfont load kept for all
    /// tracks: each track must still get exactly the samples the `fluidsynth` CLI renders for it with
    /// the same settings, a second track from the same (cached) soundfont included.
    @Test func inProcessRenderingGivesTheFluidSynthCLIsSamples() throws {
        let c = try Self.corpus()
        let dir = TempDir("mulan-demo-render")
        let fonts = ["fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
                     "musescore": "/usr/share/sounds/sf3/MuseScore_General_Full.sf3"]
        let tracks = try Self.table(c.first + "/ground-truth.csv").rows.compactMap { $0["track_id"] }.prefix(2)
        try #require(tracks.count == 2)
        let renders = [("musescore", tracks.first!), ("musescore", tracks.last!), ("fluidr3", tracks.first!)]
        let script = """
            import importlib.util, sys
            spec = importlib.util.spec_from_file_location("corpus", sys.argv[1])
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            renderer = m.FluidSynth()
            settings = {"synth.sample-rate": 44100, "synth.gain": 0.2, "synth.reverb.room-size": 0.7,
                        "synth.reverb.damp": 0.3, "synth.chorus.nr": 4, "synth.chorus.depth": 8.5}
            for sf, mid, out in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
                renderer.render(sf, settings, mid, out)
            """
        var arguments = ["-c", script, TestPaths.packageRoot + "/scripts/make-demo-corpus.py"]
        for (font, track) in renders {
            arguments += [fonts[font]!, c.first + "/midi/\(track).mid", dir.file("\(font)-\(track)-lib.wav")]
        }
        let lib = try TestProcess.run("python3", arguments)
        #expect(lib.status == 0, "\(lib.stderr)")
        for (font, track) in renders {
            let cli = try TestProcess.run("fluidsynth", [
                "-ni", "-q", "-g", "0.2", "-r", "44100", "-O", "float", "-o", "synth.dynamic-sample-loading=1",
                "-o", "synth.reverb.room-size=0.7", "-o", "synth.reverb.damp=0.3", "-o", "synth.chorus.nr=4",
                "-o", "synth.chorus.depth=8.5", "-F", dir.file("\(font)-\(track)-cli.wav"), fonts[font]!,
                c.first + "/midi/\(track).mid"])
            #expect(cli.status == 0, "\(cli.stderr)")
            let a = try Self.wavData(dir.file("\(font)-\(track)-lib.wav"))
            let b = try Self.wavData(dir.file("\(font)-\(track)-cli.wav"))
            #expect(a.count > 8 * 44100 * 10, "\(font) \(track): \(a.count) bytes")
            #expect(a.contains { $0 != 0 }, "\(font) \(track) is silent")
            #expect(a == b, "\(font) \(track): \(a.count) bytes in process, \(b.count) from the CLI")
        }
    }

    @Test func heldOutSoundfontCorpusIsDeterministicAndEvaluatesEveryTrack() throws {
        let dir = TempDir("mulan-demo-heldout")
        func make(_ name: String, jobs: Int) throws -> ProcessResult {
            let r = try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/make-demo-corpus.py", "--out", dir.file(name),
                                                    "--tracks", "8", "--seed", "8", "--soundfonts", "csound",
                                                    "--eval-split", "all", "--jobs", "\(jobs)"])
            if r.status != 0 {
                throw TestFailure("make-demo-corpus.py failed (\(r.status)); it needs csound-soundfont (scripts/setup.sh): \(r.stderr)")
            }
            return r
        }
        let first = try make("a", jobs: 2)
        _ = try make("b", jobs: 1)
        #expect(first.stdoutText.contains("csound 8"), "\(first.stdoutText)")
        let files = IngestHarness.files(below: dir.file("a"))
        #expect(files == IngestHarness.files(below: dir.file("b")))
        for name in files.sorted() {
            #expect(try SHA256Digest.hex(ofFile: dir.file("a") + "/" + name).digest
                    == SHA256Digest.hex(ofFile: dir.file("b") + "/" + name).digest, "\(name) differs between two runs")
        }
        let stamp = try String(contentsOfFile: dir.file("a") + "/.complete", encoding: .utf8)
        #expect(stamp.contains("soundfonts=csound") && stamp.contains("eval=all"), "\(stamp)")
        let rows = try Self.table(dir.file("a") + "/ground-truth.csv").rows
        #expect(rows.count == 8 && rows.allSatisfy { $0["soundfont"] == "csound" })
        #expect(Set(rows.compactMap { $0["family"] }) == Self.families)
        let tags = try Self.table(dir.file("a") + "/eval/test-tags.csv", delimiter: 0x09)
        #expect(tags.rows.map { $0["clip_id"] ?? "" } == rows.map { $0["track_id"] ?? "" })
        #expect(try Self.jsonLines(dir.file("a") + "/eval/test-captions.jsonl").count == 8)

        // An unknown soundfont is a usage error.
        let bad = try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/make-demo-corpus.py", "--out", dir.file("c"),
                                                  "--tracks", "8", "--soundfonts", "fluidr3,nope"])
        #expect(bad.status == 2 && bad.stderr.contains("--soundfonts"), "\(bad.stderr)")
    }

    @Test func pipelineInputsCarryNoGroundTruth() throws {
        let c = try Self.corpus()
        let manifest = try Self.table(c.first + "/manifest.csv")
        #expect(manifest.header == ["track_id", "path", "start_s", "end_s", "split"])
        #expect(manifest.rows.count == Corpora.tracks + 4)
        // Text records use only the fields of their formats.
        let generic: Set = ["track_id", "source", "text", "tags", "description", "aset"]
        for name in ["tags", "descriptions", "aset"] {
            let lines = try String(contentsOfFile: c.first + "/text/\(name).jsonl", encoding: .utf8)
                .split(separator: "\n").map(String.init)
            for object in try Self.jsonLines(c.first + "/text/\(name).jsonl") {
                #expect(Set(object.keys).isSubset(of: generic), "\(name): \(object.keys.sorted())")
            }
            #expect(try SchemaValidator.validate(lines, schema: "text-generic.schema.json").allSatisfy { $0 == nil })
        }
        let playlistLines = try String(contentsOfFile: c.first + "/text/playlists.jsonl", encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(try SchemaValidator.validate(playlistLines, schema: "text-playlists.schema.json").allSatisfy { $0 == nil })
        for object in try Self.jsonLines(c.first + "/text/playlists.jsonl") {
            #expect(Set(object.keys).isSubset(of: ["playlist_id", "title", "description", "track_ids"]))
        }
    }

    @Test func ingestRecordsOnlyTheBrokenInputsAndLoadsTheText() throws {
        let c = try Self.corpus()
        let h = IngestHarness()
        let broken = try Self.table(c.first + "/broken.csv").rows
        #expect(Set(broken.compactMap { $0["expected_reason"] }) == ["too-short", "truncated", "silent", "missing-file"])

        let audio = try h.ingest(["--manifest", c.first + "/manifest.csv", "--report", h.dir.file("audio.json")])
        #expect(audio.status == 3, "\(audio.stderr)")
        let report = try h.report(h.dir.file("audio.json"))
        #expect(report["tracks_ingested"] as? Int == Corpora.tracks)
        #expect(report["failures_by_reason"] as? [String: Int] == ["too-short": 1, "truncated": 1, "silent": 1, "missing-file": 1])
        let failed = try h.catalog().database.rows("SELECT track_id, reason FROM tracks WHERE status = 'failed'")
            .map { "\($0[0].string ?? ""):\($0[1].string ?? "")" }
        #expect(Set(failed) == Set(broken.map { "\($0["track_id"] ?? ""):\($0["expected_reason"] ?? "")" }))
        #expect(try h.catalog().count("SELECT COUNT(*) FROM rejected_rows") == 0)

        // Expected text counts, from the files themselves.
        let known = Set(try Self.table(c.first + "/manifest.csv").rows.compactMap { $0["track_id"] })
        var expected: [String: Int] = [:]
        for object in try Self.jsonLines(c.first + "/text/tags.jsonl") {
            expected["tags", default: 0] += Self.textCount(object["tags"]) + Self.textCount(object["text"])
        }
        for object in try Self.jsonLines(c.first + "/text/descriptions.jsonl") {
            expected["descriptions", default: 0] += Self.textCount(object["description"]) + Self.textCount(object["text"])
        }
        for object in try Self.jsonLines(c.first + "/text/aset.jsonl") {
            expected["aset", default: 0] += Self.textCount(object["aset"])
        }
        var unmatched = 0
        for object in try Self.jsonLines(c.first + "/text/playlists.jsonl") {
            let members = object["track_ids"] as? [String] ?? []
            let perMember = ((object["title"] as? String)?.isEmpty == false ? 1 : 0) + (object["description"] is String ? 1 : 0)
            expected["playlists", default: 0] += members.count * perMember
            unmatched += members.filter { !known.contains($0) }.count * perMember
        }
        #expect(unmatched > 0)  // two playlists still list deleted tracks

        let text = try h.ingest(["text", "--format", "generic", c.first + "/text/tags.jsonl", c.first + "/text/descriptions.jsonl",
                                 c.first + "/text/aset.jsonl", "--labels", Self.ontology, "--report", h.dir.file("text.json")])
        #expect(text.status == 0, "\(text.stderr)")
        let textReport = try h.report(h.dir.file("text.json"))
        #expect(textReport["texts_by_source"] as? [String: Int]
                == ["tags": expected["tags"] ?? -1, "descriptions": expected["descriptions"] ?? -1, "aset": expected["aset"] ?? -1])
        #expect(textReport["unmatched_texts"] as? Int == 0)
        #expect((textReport["rejects_by_reason"] as? [String: Int] ?? [:]).isEmpty)

        let playlists = try h.ingest(["text", "--format", "playlists", c.first + "/text/playlists.jsonl",
                                      "--report", h.dir.file("playlists.json")])
        #expect(playlists.status == 0, "\(playlists.stderr)")
        let playlistReport = try h.report(h.dir.file("playlists.json"))
        #expect(playlistReport["texts_by_source"] as? [String: Int] == ["playlists": expected["playlists"] ?? -1])
        #expect(playlistReport["unmatched_texts"] as? Int == unmatched)

        // AudioSet ids became names of the families' instruments.
        let names = Set(try h.catalog().database.rows("SELECT DISTINCT text FROM raw_texts WHERE source = 'aset'")
            .compactMap { $0[0].string })
        #expect(names.isSubset(of: ["Music", "Piano", "Guitar", "Acoustic guitar", "Bowed string instrument", "String section",
                                    "Brass instrument", "Flute", "Organ", "Hammond organ", "Bass guitar", "Synthesizer",
                                    "Drum kit"]), "\(names)")
    }
}
