import Foundation
import MulanShards
import MulanTensor
import MulanTestSupport
import MulanTraining
import Testing

/// A small dataset where each track's tag names a property its audio really has: its timbre
/// (pure tone, square wave, sawtooth, white noise, pulsing beeps, brown noise), at a pitch drawn
/// at random per track so that pitch does not give the class away.
enum TimbreCorpus {
    static let classes: [(tag: String, source: @Sendable (Double) -> String)] = [
        ("pure tone", { f in "aevalsrc=exprs='0.4*sin(2*PI*\(f)*t)'" }),
        ("square wave", { f in "aevalsrc=exprs='0.25*sgn(sin(2*PI*\(f)*t))'" }),
        ("sawtooth", { f in "aevalsrc=exprs='0.3*(2*mod(\(f)*t,1)-1)'" }),
        ("white noise", { _ in "anoisesrc=color=white:amplitude=0.3" }),
        ("pulsing beeps", { f in "aevalsrc=exprs='0.4*sin(2*PI*\(f)*t)*gt(sin(2*PI*3*t),0)'" }),
        ("brown noise", { _ in "anoisesrc=color=brown:amplitude=0.5" }),
    ]

    /// Ingests, filters (tags) and shards `perClass` train, 2 valid and 2 test tracks per class.
    static func make(perClass: Int = 6, seconds: Double = 31) throws -> (harness: IngestHarness, dataset: String) {
        let h = IngestHarness()
        var random = RandomSource(seed: 42)
        var manifest = "track_id,path,start_s,end_s,split\n"
        var n = 0
        for (c, cls) in classes.enumerated() {
            for k in 0..<(perClass + 4) {
                let split = k < perClass ? "train" : k < perClass + 2 ? "valid" : "test"
                let f = 150 * pow(8, Double(random.unitFloat()))   // 150 Hz … 1.2 kHz
                let path = h.dir.file("audio/c\(c)_\(k).flac")
                try FileManager.default.createDirectory(atPath: h.dir.file("audio"), withIntermediateDirectories: true)
                let src = cls.source((f * 10).rounded() / 10)
                let generator = src.hasPrefix("anoisesrc") ? src + ":seed=\(n + 1):r=16000:d=\(seconds)"
                                                           : src + ":s=16000:d=\(seconds)"
                try TestProcess.ffmpeg(["-f", "lavfi", "-i", generator, "-ac", "1", "-metadata", "genre=\(cls.tag)",
                                        "-c:a", "flac", path])
                manifest += "t\(n),audio/c\(c)_\(k).flac,,,\(split)\n"
                n += 1
            }
        }
        try h.dir.write("m.csv", manifest)
        let ingest = try h.ingest(["--manifest", "m.csv", "--sample-rate", "16000"])
        guard ingest.status == 0 else { throw TestFailure("ingest failed: \(ingest.stderr)") }
        let filter = try h.filter(["--source", "tags", "--vocab", try TestPython.bertVocabulary(),
                                   "--config", TestPaths.packageRoot + "/manifests/filters.toml"])
        guard filter.status == 0 else { throw TestFailure("filter failed: \(filter.stderr)") }
        let shard = try h.shard(["--samples-per-shard", "16"])
        guard shard.status == 0 else { throw TestFailure("shard failed: \(shard.stderr)") }
        return (h, h.workdir + "/shards/latest")
    }
}

@Suite("mulan-train end to end", .serialized)
struct TrainingEndToEndTests {
    static var binary: String { TestPaths.executable("mulan-train") }

    /// A tiny model that trains in seconds on two cores.
    static let tiny = ["--batch-size", "12", "--audio-widths", "8,16", "--mel-bands", "32", "--text-width", "32",
                       "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16",
                       "--window-seconds", "4", "--shuffle-buffer", "40", "--quiet"]

    static func train(_ dataset: String, _ run: String, _ extra: [String]) throws -> ProcessResult {
        try TestProcess.run(binary, ["--dataset", dataset, "--run-dir", run] + tiny + extra)
    }

    static func metrics(_ run: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
    }

