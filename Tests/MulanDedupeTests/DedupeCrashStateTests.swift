import Foundation
import MulanTestSupport
import Testing

/// Power-loss crash states of `mulan-dedupe` (Tests/MulanTestSupport/CrashStates.swift).
@Suite("mulan-dedupe crash states", .serialized)
struct DedupeCrashStateTests {
    @Test func powerLossStates() throws {
        let h = IngestHarness()
        // Four distinct tones, an exact copy of one and a re-encoded copy of another.
        var csv = "track_id,path\n"
        for i in 0..<4 {
            try TestMedia.tone(h.dir.file("a/t\(i).ogg"), seconds: 31, frequency: 220 + Double(i) * 97, seed: i + 1)
            csv += "t\(i),a/t\(i).ogg\n"
        }
        try FileManager.default.copyItem(atPath: h.dir.file("a/t0.ogg"), toPath: h.dir.file("a/copy.ogg"))
        try TestProcess.ffmpeg(["-i", h.dir.file("a/t1.ogg"), "-c:a", "flac", h.dir.file("a/t1.flac")])
        csv += "copy,a/copy.ogg\nreencoded,a/t1.flac\n"
        try h.dir.write("m.csv", csv)
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        let initial = h.dir.file("initial")
        try FileManager.default.createDirectory(atPath: initial, withIntermediateDirectories: true)
        #expect(try TestProcess.run("cp", ["-a", h.workdir, initial + "/work"]).status == 0)
        let stage = CrashStates.Stage(name: "dedupe", initial: initial, command: { root in
            (DedupeEndToEndTests.dedupeBinary, ["--workdir", root + "/work", "--quiet", "--report", root + "/dedupe.json"], root)
        }, check: { root, _ in
            try CrashChecks.catalog(root + "/work", staged: false) + CrashJudge.jsonFilesParse(root)
        }, result: { root in
            ["pairs": try CrashChecks.rows(root + "/work", "SELECT track_a, track_b, kind FROM dup_pairs"),
             "members": try CrashChecks.rows(root + "/work", """
                SELECT m.track_id, g.group_key, m.decision, COALESCE(m.merged_into, ''), m.reason
                FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
                """)]
        })
        let started = Date()
        for problem in CrashJudge.problems("dedupe", try CrashStates.run(stage, scratch: h.dir.file("crash")), started: started) {
            Issue.record("\(problem)")
        }
    }
}
