import Foundation
import MulanCore
import MulanFormats
import MulanTestSupport
import MulanTraining
import Testing

/// Fixtures in the published layouts of the benchmark corpora, with audio made by the test: every
/// item is either evaluated or counted as missing.
enum BenchmarkFixtures {
    static func tone(_ path: String, _ k: Int) throws {
        try TestMedia.tone(path, seconds: 2, frequency: 220 + 55 * Double(k % 12), rate: 16000, channels: 1, seed: k + 1)
    }

    /// MagnaTagATune `annotations_final.csv` (every field quoted, tab-separated, CRLF): 52 tags, t00…t49
    /// on clips 1–9 by the bits of the clip number (2 to 6 clips each), t50 and t51 on clips 9 and 10
    /// only (2 each, after t03…t47 by name, so outside the top 50). Test folders d–f hold clips 5, 6,
    /// 7, 10 (only t50/t51: not in the benchmark) and 11 (t00; its audio is missing).
    static func mtat(_ dir: TempDir, audio: Bool) throws -> String {
        let tags = (0..<52).map { String(format: "t%02d", $0) }
        var lines = ["\"clip_id\"\t" + tags.map { "\"\($0)\"" }.joined(separator: "\t") + "\t\"mp3_path\""]
        let folders = ["0", "3", "b", "c", "d", "f", "e", "a", "1", "d", "e"]
        for clip in 1...11 {
            let values = tags.indices.map { k -> String in
                if clip == 10 { return k >= 50 ? "1" : "0" }
                if clip == 11 { return k == 0 ? "1" : "0" }
                return k < 50 ? (clip >> (k % 4) & 1 == 1 ? "1" : "0") : (clip == 9 ? "1" : "0")
            }
            let path = "\(folders[clip - 1])/artist-album-\(clip)-song.mp3"
            lines.append("\"\(clip)\"\t" + values.map { "\"\($0)\"" }.joined(separator: "\t") + "\t\"\(path)\"")
            if clip != 11 {
                let file = dir.file("mtat/audio/" + path)
                if audio { try tone(file, clip) } else { _ = try dir.write("mtat/audio/" + path, "") }
            }
        }
        return try dir.write("mtat/annotations_final.csv", lines.joined(separator: "\r\n") + "\r\n")
    }

    /// MTG-Jamendo `splits/split-0/autotagging-test.tsv` (ragged, CRLF): track 4's audio is missing,
    /// track 5 has only its `.low.mp3`.
    static func jamendo(_ dir: TempDir, audio: Bool) throws -> String {
        let rows: [(Int, [String])] = [
            (1, ["genre---rock", "instrument---guitar", "mood/theme---happy"]),
            (2, ["genre---pop", "mood/theme---film"]),
            (3, ["instrument---piano"]),
            (4, ["genre---rock"]),
            (5, ["genre---electronic", "instrument---synthesizer"]),
        ]
        var lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
        for (n, tags) in rows {
            let path = String(format: "%02d/%d.mp3", n, n)
            lines.append([String(format: "track_%07d", n), "artist_000001", "album_000001", path, "201.3"].joined(separator: "\t")
                         + "\t" + tags.joined(separator: "\t"))
            let stored = n == 5 ? String(format: "%02d/%d.low.mp3", n, n) : path
            if n != 4 {
                if audio { try tone(dir.file("jamendo/audio/" + stored), n) } else { _ = try dir.write("jamendo/audio/" + stored, "") }
            }
        }
        let text = lines.joined(separator: "\r\n") + "\r\n"
        _ = try dir.write("jamendo/splits/split-0/autotagging_genre-train.tsv", text)
        return try dir.write("jamendo/splits/split-0/autotagging-test.tsv", text)
    }

