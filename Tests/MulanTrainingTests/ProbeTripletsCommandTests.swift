import Foundation
import MulanTestSupport
import MulanTraining
import Testing

/// `mulan-eval probe` and `mulan-eval triplets` end to end, on tiny models trained on `TimbreCorpus`.
@Suite("mulan-eval probe / triplets", .serialized)
struct ProbeTripletsCommandTests {
    static func bin(_ name: String) -> String { TestPaths.executable(name) }

    static func report(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    @Test func probeAndTripletsOfTrainedModels() throws {
        let perClass = 4
        let (h, dataset) = try TimbreCorpus.make(perClass: perClass)
        let run = h.dir.file("run")
        let trained = try TrainingEndToEndTests.train(dataset, run, [
            "--steps", "60", "--lr", "2e-3", "--warmup-steps", "10", "--eval-every", "1000", "--checkpoint-every", "1000",
            "--log-every", "50", "--threads", "2", "--seed", "1"])
        try #require(trained.status == 0, "\(trained.stderr)")
        let vocab = try TestPython.bertVocabulary()

        // The probe on the shards' train / valid / test tags.
        let json = h.dir.file("probe.json")
        let probe = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--shards", dataset,
                                                                 "--json", json, "--threads", "2", "--quiet"])
        try #require(probe.status == 0, "\(probe.stderr)")
        #expect(probe.stdoutText.contains("linear probe (test): macro ROC-AUC"), "\(probe.stdoutText)")
        let r = try Self.report(json)
        let p = try #require(r["probe"] as? [String: Any])
        #expect(p["train_items"] as? Int == 6 * perClass && p["valid_items"] as? Int == 12 && p["test_items"] as? Int == 12, "\(p)")
        #expect(p["refit_on"] as? String == "train+valid" && (p["candidates"] as? [Any])?.count == 6)
        let test = try #require(p["test"] as? [String: Any])
        let auc = test["macro_roc_auc"] as? Double ?? 0
        #expect(test["tags_scored"] as? Int == 6, "\(test)")
        #expect(auc > 0.8, "probe macro ROC-AUC \(auc)")
        #expect(r["items_embedded"] as? Int == 48)