    @Test func learnsTimbreFromTagsAndBeatsChanceOnHeldOutClips() throws {
        let (h, dataset) = try TimbreCorpus.make()
        let run = h.dir.file("run")
        let r = try Self.train(dataset, run, ["--steps", "240", "--lr", "2e-3", "--warmup-steps", "20",
                                              "--eval-every", "80", "--checkpoint-every", "120", "--log-every", "5",
                                              "--threads", "2", "--seed", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        // Only tags exist: the default 2:2:1:1 mix falls back to tags alone, with one warning.
        #expect(r.stderr.components(separatedBy: "mixing tags=2 instead").count == 2, "\(r.stderr)")

        let lines = try Self.metrics(run)
        let train = lines.filter { $0["split"] == nil }
        for key in ["step", "loss", "temperature", "batch_size", "examples_per_second"] {
            #expect(train.allSatisfy { $0[key] != nil }, "every step line has \(key)")
        }
        #expect(train.allSatisfy { ($0["sources"] as? [String: Int]) == ["tags": 12] })
        // The loss ends well below ln(B−1), the loss of a collapsed model.
        let last = train.suffix(8).compactMap { $0["loss"] as? Double }
        let mean = last.reduce(0, +) / Double(last.count)
        #expect(mean < 0.5 * log(11.0), "final train loss \(mean) vs ln(B−1) = \(log(11.0))")
        // Held-out retrieval far above chance: 12 test clips in 6 classes (chance R@1 ≈ 2/12).
        let test = try #require(lines.last { $0["split"] as? String == "test" })
        let t2a = test["t2a_recall_at_1"] as? Double ?? 0, a2t = test["a2t_recall_at_1"] as? Double ?? 0
        #expect(t2a >= 0.6, "text→audio R@1 \(t2a)")
        #expect(a2t >= 0.6, "audio→text R@1 \(a2t)")
        #expect((test["tagging_roc_auc"] as? Double ?? 0) > 0.85, "\(test)")
        #expect(lines.contains { $0["split"] as? String == "valid" && $0["step"] as? Int == 80 })

        // summary.json is machine-readable and agrees.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json"))) as? [String: Any]
        #expect(summary?["last_step"] as? Int == 240)
        #expect((summary?["time_share"] as? [String: Double])?["gemm"] != nil)
        // Both record the OpenBLAS core the products ran on.
        let core = try BLAS.load().core
        #expect((summary?["blas"] as? [String: Any])?["core"] as? String == core)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/config.json"))) as? [String: Any]
        #expect((config?["blas"] as? [String: Any])?["core"] as? String == core)
        #expect(config?["batchSize"] != nil, "config.json keeps the training configuration's keys")

        // The checkpoint loads in Python's safetensors with the model's names.
        let checkpoint = run + "/checkpoint-000240.safetensors"
        let py = try TestProcess.run(TestPython.path, ["-c", """
            import sys, json
            from safetensors import safe_open
            with safe_open(sys.argv[1], framework="numpy") as f:
                keys = list(f.keys())
                print(json.dumps({"step": f.metadata()["step"], "n": len(keys),
                                  "has": [k for k in ["audio.conv1.weight", "text.embeddings.word_embeddings.weight",
                                                      "loss.log_temperature"] if k in keys],
                                  "opt": any(k.startswith("optimizer.m.") for k in keys)}))
            """, checkpoint])
        #expect(py.status == 0, "\(py.stderr)")
        #expect(py.stdoutText.contains("\"step\": \"240\""), "\(py.stdoutText)")
        #expect(py.stdoutText.contains("\"opt\": true"))
        #expect(py.stdoutText.contains("loss.log_temperature") && py.stdoutText.contains("audio.conv1.weight"))
    }

    @Test func crashResumeTrain() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 3)
        let common = ["--steps", "12", "--eval-every", "6", "--checkpoint-every", "4", "--log-every", "1",
                      "--threads", "1", "--seed", "3", "--eval-samples", "12"]
        let straight = h.dir.file("straight"), sliced = h.dir.file("sliced")
        let started = Date()
        let whole = try Self.train(dataset, straight, common)
        let wall = Date().timeIntervalSince(started)
        #expect(whole.status == 0, "\(whole.stderr)")
        let first = try Self.train(dataset, sliced, common + ["--stop-at", "5"])
        #expect(first.status == 0, "\(first.stderr)")
        // A run that was killed after its step-5 checkpoint left lines for steps 6 and 7 behind.
        let handle = try #require(FileHandle(forWritingAtPath: sliced + "/metrics.jsonl"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"step\": 6, \"loss\": 1}\n{\"step\": 7, \"loss\": 1}\n".utf8))
        try handle.close()
        // Without --resume an existing run is not overwritten.
        let refused = try Self.train(dataset, sliced, common)
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("--resume"))
        let second = try Self.train(dataset, sliced, common + ["--resume"])
        #expect(second.status == 0, "\(second.stderr)")

