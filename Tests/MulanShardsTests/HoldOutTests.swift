import Foundation
import MulanTestSupport
import Testing

/// No leakage between corpora (issue 17): Song Describer's audio is MTG-Jamendo's, so a Jamendo
/// training set must not hold its tracks. `mulan-shard --hold-out` keeps the benchmark's test tracks,
/// and every track mulan-dedupe put in a group with one of them, out of train.
@Suite("Benchmark hold-out", .serialized)
struct HoldOutTests {
    @Test func songDescriberTracksAndTheirDuplicatesStayOutOfJamendoTrain() throws {
        let h = IngestHarness()
        // Five Jamendo tracks; track_0009999 is a byte-for-byte copy of track_0001031 (re-uploaded).
        let ids = [1030, 1031, 1032, 1033]
        for (k, id) in ids.enumerated() {
            try FileManager.default.createDirectory(atPath: h.dir.file("jamendo/\(id % 100)"), withIntermediateDirectories: true)
            try TestMedia.tone(h.dir.file("jamendo/\(id % 100)/\(id).mp3"), seconds: 10, frequency: 220 * Double(k + 2))
        }
        try FileManager.default.createDirectory(atPath: h.dir.file("jamendo/99"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: h.dir.file("jamendo/31/1031.mp3"), toPath: h.dir.file("jamendo/99/9999.mp3"))
        let genres = ["rock", "jazz", "ambient", "folk", "jazz"]
        let rows = (ids + [9999]).enumerated().map { k, id in
            "track_\(String(format: "%07d", id))\tartist_000001\talbum_000001\t\(id % 100)/\(id).mp3\t10.0\tgenre---\(genres[k])\tinstrument---piano"
        }
        try h.dir.write("train.tsv", (["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"] + rows).joined(separator: "\r\n") + "\r\n")
        let manifest = try TestProcess.run(IngestHarness.binary, ["manifest", "--quiet", "--format", "jamendo", "train.tsv",
                                                                   "--audio-root", "jamendo", "--out", "m.csv"], cwd: h.dir.path)
        #expect(manifest.status == 0, "\(manifest.stderr)")
        #expect(try h.ingest(["--manifest", "m.csv", "--preset", "musiccaps"]).status == 0)
        let text = try h.ingest(["text", "--format", "jamendo", "train.tsv"])
        #expect(text.status == 0, "\(text.stderr)")
        let dedupe = try TestProcess.run(TestPaths.executable("mulan-dedupe"), ["--workdir", h.workdir, "--quiet"], cwd: h.dir.path)
        #expect(dedupe.status == 0, "\(dedupe.stderr)")
        let vocab = try TestPython.bertVocabulary()
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", TestPaths.packageRoot + "/manifests/filters.toml"]).status == 0)

        // The benchmark: Song Describer's csv (two tracks), its manifest in Jamendo's ids.
        try h.dir.write("song_describer.csv", """
            caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,duration
            1,1030,A calm piece.,True,0,1,1,30/1030.2min.mp3,120.0
            2,1031,A loud piece.,True,0,1,1,31/1031.2min.mp3,120.0
            3,1031,Loud drums.,True,0,1,1,31/1031.2min.mp3,120.0

            """)
        for p in ["sdd/30/1030.2min.mp3", "sdd/31/1031.2min.mp3"] { try h.dir.write(p, "") }
        let sdd = try TestProcess.run(IngestHarness.binary, ["manifest", "--quiet", "--format", "song-describer", "song_describer.csv",
                                                              "--audio-root", "sdd", "--out", "sdd.csv", "--jamendo-ids"], cwd: h.dir.path)
        #expect(sdd.status == 0, "\(sdd.stderr)")
        #expect(try String(contentsOfFile: h.dir.file("sdd.csv"), encoding: .utf8).contains("track_0001031,"))

        let all = try h.shard(["--split", "train=1.0", "--samples-per-shard", "2", "--out", h.dir.file("all")])
        #expect(all.status == 0, "\(all.stderr)")
        let held = try h.shard(["--split", "train=1.0", "--samples-per-shard", "2", "--out", h.dir.file("held"),
                                "--hold-out", h.dir.file("sdd.csv")])
        #expect(held.status == 0, "\(held.stderr)")
        #expect(held.stdoutText.contains("kept out of train (--hold-out): 3 tracks, 3 clips (of 2 listed)"), "\(held.stdoutText)")
        let before = try h.report(h.dir.file("all/dataset.json"))
        let after = try h.report(h.dir.file("held/dataset.json"))
        #expect((before["splits"] as? [String: [String: Any]])?["train"]?["samples"] as? Int == 5)
        #expect((after["splits"] as? [String: [String: Any]])?["train"]?["samples"] as? Int == 2)
        let summary = after["held_out"] as? [String: Any] ?? [:]
        #expect(summary["tracks"] as? [String] == ["track_0001030", "track_0001031", "track_0009999"])
        #expect(summary["tracks_listed"] as? Int == 2 && summary["clips_kept_out_of_train"] as? Int == 3)
        #expect(before["held_out"] == nil && before["dataset_id"] as? String != after["dataset_id"] as? String)
        let manifestJSON = String(decoding: try JSONSerialization.data(withJSONObject: after), as: UTF8.self)   // one line
        #expect(try SchemaValidator.validate([manifestJSON], schema: "dataset.schema.json") == [nil])
        // The train shards hold neither the listed tracks nor the duplicate.
        let keys = IngestHarness.files(below: h.dir.file("held/train")).filter { $0.hasSuffix(".tar") }.flatMap { tar in
            (try? TestProcess.run("tar", ["-tf", h.dir.file("held/train/" + tar)]).stdoutText.split(separator: "\n").map(String.init)) ?? []
        }
        #expect(keys.count == 4 && !keys.contains { $0.contains("1030") || $0.contains("1031") || $0.contains("9999") }, "\(keys)")
        // The benchmark's own file, read with its split (no audio needed): the same tracks kept out.
        let direct = try h.shard(["--split", "train=1.0", "--samples-per-shard", "2", "--out", h.dir.file("direct"),
                                  "--hold-out", "song-describer:song_describer.csv"])
        #expect(direct.status == 0, "\(direct.stderr)")
        let viaCSV = try h.report(h.dir.file("direct/dataset.json"))["held_out"] as? [String: Any] ?? [:]
        #expect(viaCSV["tracks"] as? [String] == ["track_0001030", "track_0001031", "track_0009999"])
        #expect(viaCSV["tracks_listed"] as? Int == 4)   // 1030, 1031 and their Jamendo ids
        // A hold-out list without a track_id column is refused, saying what to pass.
        try h.dir.write("bad.csv", "id,split\n1030,test\n")
        let bad = try h.shard(["--split", "train=1.0", "--out", h.dir.file("bad"), "--hold-out", h.dir.file("bad.csv")])
        #expect(bad.status == 64 && bad.stderr.contains("no track_id column"), "\(bad.stderr)")
    }
}