        // The same clips named by a CSV with a split column give the same figures (the same audio).
        var csv = "clip_id\t" + TimbreCorpus.classes.map(\.tag).joined(separator: "\t") + "\tmp3_path\tsplit\n"
        for c in TimbreCorpus.classes.indices {
            for k in 0..<(perClass + 4) {
                let split = k < perClass ? "train" : k < perClass + 2 ? "valid" : "test"
                csv += "c\(c)_\(k)\t" + TimbreCorpus.classes.indices.map { $0 == c ? "1" : "0" }.joined(separator: "\t")
                    + "\taudio/c\(c)_\(k).flac\t\(split)\n"
            }
        }
        let csvPath = try h.dir.write("probe.csv", csv)
        let json2 = h.dir.file("probe-csv.json")
        let fromCSV = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--csv", csvPath,
                                                                   "--audio-root", h.dir.path, "--json", json2, "--quiet"])
        try #require(fromCSV.status == 0, "\(fromCSV.stderr)")
        let c = try #require((try Self.report(json2))["probe"] as? [String: Any])
        #expect(c["train_items"] as? Int == 6 * perClass && c["test_items"] as? Int == 12)
        let csvAUC = (c["test"] as? [String: Any])?["macro_roc_auc"] as? Double ?? 0
        #expect(abs(csvAUC - auc) < 0.03, "CSV \(csvAUC) vs shards \(auc)")
        // The same command again: the same report (deterministic).
        let again = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--csv", csvPath,
                                                                 "--audio-root", h.dir.path, "--json", json2, "--quiet"])
        try #require(again.status == 0, "\(again.stderr)")
        let c2 = try #require((try Self.report(json2))["probe"] as? [String: Any])
        #expect(NSDictionary(dictionary: c) == NSDictionary(dictionary: c2))
        // A row without a split, and a bad split value: errors at file:line.
        let noSplit = try h.dir.write("nosplit.csv", "clip_id\tsquare wave\tmp3_path\n1\t1\taudio/c1_0.flac\n")
        let refused = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--csv", noSplit,
                                                                   "--audio-root", h.dir.path, "--quiet"])
        #expect(refused.status == 64 && refused.stderr.contains("nosplit.csv:2") && refused.stderr.contains("split"), "\(refused.stderr)")
        let badSplit = try h.dir.write("badsplit.csv", "clip_id\tsquare wave\tmp3_path\tsplit\n1\t1\taudio/c1_0.flac\ttrian\n")
        let refused2 = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--csv", badSplit,
                                                                    "--audio-root", h.dir.path, "--quiet"])
        #expect(refused2.status == 1 && refused2.stderr.contains("badsplit.csv:2") && refused2.stderr.contains("trian"),
                "\(refused2.stderr)")
        let badGrid = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--shards", dataset,
                                                                   "--lambdas", "0.1,zero", "--quiet"])
        #expect(badGrid.status == 64 && badGrid.stderr.contains("--lambdas"), "\(badGrid.stderr)")

        // The mtat-top50 preset with its folders as splits (BenchmarkFixtures.mtat: clips 1, 2, 3, 8, 9
        // train, 4 valid, 5, 6, 7 test; clip 11's audio is missing: listed, exit 3).
        let mtat = try BenchmarkFixtures.mtat(h.dir, audio: true)
        let json3 = h.dir.file("probe-mtat.json")
        let preset = try TestProcess.run(Self.bin("mulan-eval"), ["probe", "--run-dir", run, "--benchmark", "mtat-top50",
                                                                  "--data", mtat, "--audio-root", h.dir.file("mtat/audio"),
                                                                  "--json", json3, "--quiet"])
        #expect(preset.status == 3, "\(preset.stderr)")
        let first = preset.stdoutText.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("MTAT top-50 linear probe (train 0–b, valid c, test d–f): ROC-AUC"), "\(preset.stdoutText)")
        let pm = try Self.report(json3)
        let pp = try #require(pm["probe"] as? [String: Any])
        #expect(pp["train_items"] as? Int == 5 && pp["valid_items"] as? Int == 1 && pp["test_items"] as? Int == 3, "\(pp)")
        // One valid clip scores no tag: every λ ties and the largest is taken.
        #expect(pp["lambda"] as? Double == 1, "\(pp)")
        #expect((pm["benchmark"] as? [String: Any])?["missing_audio"] as? Int == 1, "\(pm)")

        // Triplets with a known answer: an anchor is its own positive (right whatever the model),
        // or its own negative (wrong whatever the model).
        let triplets = try h.dir.write("triplets.jsonl", """
            {"anchor": "square wave", "positive": "square wave", "negative": "pure tone", "attribute": "same"}
            {"anchor": "white noise", "positive": "white noise", "negative": "brown noise", "attribute": "same"}
            {"anchor": "sawtooth", "positive": "pulsing beeps", "negative": "sawtooth", "attribute": "swapped"}

            """)
        let tj = h.dir.file("triplets.json")
        let t = try TestProcess.run(Self.bin("mulan-eval"), ["triplets", "--run-dir", run, "--vocab", vocab,
                                                             "--triplets", triplets, "--json", tj, "--quiet"])
        try #require(t.status == 0, "\(t.stderr)")
        let tr = try Self.report(tj)
        let model = try #require(tr["model"] as? [String: Any])
        #expect(model["triplets"] as? Int == 3 && model["correct"] as? Int == 2, "\(tr)")
        #expect(tr["warm_start"] == nil, "a text tower from scratch has no warm start: \(tr)")
        #expect(t.stdoutText.contains("accuracy 0.667 (2/3)"), "\(t.stdoutText)")
        let bad = try h.dir.write("bad.jsonl", "{\"anchor\": \"a\", \"positive\": \"b\", \"negative\": \"c\"}\n{\"anchor\": \"a\"}\n")
        let refused3 = try TestProcess.run(Self.bin("mulan-eval"), ["triplets", "--run-dir", run, "--vocab", vocab,
                                                                    "--triplets", bad, "--quiet"])
        #expect(refused3.status == 1 && refused3.stderr.contains("bad.jsonl:2") && refused3.stderr.contains("\"positive\""),
                "\(refused3.stderr)")

        // A run warm-started from all-MiniLM-L6-v2: the warm start is scored too, from the run's record.
        let miniLM = (vocab as NSString).deletingLastPathComponent
        let warmRun = h.dir.file("run-warm")
        let warm = try TrainingEndToEndTests.train(dataset, warmRun, [
            "--steps", "4", "--eval-every", "4", "--checkpoint-every", "4", "--threads", "2", "--text-init", miniLM,
            "--text-train", "frozen", "--lr", "1e-3", "--warmup-steps", "1"])
        try #require(warm.status == 0, "\(warm.stderr)")
        let w = try TestProcess.run(Self.bin("mulan-eval"), ["triplets", "--run-dir", warmRun, "--vocab", vocab,
                                                             "--triplets", triplets, "--json", tj, "--quiet"])
        try #require(w.status == 0, "\(w.stderr)")
        let wr = try Self.report(tj)
        let ws = try #require(wr["warm_start"] as? [String: Any], "\(wr)")
        #expect(ws["dim"] as? Int == 384 && (ws["directory"] as? String)?.hasSuffix("model") == true, "\(ws)")
        let wa = try #require(ws["accuracy"] as? [String: Any])
        #expect(wa["correct"] as? Int == 2 && (wr["model"] as? [String: Any])?["correct"] as? Int == 2, "\(wr)")
        #expect(w.stdoutText.contains("warm start"), "\(w.stdoutText)")
        let skipped = try TestProcess.run(Self.bin("mulan-eval"), ["triplets", "--run-dir", warmRun, "--vocab", vocab,
                                                                   "--triplets", triplets, "--no-warm-start", "--json", tj, "--quiet"])
        let skippedReport = try Self.report(tj)
        #expect(skipped.status == 0 && skippedReport["warm_start"] == nil, "\(skipped.stderr)")
        let gone = try TestProcess.run(Self.bin("mulan-eval"), ["triplets", "--run-dir", warmRun, "--vocab", vocab,
                                                                "--triplets", triplets, "--text-init", h.dir.file("nowhere"), "--quiet"])
        #expect(gone.status == 64 && gone.stderr.contains("nowhere") && gone.stderr.contains("--text-init"), "\(gone.stderr)")
    }
}
