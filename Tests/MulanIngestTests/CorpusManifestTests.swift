import Foundation
@testable import MulanCatalog
import MulanTestSupport
import Testing

/// `mulan-ingest manifest`: audio manifests from the corpora's own metadata files, in their published
/// layouts (MTAT's quoted TSV with CRLF, MusicCaps' CSV, AudioSet's commented segment CSVs,
/// MTG-Jamendo's ragged split TSVs with CRLF, Song Describer's several captions per track), with the
/// official splits and a coverage report that lists every missing file.
@Suite("Corpus manifests")
struct CorpusManifestTests {
    static func run(_ h: IngestHarness, _ arguments: [String]) throws -> ProcessResult {
        try TestProcess.run(IngestHarness.binary, ["manifest", "--quiet"] + arguments, cwd: h.dir.path,
                            environment: ["MULAN_PROGRESS_INTERVAL": "0"])
    }

    /// The manifest's rows after the header, as [track_id, path relative to the audio root, start, end, split].
    static func rows(_ h: IngestHarness, _ name: String = "m.csv") throws -> [[String]] {
        let text = try String(contentsOfFile: h.dir.file(name), encoding: .utf8)
        let root = h.dir.file("audio") + "/"
        return text.split(separator: "\n").dropFirst().map { line in
            line.split(separator: ",", omittingEmptySubsequences: false).map { String($0).replacingOccurrences(of: root, with: "") }
        }
    }