    /// The music part of AudioSet's class_labels_indices.csv (its mids, in its order) with Speech
    /// first: 160 classes, 150 of them in the ontology's "Music" subtree.
    static let classMids = """
        /m/09x0r /m/015lz1 /m/0l14jd /m/01swy6 /m/02bk07 /m/01c194 /t/dd00003 /t/dd00004 /t/dd00005 /t/dd00006 /m/06bxc \
        /m/02fxyj /m/0239kh /m/04rlf /m/04szw /m/0fx80y /m/0342h /m/02sgy /m/018vs /m/042v_gx /m/06w87 /m/01glhc /m/07s0s5r \
        /m/018j2 /m/0jtg0 /m/04rzd /m/01bns_ /m/07xzm /m/05148p4 /m/05r5c /m/01s0ps /m/013y1f /m/03xq_f /m/03gvt /m/0l14qv \
        /m/01v1d8 /m/03q5t /m/0l14md /m/02hnl /m/0cfdd /m/026t6 /m/06rvn /m/03t3fj /m/02k_mr /m/0bm02 /m/011k_j /m/01p970 \
        /m/01qbl /m/03qtq /m/01sm1g /m/07brj /m/05r5wn /m/0xzly /m/0mbct /m/016622 /m/0j45pbj /m/0dwsp /m/0dwtp /m/0dwt5 \
        /m/0l156b /m/05pd6 /m/01kcd /m/0319l /m/07gql /m/07c6l /m/0l14_3 /m/02qmj0d /m/07y_7 /m/0d8_n /m/01xqw /m/02fsn \
        /m/085jw /m/0l14j_ /m/06ncr /m/01wy6 /m/03m5k /m/0395lw /m/03w41f /m/027m70_ /m/0gy1t2s /m/07n_g /m/0f8s22 /m/026fgl \
        /m/0150b9 /m/03qjg /m/0mkg /m/0192l /m/02bxd /m/0l14l2 /m/07kc_ /m/0l14t7 /m/01hgjl /m/064t9 /m/0glt670 /m/02cz_7 \
        /m/06by7 /m/03lty /m/05r6t /m/0dls3 /m/0dl5d /m/07sbbz2 /m/05w3f /m/06j6l /m/0gywn /m/06cqb /m/01lyv /m/015y_n \
        /m/0gg8l /m/02x8m /m/02w4v /m/06j64v /m/03_d0 /m/026z9 /m/0ggq0m /m/05lls /m/02lkt /m/03mb9 /m/07gxw /m/07s72n \
        /m/0283d /m/0m0jc /m/08cyft /m/0fd3y /m/07lnk /m/0g293 /m/0ln16 /m/0326g /m/0155w /m/05fw6t /m/02v2lh /m/0y4f8 \
        /m/0z9c /m/0164x2 /m/0145m /m/02mscn /m/016cjb /m/028sqc /m/015vgc /m/0dq0md /m/06rqw /m/02p0sh1 /m/05rwpb /m/074ft \
        /m/025td0t /m/02cjck /m/03r5q_ /m/0l14gg /m/07pkxdp /m/01z7dr /m/0140xf /m/0ggx5q /m/04wptg /t/dd00031 /t/dd00032 \
        /t/dd00033 /t/dd00034 /t/dd00035 /t/dd00036 /t/dd00037 /m/0b_fwt /m/02rr_ /m/07m2kt
        """.split(separator: " ").map(String.init)

    static var ontology: String { TestPaths.packageRoot + "/manifests/audioset-music-ontology.json" }

    /// class_labels_indices.csv (`index,mid,display_name`, names quoted; some hold commas).
    static func classLabels(_ dir: TempDir) throws -> String {
        let names = try AudioSetLabels.ontology(path: TestPaths.audioSetOntology)
        var text = "index,mid,display_name\n"
        for (i, mid) in classMids.enumerated() { text += "\(i),\(mid),\"\(names.name(of: mid) ?? mid)\"\n" }
        return try dir.write("audioset/class_labels_indices.csv", text)
    }

