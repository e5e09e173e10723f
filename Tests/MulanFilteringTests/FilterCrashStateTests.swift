import Foundation
import MulanTestSupport
import Testing

/// Power-loss crash states of `mulan-filter` (Tests/MulanTestSupport/CrashStates.swift).
@Suite("mulan-filter crash states", .serialized)
struct FilterCrashStateTests {
    @Test func powerLossStates() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        var lines = ""
        for i in 0..<300 {
            lines += "{\"track_id\": \"t\(i)\", \"tags\": [\"jazz\", \"piano\", \"calm \(i % 5)\"], "
                + "\"description\": \"A calm piece with soft piano and warm strings, number \(i).\(i % 4 == 0 ? " Subscribe now!" : "")\"}\n"
        }
        try h.dir.write("texts.jsonl", lines)
        #expect(try h.ingest(["text", "--format", "generic", "texts.jsonl"]).status == 0)
        let initial = h.dir.file("initial")
        try FileManager.default.createDirectory(atPath: initial, withIntermediateDirectories: true)
        #expect(try TestProcess.run("cp", ["-a", h.workdir, initial + "/work"]).status == 0)
        let config = TestPaths.packageRoot + "/manifests/filters.toml"
        let stage = CrashStates.Stage(name: "filter", initial: initial, command: { root in
            (IngestHarness.filterBinary, ["--source", "descriptions", "--vocab", vocab, "--config", config,
                                          "--workdir", root + "/work", "--quiet", "--report", root + "/filter.json"], root)
        }, check: { root, _ in
            try CrashChecks.catalog(root + "/work", staged: false) + CrashJudge.jsonFilesParse(root)
        }, result: { root in
            ["decisions": try CrashChecks.rows(root + "/work", """
                SELECT d.version, d.raw_text_id, d.source, d.track_id, d.status, d.reason, d.normalized,
                       COALESCE(d.token_ids, ''), d.token_count, COALESCE(d.details, '') FROM text_decisions d
                """),
             "versions": try CrashChecks.rows(root + "/work", """
                SELECT version, source, unfiltered, config, vocab_sha256, completed_at IS NOT NULL FROM filter_versions
                """)]
        })
        let started = Date()
        for problem in CrashJudge.problems("filter", try CrashStates.run(stage, scratch: h.dir.file("crash")), started: started) {
            Issue.record("\(problem)")
        }
    }
}
