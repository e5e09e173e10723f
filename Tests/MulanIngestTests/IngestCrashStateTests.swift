import Foundation
import MulanTestSupport
import Testing

/// Power-loss crash states of `mulan-ingest` (audio) and `mulan-ingest text`
/// (Tests/MulanTestSupport/CrashStates.swift).
@Suite("mulan-ingest crash states", .serialized)
struct IngestCrashStateTests {
    static func judge(_ stage: String, _ outcomes: [CrashStates.Outcome], started: Date) {
        for problem in CrashJudge.problems(stage, outcomes, started: started) { Issue.record("\(problem)") }
    }

    static func audioStage(_ initial: String, environment: [String: String] = [:]) -> CrashStates.Stage {
        CrashStates.Stage(name: "ingest", initial: initial, environment: environment, command: { root in
            (IngestHarness.binary, ["--workdir", root + "/work", "--quiet", "--manifest", root + "/m.csv", "--jobs", "2"], root)
        }, check: { root, rerun in
            var v = try CrashChecks.catalog(root + "/work", staged: !rerun)
            if rerun, FileManager.default.fileExists(atPath: root + "/work/staging"),
               !((try? FileManager.default.contentsOfDirectory(atPath: root + "/work/staging")) ?? []).isEmpty {
                v.append("staging/ is not empty after the re-run")
            }
            return v
        }, result: { root in
            var out = CrashChecks.files(root + "/work/clips").reduce(into: [String: Data]()) { $0["clips/" + $1.key] = $1.value }
            out["tracks"] = try CrashChecks.rows(root + "/work", """
                SELECT track_id, source_path, status, reason, detail, clips_kept, clips_silent, content_hash FROM tracks
                """)
            out["clips"] = try CrashChecks.rows(root + "/work", """
                SELECT t.track_id, c.clip_index, c.start_s, c.status, c.flac_path, c.flac_sha256
                FROM clips c JOIN tracks t ON t.id = c.track_rowid
                """)
            out["raw_texts"] = try CrashChecks.rows(root + "/work", "SELECT track_id, origin, field, text FROM raw_texts")
            return out
        })
    }

    /// Four 31–65-second tracks (six clips) and their manifest, in a folder of their own.
    static func audioInitial(_ h: IngestHarness) throws -> String {
        let initial = h.dir.file("initial")
        var csv = "track_id,path\n"
        for i in 0..<4 {
            try TestMedia.tone(initial + "/a/t\(i).ogg", seconds: i % 2 == 0 ? 65 : 31, frequency: 200 + Double(i) * 37,
                               tags: ["title": "Track \(i)"], seed: i + 1)
            csv += "t\(i),a/t\(i).ogg\n"
        }
        try Data(csv.utf8).write(to: URL(fileURLWithPath: initial + "/m.csv"))
        return initial
    }

    @Test func audioPowerLossStates() throws {
        let h = IngestHarness()
        let started = Date()
        let outcomes = try CrashStates.run(Self.audioStage(try Self.audioInitial(h)), scratch: h.dir.file("crash"))
        Self.judge("ingest", outcomes, started: started)
    }

    /// The checker can fail: without the data syncs a power cut after the run leaves clip files that
    /// the catalog names empty.
    @Test func audioCheckerCatchesMissingDataSync() throws {
        let h = IngestHarness()
        let outcomes = try CrashStates.run(Self.audioStage(try Self.audioInitial(h), environment: ["MULAN_UNSAFE_SKIP_FSYNC": "data"]),
                                           points: 1, variants: [.dataDropped], scratch: h.dir.file("crash"))
        CrashStates.record(stage: "ingest-skip-data-sync", outcomes, seconds: 0)
        #expect(outcomes.contains { !$0.violations.isEmpty }, "no violation found without the data syncs")
    }

    @Test func textPowerLossStates() throws {
        let h = IngestHarness()
        let initial = h.dir.file("initial")
        var lines = ""
        for i in 0..<300 {
            lines += "{\"track_id\": \"t\(i)\", \"tags\": [\"jazz\", \"piano \(i % 7)\"], "
                + "\"description\": \"A calm piece number \(i) with soft piano and warm strings.\"}\n"
        }
        try FileManager.default.createDirectory(atPath: initial, withIntermediateDirectories: true)
        try Data(lines.utf8).write(to: URL(fileURLWithPath: initial + "/texts.jsonl"))
        let stage = CrashStates.Stage(name: "text", initial: initial, command: { root in
            (IngestHarness.binary, ["text", "--workdir", root + "/work", "--quiet", "--format", "generic", root + "/texts.jsonl"], root)
        }, check: { root, _ in try CrashChecks.catalog(root + "/work", staged: false) },
           result: { root in
            ["raw_texts": try CrashChecks.rows(root + "/work", "SELECT track_id, origin, field, text FROM raw_texts")]
        })
        let started = Date()
        Self.judge("text", try CrashStates.run(stage, scratch: h.dir.file("crash")), started: started)
    }
}