    /// AudioSet `eval_segments.csv` (three `#` lines, `YTID, start, end, "labels"`), audio named in
    /// several of the usual ways; dddddddddd1's audio is missing.
    static func audioSet(_ dir: TempDir, audio: Bool) throws -> String {
        let rows: [(String, String, String?)] = [
            ("aaaaaaaaaa1", "/m/04rlf,/m/064t9", "Yaaaaaaaaaa1.wav"),            // Music, Pop music
            ("bbbbbbbbbb1", "/m/04rlf,/m/025td0t", "bbbbbbbbbb1.flac"),          // Music, Background music
            ("cccccccccc1", "/m/09x0r", "cccccccccc1.wav"),                      // Speech
            ("dddddddddd1", "/m/06by7", nil),                                    // Rock music, missing
            ("-eeeeeeeee1", "/m/04wptg", "-eeeeeeeee1.wav"),                     // Wedding music (a role)
            ("fffffffffff", "/m/0l14md,/t/dd00031", "fffffffffff_30-40.mp3"),    // Percussion, Happy music
            ("gggggggggg1", "/m/0ggq0m,/m/04rlf", "sub/gggggggggg1_30.wav"), // Classical music, Music
        ]
        var text = """
            # Segments csv created Sun Mar  5 10:54:25 2017
            # num_ytids=7, num_segs=7, num_unique_labels=9, num_positive_labels=11
            # YTID, start_seconds, end_seconds, positive_labels

            """
        for (k, (id, labels, file)) in rows.enumerated() {
            text += "\(id), 30.000, 40.000, \"\(labels)\"\n"
            if let file {
                if audio { try tone(dir.file("audioset/audio/" + file), k) } else { _ = try dir.write("audioset/audio/" + file, "") }
            }
        }
        return try dir.write("audioset/eval_segments.csv", text)
    }

    /// MusicCaps `musiccaps-public.csv` (quoted list literals and captions with commas and quotes):
    /// 4 eval rows (one missing its audio) and 2 train rows.
    static func musicCaps(_ dir: TempDir, audio: Bool) throws -> String {
        var text = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval\n"
        let rows: [(String, String, Bool, Bool)] = [
            ("-0Gj8-vB1q4", "A low sine tone, slow and calm.", true, true),
            ("0bRUkLsttto", "A \"\"bright\"\" high tone, fast.", true, true),
            ("1aBcDeFgHiJ", "A middle tone; lo-fi.", true, true),
            ("2aBcDeFgHiJ", "Missing audio here.", true, false),
            ("3aBcDeFgHiJ", "A training caption.", false, true),
            ("4aBcDeFgHiJ", "Another training caption.", false, false),
        ]
        for (k, (id, caption, eval, present)) in rows.enumerated() {
            text += "\(id),30,40,\"/m/04rlf,/m/064t9\",\"['low quality', \"\"children's song\"\"]\",\"\(caption)\",4,False,\(eval ? "True" : "False")\n"
            if present {
                if audio { try tone(dir.file("musiccaps/audio/\(id).wav"), k) } else { _ = try dir.write("musiccaps/audio/\(id).wav", "") }
            }
        }
        return try dir.write("musiccaps/musiccaps-public.csv", text)
    }

    /// Song Describer `song_describer.csv`: 3 tracks with 3, 2 and 1 captions, a caption id given twice,
    /// and a fourth track whose audio is missing (2 captions).
    static func songDescriber(_ dir: TempDir, audio: Bool) throws -> String {
        var text = "caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,duration\n"
        let rows: [(Int, Int, String)] = [
            (1, 1, "A calm low tone, slow."), (2, 1, "Low and steady."), (3, 1, "Deep hum, \"soft\"."),
            (4, 2, "A high bright tone."), (5, 2, "High pitch, fast."), (6, 3, "Something in between."),
            (5, 2, "High pitch, fast."), (7, 4, "Never downloaded."), (8, 4, "Still not here."),
        ]
        for (caption, track, words) in rows {
            let path = String(format: "%02d/%d.2min.mp3", track, track)
            text += "\(caption),\(track),\"\(words.replacingOccurrences(of: "\"", with: "\"\""))\",True,2,11,22,\(path),120.0\n"
        }
        for track in 1...3 {
            let path = "songdescriber/audio/" + String(format: "%02d/%d.2min.mp3", track, track)
            if audio { try tone(dir.file(path), track * 3) } else { _ = try dir.write(path, "") }
        }
        return try dir.write("songdescriber/song_describer.csv", text)
    }
}