        let a = try SafeTensors.read(straight + "/checkpoint-000012.safetensors")
        let b = try SafeTensors.read(sliced + "/checkpoint-000012.safetensors")
        #expect(a.tensors.count == b.tensors.count)
        for (name, t) in a.tensors { #expect(b.tensors[name] == t, "\(name) differs after resuming") }
        #expect(a.metadata["sampler"] == b.metadata["sampler"])
        // The thread count changes no bit (BLAS.parallelGemm's fixed blocks): the run on 2 threads,
        // stopped at step 5 and resumed on 1, ends in the same state as the 1-thread run.
        let mixed = h.dir.file("mixed")
        let at = try #require(common.firstIndex(of: "--threads"))
        let oneThread = Array(common[..<at] + common[(at + 2)...])
        let two = try Self.train(dataset, mixed, oneThread + ["--threads", "2", "--stop-at", "5"])
        #expect(two.status == 0, "\(two.stderr)")
        let resumedOnOne = try Self.train(dataset, mixed, oneThread + ["--threads", "1", "--resume"])
        #expect(resumedOnOne.status == 0, "\(resumedOnOne.stderr)")
        let m = try SafeTensors.read(mixed + "/checkpoint-000012.safetensors")
        for (name, t) in a.tensors { #expect(m.tensors[name] == t, "\(name) differs between 1 and 2 threads") }
        // The decoded-clip cache changes no bit: one that holds a single 30-s clip (960,000 bytes; the
        // others are decoded at every draw) and one that holds them all.
        for mib in ["1", "64"] {
            let cached = h.dir.file("cached-\(mib)")
            let r = try Self.train(dataset, cached, common + ["--decoded-cache", mib])
            #expect(r.status == 0, "\(r.stderr)")
            let summary = try JSONDecoder().decode(TrainSummary.self, from: Data(contentsOf: URL(fileURLWithPath: cached + "/summary.json")))
            let stats = try #require(summary.decodedCache)
            // Every draw went through the cache: kept clips (on the 16-bit grid) were drawn again.
            #expect(stats.hits + stats.misses == 12 * 12 && stats.hits > 0, "\(stats)")
            // 1 MiB holds one 30-s clip: the others are decoded at each draw. 64 MiB holds them all.
            #expect(mib == "1" ? stats.clips == 1 && stats.bytes == 960_000 && stats.misses > 2 * stats.clips
                              : stats.clips > 1 && stats.misses == stats.clips, "\(stats)")
            let c = try SafeTensors.read(cached + "/checkpoint-000012.safetensors")
            #expect(c.tensors.count == a.tensors.count)
            for (name, t) in a.tensors { #expect(c.tensors[name] == t, "\(name) differs with --decoded-cache \(mib)") }
        }
        // The metrics are the same lines, without duplicates (timing fields aside).
        func comparable(_ run: String) throws -> [String] {
            try Self.metrics(run).map { line in
                var l = line
                l["examples_per_second"] = nil
                return String(decoding: try JSONSerialization.data(withJSONObject: l, options: [.sortedKeys]), as: UTF8.self)
            }
        }
        #expect(try comparable(straight) == comparable(sliced))
        #expect(Checkpoint.list(in: sliced).count <= 3)

        // kill -9 at seeded moments (MULAN_KILL_POINTS; 3 in `make test`), then --resume: the same
        // final weights and optimizer state, the same metrics lines, no leftovers.
        var interrupted = 0
        let delays = KillHarness.delays(wall: wall, stage: "train")
        for (i, delay) in delays.enumerated() {
            let killed = h.dir.file("killed-\(i)")
            let (delay, landed) = try KillHarness.killMidRun(
                Self.binary, ["--dataset", dataset, "--run-dir", killed] + Self.tiny + common,
                after: delay) { try KillHarness.remove(killed) }
            if landed { interrupted += 1 }
            let progress = Checkpoint.list(in: killed).last?.step ?? 0
            let resumed = try Self.train(dataset, killed, common + (Checkpoint.list(in: killed).isEmpty ? [] : ["--resume"]))
            #expect(resumed.status == 0, "kill \(i): \(resumed.stderr)")
            let c = try SafeTensors.read(killed + "/checkpoint-000012.safetensors")
            let sameState = c.tensors.count == a.tensors.count && a.tensors.allSatisfy { c.tensors[$0.key] == $0.value }
                && c.metadata["sampler"] == a.metadata["sampler"]
            let sameMetrics = try comparable(killed) == comparable(straight)
            let leftovers = KillHarness.leftovers(below: killed)
            #expect(sameState, "kill \(i): the trainer state differs")
            #expect(sameMetrics, "kill \(i): metrics differ")
            #expect(leftovers.isEmpty, "kill \(i): \(leftovers)")
            KillHarness.record(stage: "train", point: i, delay: delay, interrupted: landed, progress: progress,
                               identical: sameState && sameMetrics, leftovers: leftovers)
        }
        #expect(interrupted == delays.count, "only \(interrupted) of \(delays.count) runs were interrupted")

        // Two trainers started at once on one run directory: one is refused, and the other's
        // result is the uninterrupted run's.
        let twin = h.dir.file("twin")
        let binary = Self.binary, arguments = ["--dataset", dataset, "--run-dir", twin] + Self.tiny + common
        let other = Background { try? TestProcess.run(binary, arguments) }
        let mine = try TestProcess.run(binary, arguments)
        let both = [mine, try #require(other.wait())]
        #expect(both.map(\.status).sorted() == [0, 1], "\(both.map(\.stderr))")
        #expect(both.contains { $0.stderr.contains("the run directory \(twin) is in use by mulan-train pid") },
                "\(both.map(\.stderr))")
        let twinState = try SafeTensors.read(twin + "/checkpoint-000012.safetensors")
        #expect(a.tensors.allSatisfy { twinState.tensors[$0.key] == $0.value })
        #expect(try comparable(twin) == comparable(straight))
    }

    @Test func warmStartedTextTowerTrainsOnlyWhatItShould() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 3)
        let model = (try TestPython.bertVocabulary() as NSString).deletingLastPathComponent
        let pretrained = try SafeTensors.read(model + "/model.safetensors") { !$0.hasSuffix("position_ids") }.tensors
        func bert(_ name: String) -> Tensor? { pretrained[name] ?? pretrained["bert." + name] }
        for mode in ["frozen", "top:1"] {
            let run = h.dir.file("run-\(mode)")
            let r = try Self.train(dataset, run, ["--steps", "6", "--eval-every", "6", "--checkpoint-every", "6",
                                                  "--threads", "2", "--text-init", model, "--text-train", mode,
                                                  "--lr", "1e-3", "--warmup-steps", "1"])
            #expect(r.status == 0, "\(mode): \(r.stderr)")
            let trained = try SafeTensors.read(run + "/checkpoint-000006.safetensors")
            // MiniLM's size and mean pooling went into the saved configuration.
            let config = try #require(trained.metadata["config"])
            #expect(config.contains("\"width\":384") && config.contains("\"pooling\":\"mean\""), "\(config.prefix(400))")
            let embeddings = try #require(trained.tensors["text.embeddings.word_embeddings.weight"])
            #expect(embeddings == bert("embeddings.word_embeddings.weight"), "\(mode): embeddings moved")
            #expect(trained.tensors["text.encoder.layer.0.attention.self.query.weight"]
                    == bert("encoder.layer.0.attention.self.query.weight"), "\(mode): layer 0 moved")
            let top = trained.tensors["text.encoder.layer.5.output.dense.weight"]
            if mode == "frozen" {
                #expect(top == bert("encoder.layer.5.output.dense.weight"))
                #expect(!trained.tensors.keys.contains { $0.hasPrefix("optimizer.m.text.encoder") })
            } else {
                #expect(top != nil && top != bert("encoder.layer.5.output.dense.weight"), "top layer did not train")
                #expect(trained.tensors.keys.contains("optimizer.m.text.encoder.layer.5.output.dense.weight"))
                #expect(!trained.tensors.keys.contains("optimizer.m.text.encoder.layer.4.output.dense.weight"))
            }
            #expect(trained.tensors.keys.contains("optimizer.m.text.projection.weight"))
            // Texts past the cache's limits are encoded again each step, with the same result (up to
            // rounding: a text is encoded beside other texts): no cache at all, by entries or by MiB.
            let limit = mode == "frozen" ? ["--text-cache-entries", "0"] : ["--text-cache-mib", "0"]
            let uncached = h.dir.file("run-\(mode)-uncached")
            let u = try Self.train(dataset, uncached, ["--steps", "6", "--eval-every", "6", "--checkpoint-every", "6",
                                                       "--threads", "2", "--text-init", model, "--text-train", mode,
                                                       "--lr", "1e-3", "--warmup-steps", "1"] + limit)
            #expect(u.status == 0, "\(mode) uncached: \(u.stderr)")
            // summary.json's text_cache: the cached run kept its texts; the uncached one kept none and
            // encoded every text of every batch.
            func textCache(_ run: String) throws -> TextCacheStatistics {
                let summary = try JSONDecoder().decode(TrainSummary.self, from: Data(contentsOf: URL(fileURLWithPath: run + "/summary.json")))
                return try #require(summary.textCache)
            }
            let kept = try textCache(run), none = try textCache(uncached)
            #expect(kept.texts == 6 * 12 && kept.entries == kept.encoded && kept.encoded < kept.texts && kept.bytes > 0, "\(mode): \(kept)")
            #expect(none.entries == 0 && none.bytes == 0 && none.texts == 6 * 12 && none.encoded > kept.encoded, "\(mode): \(none)")
            let again = try SafeTensors.read(uncached + "/checkpoint-000006.safetensors")
            for name in ["text.projection.weight", "text.encoder.layer.5.output.dense.weight", "audio.fc.weight"] {
                let x = try #require(trained.tensors[name]), y = try #require(again.tensors[name])
                let gap = zip(x.storage, y.storage).map { abs($0 - $1) }.max() ?? 0
                #expect(gap < 1e-4, "\(mode): \(name) differs by \(gap) without the text cache")
            }
        }
        // A resumed warm-started run rebuilds the same tower from its checkpoint.
        let resumed = try Self.train(dataset, h.dir.file("run-frozen"), ["--steps", "8", "--resume", "--threads", "2",
                                                                        "--eval-every", "8", "--checkpoint-every", "8"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        // --text-train frozen without a pretrained tower is refused.
        let refused = try Self.train(dataset, h.dir.file("nope"), ["--text-train", "frozen"])
        #expect(refused.status == 64 && refused.stderr.contains("--text-init"))
    }

    @Test func clearErrorsForBadDatasetsAndOptions() throws {
        let dir = TempDir("mulan-train")
        let missing = try TestProcess.run(Self.binary, ["--dataset", dir.file("nothing"), "--run-dir", dir.file("r"), "--quiet"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("dataset.json") && missing.stderr.contains("mulan-shard"), "\(missing.stderr)")
        let badMix = try TestProcess.run(Self.binary, ["--mix", "tags=1,lyrics=2", "--dataset", dir.path])
        #expect(badMix.status == 64)
        #expect(badMix.stderr.contains("lyrics"))
        let badBatch = try TestProcess.run(Self.binary, ["--batch-size", "2", "--dataset", dir.path])
        #expect(badBatch.status == 64)
    }
}