    static func problems(_ h: IngestHarness, _ name: String = "m.problems.csv") throws -> [[String]] {
        try String(contentsOfFile: h.dir.file(name), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    static func touch(_ h: IngestHarness, _ paths: [String]) throws {
        for p in paths { try h.dir.write("audio/" + p, "") }
    }

    @Test func mtatFolderSplitTop50SubsetAndCoverage() throws {
        let h = IngestHarness()
        // 52 tags: t00…t49 on the clips 1–9 whose number has bit (k % 4) set (2 to 5 clips each), t50
        // and t51 on clips 9 and 10 only (2 each, after t03…t47 by name): clip 10, with only those two,
        // is outside the top 50.
        let tags = (0..<52).map { String(format: "t%02d", $0) }
        var lines = ["\"clip_id\"\t" + tags.map { "\"\($0)\"" }.joined(separator: "\t") + "\t\"mp3_path\""]
        let folders = ["0", "3", "b", "c", "d", "f", "e", "a", "1", "2"]
        for clip in 1...10 {
            let values = tags.indices.map { k -> String in
                if clip == 10 { return k >= 50 ? "1" : "0" }
                return k < 50 ? (clip >> (k % 4) & 1 == 1 ? "1" : "0") : (clip == 9 ? "1" : "0")
            }
            let path = "\(folders[clip - 1])/artist-album-\(clip)-song.mp3"
            lines.append("\"\(clip)\"\t" + values.map { "\"\($0)\"" }.joined(separator: "\t") + "\t\"\(path)\"")
        }
        lines.append("\"11\"\t" + tags.map { _ in "\"0\"" }.joined(separator: "\t") + "\t\"\"")   // no mp3_path
        try h.dir.write("annotations_final.csv", lines.joined(separator: "\r\n") + "\r\n")
        // Every clip's file but clip 5's (folder d: test) is there.
        try Self.touch(h, (1...10).filter { $0 != 5 }.map { "\(folders[$0 - 1])/artist-album-\($0)-song.mp3" })

        let r = try Self.run(h, ["--format", "mtat", "annotations_final.csv", "--audio-root", "audio", "--out", "m.csv",
                                 "--subset", "top50", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        let rows = try Self.rows(h)
        #expect(rows.map { $0[0] } == ["1", "2", "3", "4", "6", "7", "8", "9"])
        #expect(Dictionary(uniqueKeysWithValues: rows.map { ($0[0], $0[4]) })
                == ["1": "train", "2": "train", "3": "train", "4": "valid", "6": "test", "7": "test", "8": "train", "9": "train"])
        #expect(rows.allSatisfy { $0[1].hasSuffix("-song.mp3") && $0[2].isEmpty && $0[3].isEmpty })
        let problems = try Self.problems(h)
        #expect(problems.map { [$0[0], $0[1], $0[2]] } == [["5", "test", "audio-missing"], ["11", "", "invalid-row"]])
        #expect(problems[1][5] == "12")  // file line of the row (header is line 1)
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["rows"] as? Int == 11 && report["tracks"] as? Int == 9 && report["written"] as? Int == 8)
        #expect(report["excluded"] as? Int == 1 && report["audio_missing"] as? Int == 1 && report["rejected"] as? Int == 1)
        let subset = report["subset_tags"] as? [String] ?? []
        #expect(subset.count == 50 && !subset.contains("t50") && !subset.contains("t51"))
        let bySplit = report["by_split"] as? [String: [String: Int]] ?? [:]
        #expect(bySplit["test"] == ["tracks": 3, "found": 2, "missing": 1])
        #expect(bySplit["train"] == ["tracks": 5, "found": 5, "missing": 0] && bySplit["valid"]?["found"] == 1)
        #expect(r.stdoutText.contains("test: 2 of 3 tracks have audio"), "\(r.stdoutText)")
        // Without the subset, clip 10 is in (folder 2: train).
        let all = try Self.run(h, ["--format", "mtat", "annotations_final.csv", "--audio-root", "audio", "--out", "all.csv"])
        #expect(all.status == 3)
        #expect(try Self.rows(h, "all.csv").map { $0[0] }.contains("10"))
    }

    @Test func musicCapsEvalSplitNamesAndSegments() throws {
        let h = IngestHarness()
        let header = "ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval"
        let rows = [
            "-0Gj8-vB1q4,30,40,\"/m/0140xf,/m/02cjck\",\"['low quality', 'sustained strings']\",\"A slow, sad melody.\",4,False,True",
            "-0SdAVK79lg,30,40,/m/0155w,\"['guitar']\",\"Fast, \"\"loud\"\" rock.\",0,False,False",
            "-0vPFx-wRRI,30,40,/m/025_jnm,\"['pop']\",A pop song.,6,False,False",
            "-0xzrMun0Rs,30,40,/m/025_jnm,\"['pop']\",Never downloaded.,6,True,True",
            "broken,40,30,/m/025_jnm,\"['pop']\",end before start,6,True,True",
        ]
        try h.dir.write("musiccaps-public.csv", ([header] + rows).joined(separator: "\n") + "\n")
        try Self.touch(h, ["clips/-0Gj8-vB1q4.wav", "clips/sub/Y-0SdAVK79lg.flac", "-0vPFx-wRRI_30-40.mp3"])
        let r = try Self.run(h, ["--format", "musiccaps", "musiccaps-public.csv", "--audio-root", "audio", "--out", "m.csv",
                                 "--segments-in-file"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try Self.rows(h) == [
            ["-0Gj8-vB1q4", "clips/-0Gj8-vB1q4.wav", "30", "40", "test"],
            ["-0SdAVK79lg", "clips/sub/Y-0SdAVK79lg.flac", "30", "40", "train"],
            ["-0vPFx-wRRI", "-0vPFx-wRRI_30-40.mp3", "30", "40", "train"],
        ])
        #expect(try Self.problems(h).map { $0[2] } == ["audio-missing", "invalid-row"])
        // Cut segments (the default): no start/end in the manifest.
        let cut = try Self.run(h, ["--format", "musiccaps", "musiccaps-public.csv", "--audio-root", "audio", "--out", "cut.csv"])
        #expect(cut.status == 3)
        #expect(try Self.rows(h, "cut.csv").allSatisfy { $0[2].isEmpty && $0[3].isEmpty })
    }

    @Test func audioSetSegmentFilesGiveTheSplit() throws {
        let h = IngestHarness()
        let comments = "# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=2, num_segs=2, num_unique_labels=2, num_positive_labels=2\n# YTID, start_seconds, end_seconds, positive_labels\n"
        try h.dir.write("eval_segments.csv", comments + "--4gqARaEJE, 0.000, 10.000, \"/m/068hy,/m/07q6cd_\"\n--BfvyPmVMo, 20.000, 30.000, \"/m/03l9g\"\n")
        try h.dir.write("balanced_train_segments.csv", comments + "--aE2O5G5WE, 0.000, 10.000, \"/m/03fwl\"\nnot a row\n")
        try Self.touch(h, ["eval/--4gqARaEJE_0.wav", "train/--aE2O5G5WE_0.wav"])
        let r = try Self.run(h, ["--format", "audioset", "eval_segments.csv", "balanced_train_segments.csv", "--audio-root", "audio",
                                 "--out", "m.csv", "--audio-name", "{ytid}_{start}", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try Self.rows(h).map { [$0[0], $0[4]] } == [["--4gqARaEJE", "test"], ["--aE2O5G5WE", "train"]])
        #expect(try Self.problems(h).map { [$0[0], $0[1], $0[2]] }
                == [["--BfvyPmVMo", "test", "audio-missing"], ["not a row", "", "invalid-row"]])
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["rows"] as? Int == 4 && report["written"] as? Int == 2)
    }

    @Test func jamendoSplitTSVsWithCRLFRaggedRowsAndLowQualityFiles() throws {
        let h = IngestHarness()
        let header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
        func tsv(_ rows: [String]) -> String { ([header] + rows).joined(separator: "\r\n") + "\r\n" }
        try h.dir.write("splits/split-0/train.tsv", tsv([
            "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock",
            "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t167.0\tgenre---metal\tgenre---punkrock\tinstrument---guitar",
        ]))
        try h.dir.write("splits/split-0/validation.tsv", tsv(["track_0000216\tartist_000014\talbum_000031\t16/216.mp3\t20.0\tmood/theme---happy"]))
        try h.dir.write("splits/split-0/test.tsv", tsv([
            "track_0000217\tartist_000015\talbum_000032\t17/217.mp3\t212.1\tgenre---pop",
            "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock",   // also in train
            "track_0000218",
        ]))
        try Self.touch(h, ["14/214.mp3", "15/215.low.mp3", "16/216.mp3"])
        let files = ["train.tsv", "validation.tsv", "test.tsv"].map { "splits/split-0/" + $0 }
        let r = try Self.run(h, ["--format", "jamendo"] + files + ["--audio-root", "audio", "--out", "m.csv", "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try Self.rows(h) == [
            ["track_0000214", "14/214.mp3", "", "", "train"],
            ["track_0000215", "15/215.low.mp3", "", "", "train"],
            ["track_0000216", "16/216.mp3", "", "", "valid"],
        ])
        #expect(try Self.problems(h).map { [$0[0], $0[1], $0[2]] } == [
            ["track_0000217", "test", "audio-missing"], ["track_0000214", "test", "duplicate-track-id"],
            ["track_0000218", "", "invalid-row"],
        ])
        let report = try h.report(h.dir.file("r.json"))
        #expect((report["by_split"] as? [String: [String: Int]])?["test"] == ["tracks": 1, "found": 0, "missing": 1])
    }