/// What each preset chooses (tags, split, items, missing), read straight from the fixtures.
@Suite("Benchmark presets: ground truth")
struct BenchmarkPresetGroundTruthTests {
    static func names(_ set: BenchmarkSet) -> [String] { set.truth?.items.compactMap(\.name) ?? [] }

    @Test func mtatTop50TakesTheFiftyMostFrequentTagsAndTheTestFolders() throws {
        let dir = TempDir()
        let csv = try BenchmarkFixtures.mtat(dir, audio: false)
        let set = try BenchmarkSet.load(.mtatTop50, data: [csv], audioRoot: dir.file("mtat/audio"))
        let truth = try #require(set.truth)
        // Clips per tag: t00 6 (clips 1, 3, 5, 7, 9, 11), other t(4k) 5, t(4k+1) and t(4k+2) 4, t(4k+3) 2.
        let count = { (t: String) in t == "t00" ? 6 : [0: 5, 1: 4, 2: 4, 3: 2][Int(t.dropFirst())! % 4]! }
        let expected = (0..<50).map { String(format: "t%02d", $0) }.sorted { a, b in
            count(a) != count(b) ? count(a) > count(b) : a < b
        }
        #expect(truth.tags == expected)
        #expect(!truth.tags.contains("t50") && !truth.tags.contains("t51"))
        #expect(Self.names(set) == ["5", "6", "7"], "folders d–f with a top-50 tag; clip 10 has none")
        #expect(set.missing.map(\.item) == ["11"] && set.missing.first?.line == 12)
        #expect(truth.items.allSatisfy { $0.split == "test" && $0.tags.isSubset(of: Set(truth.tags)) })
        #expect(truth.items.first { $0.name == "5" }?.tags == Set(["t00", "t02"].flatMap { b in
            stride(from: Int(b.dropFirst())!, to: 50, by: 4).map { String(format: "t%02d", $0) } }))
    }

    @Test func mtatTop50ForTheProbeKeepsEveryFolderWithItsSplit() throws {
        let dir = TempDir()
        let csv = try BenchmarkFixtures.mtat(dir, audio: false)
        let test = try BenchmarkSet.load(.mtatTop50, data: [csv], audioRoot: dir.file("mtat/audio"))
        let set = try BenchmarkSet.loadAllSplits(.mtatTop50, data: [csv], audioRoot: dir.file("mtat/audio"))
        let truth = try #require(set.truth)
        #expect(truth.tags == test.truth?.tags, "the same 50 tags")
        // Folders 0, 3, b, a, 1 train; c valid; d, f, e test. Clip 10 has no top-50 tag, clip 11 no audio.
        let splits = Dictionary(uniqueKeysWithValues: truth.items.map { ($0.name ?? "", $0.split ?? "") })
        #expect(splits == ["1": "train", "2": "train", "3": "train", "4": "valid", "5": "test", "6": "test", "7": "test",
                           "8": "train", "9": "train"], "\(splits)")
        #expect(set.missing.map(\.item) == ["11"] && set.split.contains("valid c"))
        #expect(throws: MulanError.self) {
            try BenchmarkSet.loadAllSplits(.jamendoTop50, data: [csv], audioRoot: dir.file("mtat/audio"))
        }
    }

    @Test(arguments: [
        (Benchmark.jamendoGenre, ["genre---electronic", "genre---pop", "genre---rock"], ["track_0000001", "track_0000002", "track_0000005"], ["track_0000004"]),
        (.jamendoInstrument, ["instrument---guitar", "instrument---piano", "instrument---synthesizer"],
         ["track_0000001", "track_0000003", "track_0000005"], []),
        (.jamendoMoodTheme, ["mood/theme---film", "mood/theme---happy"], ["track_0000001", "track_0000002"], []),
        (.jamendoTop50, ["genre---electronic", "genre---pop", "genre---rock", "instrument---guitar", "instrument---piano",
                         "instrument---synthesizer", "mood/theme---film", "mood/theme---happy"],
         ["track_0000001", "track_0000002", "track_0000003", "track_0000005"], ["track_0000004"]),
    ])
    func jamendoPresetsKeepTheirCategory(benchmark: Benchmark, tags: [String], items: [String], missing: [String]) throws {
        let dir = TempDir()
        let tsv = try BenchmarkFixtures.jamendo(dir, audio: false)
        let set = try BenchmarkSet.load(benchmark, data: [tsv], audioRoot: dir.file("jamendo/audio"))
        let truth = try #require(set.truth)
        #expect(truth.tags == tags)
        #expect(truth.tags.map { truth.prompt($0, "music with {tag}") }
                == tags.map { "music with " + $0.components(separatedBy: "---")[1] })
        #expect(Self.names(set) == items)
        #expect(set.missing.map(\.item) == missing)
        #expect(set.split == "split-0 test")
        #expect(truth.items.first { $0.name == "track_0000005" }.map { $0.id.hasSuffix("05/5.low.mp3") } ?? true)
    }

    @Test func jamendoRefusesATrainFileAndMoreThanFiftyTags() throws {
        let dir = TempDir()
        _ = try BenchmarkFixtures.jamendo(dir, audio: false)
        #expect(throws: MulanError.self) {
            try BenchmarkSet.load(.jamendoGenre, data: [dir.file("jamendo/splits/split-0/autotagging_genre-train.tsv")],
                                  audioRoot: dir.file("jamendo/audio"))
        }
        let many = (0..<51).map { "genre---g\($0)" }.joined(separator: "\t")
        let tsv = try dir.write("many/autotagging_top50tags-test.tsv",
                                "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\r\ntrack_1\ta\tb\t01/1.mp3\t1.0\t\(many)\r\n")
        do {
            _ = try BenchmarkSet.load(.jamendoTop50, data: [tsv], audioRoot: dir.path)
            Issue.record("51 tags accepted as the top 50")
        } catch {
            #expect(error.message.contains("51 tags"), "\(error)")
        }
    }

    @Test func audioSetGen25IsTheMusicGenreChildrenAndMu141TheMusicClasses() throws {
        let dir = TempDir()
        let segments = try BenchmarkFixtures.audioSet(dir, audio: false)
        let classes = try BenchmarkFixtures.classLabels(dir)
        let gen = try BenchmarkSet.load(.audioSetGen25, data: [segments], audioRoot: dir.file("audioset/audio"),
                                        labels: [BenchmarkFixtures.ontology])
        let g = try #require(gen.truth)
        #expect(g.tags.count == 25)
        #expect(g.tags.prefix(3).map { g.words[$0] } == ["Pop music", "Hip hop music", "Rock music"])
        #expect(Self.names(gen) == ["aaaaaaaaaa1", "gggggggggg1"])
        #expect(gen.missing.map(\.item) == ["dddddddddd1"] && gen.missing.first?.line == 7)

        let mu = try BenchmarkSet.load(.audioSetMu141, data: [segments], audioRoot: dir.file("audioset/audio"),
                                       labels: [BenchmarkFixtures.ontology, classes])
        let m = try #require(mu.truth)
        #expect(m.tags.count == 141, "\(m.tags.count)")
        #expect(m.tags.contains("/m/04rlf") && m.tags.contains("/m/074ft") && m.tags.first == "/m/0l14jd" && m.tags.contains("/t/dd00031"))
        for role in ["/m/025td0t", "/m/04wptg", "/m/01z7dr"] { #expect(!m.tags.contains(role)) }
        for outside in ["/m/09x0r", "/m/015lz1", "/m/0b_fwt"] { #expect(!m.tags.contains(outside)) }
        #expect(Set(m.tags).isSuperset(of: g.tags))
        #expect(Self.names(mu) == ["aaaaaaaaaa1", "bbbbbbbbbb1", "fffffffffff", "gggggggggg1"])
        #expect(m.items.first { $0.name == "bbbbbbbbbb1" }?.tags == ["/m/04rlf"])
        #expect(mu.missing.map(\.item) == ["dddddddddd1"])
        #expect(throws: MulanError.self) {
            try BenchmarkSet.load(.audioSetMu141, data: [segments], audioRoot: dir.file("audioset/audio"),
                                  labels: [BenchmarkFixtures.ontology])
        }
    }

    @Test func retrievalPresetsTakeTheTestCaptions() throws {
        let dir = TempDir()
        let mc = try BenchmarkSet.load(.musicCaps, data: [try BenchmarkFixtures.musicCaps(dir, audio: false)],
                                       audioRoot: dir.file("musiccaps/audio"))
        let pairs = try #require(mc.captions?.pairs)
        #expect(pairs.map(\.caption) == ["A low sine tone, slow and calm.", "A \"bright\" high tone, fast.", "A middle tone; lo-fi."])
        #expect(mc.missing.map(\.item) == ["2aBcDeFgHiJ"])

        let sd = try BenchmarkSet.load(.songDescriber, data: [try BenchmarkFixtures.songDescriber(dir, audio: false)],
                                       audioRoot: dir.file("songdescriber/audio"))
        let captions = try #require(sd.captions?.pairs)
        #expect(captions.count == 6, "caption 5 once; track 4 missing")
        #expect(Set(captions.compactMap(\.path)).count == 3)
        #expect(captions.map(\.caption)[2] == "Deep hum, \"soft\".")
        #expect(sd.missing.map(\.item) == ["4"] && sd.itemsListed == 4)
    }

    /// Retrieval over tracks with several captions against a direct count.
    @Test func trackRetrievalRanksTracksNotCopies() {
        // 2-d unit vectors: tracks at angles 0, 60, 120 degrees; captions near their track, caption 3 nearer track 1.
        func v(_ degrees: Double) -> [Float] { [Float(cos(degrees * .pi / 180)), Float(sin(degrees * .pi / 180))] }
        let audio = [0.0, 60, 120].flatMap(v)
        let captionAngles = [5.0, -10, 65, 100, 57]   // tracks 0, 0, 1, 2, 2
        let captionTrack = [0, 0, 1, 2, 2]
        let r = ZeroShotEvaluation.trackRetrieval(captionTrack: captionTrack, text: captionAngles.flatMap(v), audio: audio,
                                                  tracks: 3, dim: 2)
        // text→audio ranks: 1, 1, 1, 1 (100° is nearer 120 than 60), 2 (57° nearer 60).
        #expect(r.pairs == 5 && r.tracks == 3)
        #expect(abs(r.textToAudio.recallAt1 - 4.0 / 5) < 1e-9 && r.textToAudio.medianRank == 1)
        // audio→text: track 0 best caption 5° (rank 1); track 1: 65° (rank 2: 57° of track 2 is nearer);
        // track 2: 100° (rank 1).
        #expect(abs(r.audioToText.recallAt1 - 2.0 / 3) < 1e-9 && r.audioToText.recallAt5 == 1)
    }
}

