import Foundation
import MulanTestSupport
import MulanTraining
import Testing

/// `scripts/demo-probe-files.py`: the demo's probe tags and text triplets from a ground truth.
@Suite("demo probe files")
struct DemoProbeFilesTests {
    /// The attributes a demo caption states: "a loud fast brass section piece in a minor key with drums".
    static func attributes(_ caption: String) -> [String: String]? {
        let halves = caption.components(separatedBy: " piece in a ")
        guard halves.count == 2 else { return nil }
        let left = halves[0].split(separator: " ").map(String.init), right = halves[1].split(separator: " ").map(String.init)
        guard left.count >= 4, left[0] == "a", right.count == 4, right[1] == "key", right[3] == "drums" else { return nil }
        return ["loudness": left[1], "tempo": left[2], "family": left[3...].joined(separator: " "), "mode": right[0],
                "drums": right[2]]
    }

    @Test func probeTagsAndTripletsFollowTheGroundTruth() throws {
        let dir = TempDir("mulan-demo-probe")
        try dir.write("corpus/ground-truth.csv", """
            track_id,path,split,family,program,tempo_bpm,tempo,mode,key,drums,loudness
            trk-0001,audio/trk-0001.mp3,valid,bass,34,108,medium,minor,B minor,yes,loud
            trk-0002,audio/trk-0002.ogg,train,brass,61,78,slow,major,C major,no,quiet
            trk-0003,audio/trk-0003.flac,test,piano,0,140,fast,minor,D minor,no,loud

            """)
        func run(_ out: String) throws -> ProcessResult {
            try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/demo-probe-files.py", dir.file("corpus"), out,
                                            "--triplets-per-attribute", "12"])
        }
        let r = try run(dir.file("a"))
        try #require(r.status == 0, "\(r.stderr)")
        let csv = try String(contentsOfFile: dir.file("a/probe-tags.csv"), encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        }
        let header = csv[0]
        #expect(header.first == "clip_id" && header.suffix(2) == ["mp3_path", "split"] && header.count == 15 + 3, "\(header)")
        func row(_ id: String) -> [String: String] {
            let values = csv.first { $0.first == id } ?? []
            return Dictionary(uniqueKeysWithValues: zip(header, values))
        }
        let bass = row("trk-0001"), brass = row("trk-0002")
        #expect(bass["bass"] == "1" && bass["piano"] == "0" && bass["minor"] == "1" && bass["major"] == "0"
                && bass["slow"] == "0" && bass["fast"] == "0" && bass["drums"] == "1" && bass["loud"] == "1" && bass["split"] == "valid")
        #expect(brass["brass"] == "1" && brass["slow"] == "1" && brass["major"] == "1" && brass["drums"] == "0"
                && brass["quiet"] == "1" && brass["mp3_path"] == "audio/trk-0002.ogg" && brass["split"] == "train")

        // The tags CSV is one mulan-eval reads, with its splits.
        let truth = try TagGroundTruth.magnaTagATune(csv: dir.file("a/probe-tags.csv"), audioRoot: dir.file("corpus"))
        #expect(truth.items.map(\.split) == ["valid", "train", "test"] && truth.tags.count == 15)

        let triplets = try TextTriplets(path: dir.file("a/triplets.jsonl"))
        #expect(triplets.triplets.count == 5 * 12)
        let anchors = Set(["a loud medium-tempo bass guitar piece in a minor key with drums",
                           "a quiet slow brass section piece in a major key without drums",
                           "a loud fast piano piece in a minor key without drums"])
        for t in triplets.triplets {
            let attribute = try #require(t.attribute)
            #expect(anchors.contains(t.anchor), "\(t.anchor)")
            let a = try #require(Self.attributes(t.anchor)), p = try #require(Self.attributes(t.positive), "\(t.positive)")
            let n = try #require(Self.attributes(t.negative), "\(t.negative)")
            #expect(p[attribute] == a[attribute] && n[attribute] != a[attribute], "line \(t.line)")
            #expect(p.filter { $0.key != attribute } == n.filter { $0.key != attribute }, "line \(t.line): only \(attribute) differs")
            #expect(t.positive != t.anchor)
        }
        #expect(Set(triplets.triplets.compactMap(\.attribute)) == ["family", "tempo", "mode", "loudness", "drums"])
        // Deterministic: a second run writes the same bytes.
        try #require(try run(dir.file("b")).status == 0)
        for name in ["probe-tags.csv", "triplets.jsonl"] {
            #expect(FileManager.default.contentsEqual(atPath: dir.file("a/" + name), andPath: dir.file("b/" + name)), "\(name)")
        }
        // No ground truth: a clear error.
        let missing = try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/demo-probe-files.py", dir.file("none"),
                                                      dir.file("c")])
        #expect(missing.status != 0 && missing.stderr.contains("ground-truth.csv"), "\(missing.stderr)")
    }
}