    @Test func songDescriberOneRowPerTrack() throws {
        let h = IngestHarness()
        try h.dir.write("song_describer.csv", """
            caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,duration
            1,1030,"A calm piano piece, slow.",True,0,100,200,30/1030.2min.mp3,120.0
            2,1030,Soft solo piano.,True,1,100,200,30/1030.2min.mp3,120.0
            3,1031,Upbeat electronic track.,False,0,101,201,31/1031.2min.mp3,120.0

            """)
        try Self.touch(h, ["30/1030.2min.mp3", "31/1031.2min.mp3"])
        let r = try Self.run(h, ["--format", "song-describer", "song_describer.csv", "--audio-root", "audio", "--out", "m.csv",
                                 "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.rows(h) == [["1030", "30/1030.2min.mp3", "", "", "test"], ["1031", "31/1031.2min.mp3", "", "", "test"]])
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["merged_rows"] as? Int == 1 && report["tracks"] as? Int == 2)
        #expect(try Self.problems(h).isEmpty)
    }

    @Test func fmaTracksCSVSplitsSubsetsAndPaths() throws {
        let h = IngestHarness()
        // tracks.csv as published: the group row, the field row, the index-name line; quoted lists.
        try h.dir.write("tracks.csv", """
            ,album,set,set,track,track,track,track
            ,title,split,subset,genre_top,genres_all,tags,title
            track_id,,,,,,,
            2,AWOL,training,small,Hip-Hop,[21],[],Food
            5,AWOL,validation,medium,Hip-Hop,[21],[],This World
            140,"Constant, Hitmaker",test,small,Folk,[17],"['folk', 'acoustic']",Queen Of The Wires
            141,Side B,test,large,Folk,[17],[],Ohio
            x,Bad,training,small,Rock,[12],[],Broken

            """)
        try Self.touch(h, ["000/000002.mp3", "000/000005.mp3", "000/000141.mp3"])
        let r = try Self.run(h, ["--format", "fma", "tracks.csv", "--audio-root", "audio", "--out", "m.csv", "--subset", "medium",
                                 "--report", "r.json"])
        #expect(r.status == 3, "\(r.stderr)")
        #expect(try Self.rows(h) == [["2", "000/000002.mp3", "", "", "train"], ["5", "000/000005.mp3", "", "", "valid"]])
        #expect(try Self.problems(h).map { [$0[0], $0[1], $0[2]] } == [["140", "test", "audio-missing"], ["x", "", "invalid-row"]])
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["rows"] as? Int == 5 && report["excluded"] as? Int == 1 && report["tracks"] as? Int == 3)
        // The whole set (no subset): track 141 (large) is in, in test.
        let all = try Self.run(h, ["--format", "fma", "tracks.csv", "--audio-root", "audio", "--out", "all.csv"])
        #expect(all.status == 3)
        #expect(try Self.rows(h, "all.csv").contains(["141", "000/000141.mp3", "", "", "test"]))
    }