/// Every preset through `mulan-eval --benchmark` with a tiny trained model: exit 3 with the missing
/// item counted and listed, exit 0 once its audio is there; the report names the tags and items chosen.
@Suite("Benchmark presets: mulan-eval", .serialized)
struct BenchmarkPresetEndToEndTests {
    struct Case {
        var benchmark: Benchmark
        var data: String
        var root: String
        var labels: [String] = []
        /// The missing item and the file that makes it present.
        var missing: String
        var missingFile: String
        var items: [String]
        var tags: Int
    }

    @Test func everyPresetRunsEndToEnd() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 4)
        let run = h.dir.file("run")
        let trained = try TrainingEndToEndTests.train(dataset, run, ["--steps", "3", "--warmup-steps", "1", "--eval-every", "1000",
                                                                     "--checkpoint-every", "1000", "--threads", "1"])
        try #require(trained.status == 0, "\(trained.stderr)")
        let vocab = try TestPython.bertVocabulary()
        let dir = h.dir
        let mtat = try BenchmarkFixtures.mtat(dir, audio: true)
        let jamendo = try BenchmarkFixtures.jamendo(dir, audio: true)
        let segments = try BenchmarkFixtures.audioSet(dir, audio: true)
        let classes = try BenchmarkFixtures.classLabels(dir)
        let musicCaps = try BenchmarkFixtures.musicCaps(dir, audio: true)
        let songs = try BenchmarkFixtures.songDescriber(dir, audio: true)
        let jamendoItems = ["track_0000001", "track_0000002", "track_0000005"]
        let cases = [
            Case(benchmark: .mtatTop50, data: mtat, root: dir.file("mtat/audio"), missing: "11",
                 missingFile: "e/artist-album-11-song.mp3", items: ["5", "6", "7"], tags: 50),
            Case(benchmark: .jamendoGenre, data: jamendo, root: dir.file("jamendo/audio"), missing: "track_0000004",
                 missingFile: "04/4.mp3", items: jamendoItems, tags: 3),
            Case(benchmark: .jamendoInstrument, data: jamendo, root: dir.file("jamendo/audio"), missing: "",
                 missingFile: "", items: ["track_0000001", "track_0000003", "track_0000005"], tags: 3),
            Case(benchmark: .jamendoMoodTheme, data: jamendo, root: dir.file("jamendo/audio"), missing: "",
                 missingFile: "", items: ["track_0000001", "track_0000002"], tags: 2),
            Case(benchmark: .jamendoTop50, data: jamendo, root: dir.file("jamendo/audio"), missing: "",
                 missingFile: "", items: ["track_0000001", "track_0000002", "track_0000003", "track_0000004", "track_0000005"],
                 tags: 8),
            Case(benchmark: .audioSetGen25, data: segments, root: dir.file("audioset/audio"), labels: [BenchmarkFixtures.ontology],
                 missing: "dddddddddd1", missingFile: "dddddddddd1.wav", items: ["aaaaaaaaaa1", "gggggggggg1"], tags: 25),
            Case(benchmark: .audioSetMu141, data: segments, root: dir.file("audioset/audio"),
                 labels: [BenchmarkFixtures.ontology, classes], missing: "", missingFile: "",
                 items: ["aaaaaaaaaa1", "bbbbbbbbbb1", "dddddddddd1", "fffffffffff", "gggggggggg1"], tags: 141),
            Case(benchmark: .musicCaps, data: musicCaps, root: dir.file("musiccaps/audio"), missing: "2aBcDeFgHiJ",
                 missingFile: "2aBcDeFgHiJ.wav", items: [], tags: 0),
            Case(benchmark: .songDescriber, data: songs, root: dir.file("songdescriber/audio"), missing: "4",
                 missingFile: "04/4.2min.mp3", items: [], tags: 0),
        ]
        let report = dir.file("eval.json")
        for c in cases {
            var arguments = ["--run-dir", run, "--vocab", vocab, "--benchmark", c.benchmark.rawValue, "--data", c.data,
                             "--audio-root", c.root, "--json", report, "--quiet", "--threads", "2", "--prompt", "music with {tag}"]
            for l in c.labels { arguments += ["--labels", l] }
            let missing = try TestProcess.run(TestPaths.executable("mulan-eval"), arguments)
            if !c.missing.isEmpty {
                #expect(missing.status == 3, "\(c.benchmark): \(missing.stderr)")
                let r = EmbedSearchEvalTests.json(try Data(contentsOf: URL(fileURLWithPath: report)))
                let b = r["benchmark"] as? [String: Any] ?? [:]
                #expect(b["missing_audio"] as? Int == 1, "\(c.benchmark): \(b)")
                #expect((b["missing"] as? [[String: Any]])?.first?["item"] as? String == c.missing)
                #expect(missing.stdoutText.contains("1 of ") && missing.stdoutText.contains(c.missing), "\(missing.stdoutText)")
                try BenchmarkFixtures.tone((c.root as NSString).appendingPathComponent(c.missingFile), 7)
            }
            let done = try TestProcess.run(TestPaths.executable("mulan-eval"), arguments)
            #expect(done.status == 0, "\(c.benchmark): \(done.stderr)")
            let first = done.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.hasPrefix(c.benchmark.title + " ("), "\(first)")
            let r = EmbedSearchEvalTests.json(try Data(contentsOf: URL(fileURLWithPath: report)))
            let b = r["benchmark"] as? [String: Any] ?? [:]
            #expect(b["name"] as? String == c.benchmark.rawValue && b["missing_audio"] as? Int == 0, "\(b)")
            #expect((r["ground_truth"] as? String)?.hasPrefix("--benchmark \(c.benchmark.rawValue): /") == true, "\(r["ground_truth"] ?? "")")
            if c.benchmark.isRetrieval {
                #expect(first.contains("text→music: R@1 ") && first.contains("median rank"), "\(first)")
                let q = r["retrieval"] as? [String: Any] ?? [:]
                #expect(q["tracks"] as? Int == 4, "\(c.benchmark): \(q)")
                #expect(q["pairs"] as? Int == (c.benchmark == .musicCaps ? 4 : 8), "\(c.benchmark): \(q)")
            } else {
                #expect(first.contains("ROC-AUC 0.") || first.contains("ROC-AUC 1."), "\(first)")
                #expect(first.contains("PR-AUC (mAP)"), "\(first)")
                let expectedItems = c.missing.isEmpty ? c.items : (c.items + [c.missing]).sorted { a, b in
                    (Int(a) ?? 0, a) < (Int(b) ?? 0, b)
                }
                #expect((b["items"] as? [String])?.sorted() == expectedItems.sorted(), "\(c.benchmark): \(b["items"] ?? "")")
                let tags = b["tags"] as? [[String: Any]] ?? []
                #expect(tags.count == c.tags, "\(c.benchmark)")
                let perTag = (r["tagging"] as? [String: Any])?["per_tag"] as? [[String: Any]] ?? []
                #expect(perTag.first?["prompt"] as? String == "music with " + (tags.first?["words"] as? String ?? "?"))
            }
        }
        // Without the ontology, or with --csv as well: usage errors.
        let bad = try TestProcess.run(TestPaths.executable("mulan-eval"), [
            "--run-dir", run, "--vocab", vocab, "--benchmark", "audioset-gen25", "--data", segments,
            "--audio-root", dir.file("audioset/audio"), "--quiet"])
        #expect(bad.status == 64 && bad.stderr.contains("ontology"), "\(bad.stderr)")
        let both = try TestProcess.run(TestPaths.executable("mulan-eval"), [
            "--run-dir", run, "--benchmark", "mtat-top50", "--data", mtat, "--csv", mtat, "--audio-root", dir.path, "--quiet"])
        #expect(both.status == 64, "\(both.stderr)")
    }
}
