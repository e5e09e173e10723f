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
        // Smaller than TrainingEndToEndTests.tiny, so that a state (a traced run killed part-way,
        // then a resumed run to the end) costs seconds: 2-s windows, a batch of 4, towers a few
        // channels wide, and a checkpoint at every step with 2 kept, so that most kill points land
        // in a checkpoint's write, sync, rename or the removal of an older one.
        let common = ["--batch-size", "4", "--audio-widths", "4,8", "--mel-bands", "16", "--text-width", "16",
                      "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "32", "--max-text-length", "16",
                      "--embedding-dim", "16", "--window-seconds", "2", "--shuffle-buffer", "20", "--quiet",
                      "--steps", "4", "--eval-every", "4", "--checkpoint-every", "1", "--keep-checkpoints", "2",
                      "--log-every", "1", "--threads", "1", "--seed", "3", "--eval-samples", "4"]
        let stage = CrashStates.Stage(name: "train", initial: initial, command: { root in
            (TrainingEndToEndTests.binary, ["--dataset", dataset, "--run-dir", root + "/run"] + common + ["--resume"], root)
        }, check: { root, _ in
            var v: [String] = []
            for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/run")) ?? []
            where name.hasPrefix("checkpoint-") && name.hasSuffix(".safetensors") {
                do { _ = try SafeTensors.read(root + "/run/" + name) } catch { v.append("\(name) does not load: \(error)") }
            }
            return v
        }, result: { root in
            let c = try SafeTensors.read(root + "/run/checkpoint-000004.safetensors")
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