    @Test func noAudioAtAllIsAnErrorAndLeavesNoFile() throws {
        let h = IngestHarness()
        try h.dir.write("musiccaps-public.csv", "ytid,start_s,end_s,is_audioset_eval\nabc,0,10,False\n")
        try FileManager.default.createDirectory(atPath: h.dir.file("audio"), withIntermediateDirectories: true)
        let r = try Self.run(h, ["--format", "musiccaps", "musiccaps-public.csv", "--audio-root", "audio", "--out", "m.csv"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("none of the 1 tracks") && r.stderr.contains("--audio-name"), "\(r.stderr)")
        #expect(IngestHarness.files(below: h.dir.path).filter { $0.hasPrefix("m.") }.isEmpty)
        let usage = try Self.run(h, ["--format", "jamendo", "musiccaps-public.csv", "--audio-root", "audio", "--out", "m.csv",
                                     "--subset", "top50"])
        #expect(usage.status == 64, "\(usage.stderr)")
    }

    /// The manifest's track ids are the ones the text reader gives the same corpus: MusicCaps end to
    /// end, manifest → ingest with --preset musiccaps → text, every caption matched to a clip's track.
    @Test func musicCapsManifestIngestsAndItsTextsMatch() throws {
        let h = IngestHarness()
        try h.dir.write("musiccaps-public.csv", """
            ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,is_audioset_eval
            aaa,0,10,/m/04rlf,"['piano', 'calm']",A calm piano.,1,False,True
            bbb,30,40,/m/04rlf,"['rock']",Loud rock.,2,False,False
            ccc,0,10,/m/04rlf,"['jazz']",Never downloaded.,2,False,False

            """)
        try FileManager.default.createDirectory(atPath: h.dir.file("audio"), withIntermediateDirectories: true)
        try TestMedia.tone(h.dir.file("audio/aaa.flac"), seconds: 10, frequency: 330)
        try TestMedia.tone(h.dir.file("audio/bbb.flac"), seconds: 9.7, frequency: 440)
        let m = try Self.run(h, ["--format", "musiccaps", "musiccaps-public.csv", "--audio-root", "audio", "--out", "m.csv"])
        #expect(m.status == 3, "\(m.stderr)")
        let ingest = try h.ingest(["--manifest", "m.csv", "--preset", "musiccaps", "--report", "ingest.json"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        #expect(try h.report(h.dir.file("ingest.json"))["clips_written"] as? Int == 2)
        let ontology = TestPaths.packageRoot + "/manifests/audioset-music-ontology.json"
        let text = try h.ingest(["text", "--format", "musiccaps", "--labels", ontology, "musiccaps-public.csv", "--report", "text.json"])
        #expect(text.status == 0 || text.status == 3, "\(text.stderr)")
        let splits = try h.catalog().database.rows("SELECT track_id, split FROM tracks ORDER BY track_id")
            .map { [$0[0].string ?? "", $0[1].string ?? ""] }
        #expect(splits == [["aaa", "test"], ["bbb", "train"]])
        let matched = try h.catalog().database.rows(
            "SELECT COUNT(DISTINCT track_id) FROM raw_texts WHERE track_id IN (SELECT track_id FROM tracks)")[0][0].int
        #expect(matched == 2)
    }
}
