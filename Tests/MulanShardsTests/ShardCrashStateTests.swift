import Foundation
import MulanTestSupport
import Testing

/// Power-loss crash states of mulan-shard (Tests/MulanTestSupport/CrashStates.swift).
@Suite("mulan-shard crash states", .serialized)
struct ShardCrashStateTests {
    static func stage(_ h: IngestHarness, initial: String, environment: [String: String] = [:]) -> CrashStates.Stage {
        let args = ["--samples-per-shard", "2", "--split", "train=1.0"]
        return CrashStates.Stage(name: "shard", initial: initial, environment: environment, command: { root in
            (IngestHarness.shardBinary, args + ["--out", root + "/out", "--workdir", root + "/work", "--quiet"], root)
        }, check: { root, _ in
            // A dataset whose dataset.json exists is published: every shard it names must verify.
            let out = root + "/out"
            guard FileManager.default.fileExists(atPath: out + "/dataset.json") else { return [] }
            let r = try TestProcess.run(IngestHarness.shardBinary, ["verify", out, "--quiet"])
            return r.status == 0 ? [] : ["dataset.json is published but mulan-shard verify fails (\(r.status)): "
                                         + r.stderr.prefix(300)]
        }, result: { root in ShardStageTests.files(root + "/out") })
    }

    /// A folder holding a work directory with ingested, filtered clips (`work/`).
    static func prepared() throws -> (IngestHarness, String) {
        let h = try ShardStageTests.corpus(tracks: 5)
        let initial = h.dir.file("initial")
        try FileManager.default.createDirectory(atPath: initial, withIntermediateDirectories: true)
        let r = try TestProcess.run("cp", ["-a", h.workdir, initial + "/work"])
        #expect(r.status == 0)
        return (h, initial)
    }

    @Test func powerLossStatesKeepPublishedShardsWhole() throws {
        let (h, initial) = try Self.prepared()
        let started = Date()
        let outcomes = try CrashStates.run(Self.stage(h, initial: initial), scratch: h.dir.file("crash"))
        for problem in CrashJudge.problems("shard", outcomes, started: started) { Issue.record("\(problem)") }
    }

    /// The checker can fail: with the data syncs switched off (MULAN_UNSAFE_SKIP_FSYNC=data), a power
    /// cut after the run leaves dataset.json and the shards it names empty, which it reports.
    @Test func checkerCatchesMissingDataSync() throws {
        let (h, initial) = try Self.prepared()
        let outcomes = try CrashStates.run(Self.stage(h, initial: initial, environment: ["MULAN_UNSAFE_SKIP_FSYNC": "data"]),
                                           points: 1, variants: [.dataDropped], scratch: h.dir.file("crash"))
        #expect(outcomes.count == 1)
        #expect(outcomes.contains { !$0.violations.isEmpty }, "no violation found without the data syncs")
        CrashStates.record(stage: "shard-skip-data-sync", outcomes, seconds: 0)
    }
}
