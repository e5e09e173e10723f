import Foundation
@testable import MulanTensor
import MulanTestSupport
import Testing

/// Power-loss crash states of `mulan-train` (Tests/MulanTestSupport/CrashStates.swift): every
/// checkpoint a power cut leaves loads (so `--resume` continues from the newest, or the one before
/// when a newer one never became durable), and the resumed run ends where an uninterrupted one does.
@Suite("mulan-train crash states", .serialized)
struct TrainCrashStateTests {
    @Test func powerLossStates() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 3)
        let initial = h.dir.file("initial")
        try FileManager.default.createDirectory(atPath: initial, withIntermediateDirectories: true)
        let common = ["--steps", "6", "--eval-every", "6", "--checkpoint-every", "2", "--log-every", "1",
                      "--threads", "1", "--seed", "3", "--eval-samples", "12"]
        let stage = CrashStates.Stage(name: "train", initial: initial, command: { root in
            (TrainingEndToEndTests.binary, ["--dataset", dataset, "--run-dir", root + "/run"] + TrainingEndToEndTests.tiny
                + common + ["--resume"], root)
        }, check: { root, _ in
            var v: [String] = []
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/run")) ?? []
            where name.hasPrefix("checkpoint-") && name.hasSuffix(".safetensors") {
                do { _ = try SafeTensors.read(root + "/run/" + name) } catch { v.append("\(name) does not load: \(error)") }
            }
            return v
        }, result: { root in
            let c = try SafeTensors.read(root + "/run/checkpoint-000006.safetensors")
            var out: [String: Data] = ["sampler": Data((c.metadata["sampler"] ?? "").utf8)]
            for (name, t) in c.tensors { out["tensor " + name] = t.storage.withUnsafeBufferPointer { Data(buffer: $0) } }
            let lines = try TrainingEndToEndTests.metrics(root + "/run").map { line in
                var l = line
                l["examples_per_second"] = nil
                return String(decoding: try JSONSerialization.data(withJSONObject: l, options: [.sortedKeys]), as: UTF8.self)
            }
            out["metrics"] = Data(lines.joined(separator: "\n").utf8)
            return out
        })
        let started = Date()
        for problem in CrashJudge.problems("train", try CrashStates.run(stage, scratch: h.dir.file("crash")), started: started) {
            Issue.record("\(problem)")
        }
    }
}
