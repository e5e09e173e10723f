import Foundation
import MulanTestSupport
import MulanTraining
import Testing

/// mulan-embed, mulan-search and mulan-eval on a tiny model trained on `TimbreCorpus`.
@Suite("mulan-embed / search / eval", .serialized)
struct EmbedSearchEvalTests {
    static func bin(_ name: String) -> String { TestPaths.executable(name) }

    static func json(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// A file of one timbre class (`TimbreCorpus.classes`), at a pitch the corpus may not hold.
    static func generate(_ path: String, classIndex: Int, frequency: Double, seconds: Double) throws {
        let src = TimbreCorpus.classes[classIndex].source(frequency)
        let generator = src.hasPrefix("anoisesrc") ? src + ":seed=99:r=22050:d=\(seconds)" : src + ":s=22050:d=\(seconds)"
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", generator, "-ac", "2", path])
    }

    /// The timbre class of a search hit: from a generated file's name, or a corpus track id (t<n>).
    static func timbre(_ hit: [String: Any], perClass: Int) -> String? {
        if let path = hit["path"] as? String {
            let name = (path as NSString).lastPathComponent
            return TimbreCorpus.classes.first { name.hasPrefix($0.tag.replacingOccurrences(of: " ", with: "-")) }?.tag
        }
        guard let track = hit["track"] as? String, let n = Int(track.dropFirst()) else { return nil }
        return TimbreCorpus.classes[n / (perClass + 4)].tag
    }

    @Test func embedSearchAndEvaluateATrainedModel() throws {
        let perClass = 6
        let (h, dataset) = try TimbreCorpus.make(perClass: perClass)
        let run = h.dir.file("run")
        let trained = try TrainingEndToEndTests.train(dataset, run, [
            "--steps", "240", "--lr", "2e-3", "--warmup-steps", "20", "--eval-every", "1000", "--checkpoint-every", "1000",
            "--log-every", "50", "--threads", "2", "--seed", "1"])
        try #require(trained.status == 0, "\(trained.stderr)")
        let vocab = try TestPython.bertVocabulary()

        // A few files of our own: ≤30 s clips, one long track, one that is not audio.
        let files = h.dir.file("files")
        try Self.generate(files + "/square-wave-a.wav", classIndex: 1, frequency: 330, seconds: 12)
        try Self.generate(files + "/square-wave-b.mp3", classIndex: 1, frequency: 520, seconds: 20)
        try Self.generate(files + "/pure-tone-a.ogg", classIndex: 0, frequency: 410, seconds: 15)
        try Self.generate(files + "/sub/white-noise-a.flac", classIndex: 3, frequency: 0, seconds: 10)
        try Self.generate(h.dir.file("long/square-wave-long.flac"), classIndex: 1, frequency: 260, seconds: 45)
        let broken = try h.dir.write("bad/broken.mp3", String(repeating: "not audio at all ", count: 200))

        let out = h.dir.file("index")
        let embed = try TestProcess.run(Self.bin("mulan-embed"), [
            "--run-dir", run, "--vocab", vocab, "--shards", dataset, "--split", "test",
            "--audio", files, h.dir.file("long/square-wave-long.flac"), broken,
            "--text", "square wave", "--text", "pure tone", "--out", out, "--threads", "2", "--quiet"])
        // The broken file is recorded and the run goes on: exit 3.
        #expect(embed.status == 3, "\(embed.stderr)")
        let summary = Self.json(embed.stdout)
        #expect(summary["audio_rows"] as? Int == 12 + 5, "\(embed.stdoutText)")
        #expect(summary["text_rows"] as? Int == 2)
        #expect((summary["failures_by_reason"] as? [String: Int])?.values.reduce(0, +) == 1, "\(embed.stdoutText)")
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(names == ["embedding-info.json", "embeddings.npy", "index.jsonl"], "\(names)")

        let index = try EmbeddingIndex(directory: out)
        #expect(index.rows.count == 19 && index.dim == 128)
        #expect(index.info.failures.count == 1 && index.info.failures.first?.path == broken, "\(index.info.failures)")
        #expect(index.info.step == 240 && index.info.sampleRate == 16000)
        let shardRows = index.rows.filter { $0.key != nil }
        #expect(shardRows.count == 12 && shardRows.allSatisfy { $0.windows == 3 && $0.track != nil })
        let long = try #require(index.rows.first { $0.path?.hasSuffix("square-wave-long.flac") == true })
        #expect(long.windows == 11, "45 s in 4-s windows: 11 non-overlapping windows")
        #expect(index.rows.first { $0.path?.hasSuffix("square-wave-a.wav") == true }?.windows == 3)
        #expect(index.rows.filter { $0.kind == .text }.map(\.text) == ["square wave", "pure tone"])

        // numpy reads the same matrix: shape, unit rows, values.
        let py = try TestProcess.run(TestPython.path, ["-c", """
            import sys, json, numpy as np
            m = np.load(sys.argv[1] + "/embeddings.npy")
            rows = [json.loads(l) for l in open(sys.argv[1] + "/index.jsonl")]
            print(json.dumps({"shape": list(m.shape), "dtype": str(m.dtype), "rows": [r["row"] for r in rows],
                              "norms": np.linalg.norm(m, axis=1).tolist(), "first": m[:, :4].astype(float).tolist()}))
            """, out])
        try #require(py.status == 0, "\(py.stderr)")
        let np = Self.json(py.stdout)
        #expect(np["shape"] as? [Int] == [19, 128])
        #expect(np["dtype"] as? String == "float32")
        #expect(np["rows"] as? [Int] == Array(0..<19))
        #expect((np["norms"] as? [Double] ?? []).allSatisfy { abs($0 - 1) < 1e-4 })
        let first = np["first"] as? [[Double]] ?? []
        for r in 0..<19 { #expect(first[r].map { Float($0) } == Array(index.embedding(r).prefix(4))) }

        // Text search: square-wave audio first.
        let search = try TestProcess.run(Self.bin("mulan-search"), ["--index", out, "square wave", "--top", "3", "--json", "--quiet"])
        try #require(search.status == 0, "\(search.stderr)")
        let hits = Self.json(search.stdout)["results"] as? [[String: Any]] ?? []
        #expect(hits.count == 3)
        let classes = hits.map { Self.timbre($0, perClass: perClass) }
        #expect(classes.first == "square wave" && classes.filter { $0 == "square wave" }.count >= 2, "\(hits)")
        let table = try TestProcess.run(Self.bin("mulan-search"), ["--index", out, "calm solo piano, slow", "--quiet"])
        #expect(table.status == 0 && table.stdoutText.hasPrefix("rank  score"), "\(table.stdoutText)\(table.stderr)")
        #expect(table.stdoutText.split(separator: "\n").count == 11)

        // Audio search: the file itself is left out; its class comes first.
        let me = files + "/sub/white-noise-a.flac"
        let like = try TestProcess.run(Self.bin("mulan-search"), ["--index", out, "--like", me, "--top", "3", "--json", "--quiet",
                                                                  "--checkpoint", index.info.checkpoint])
        try #require(like.status == 0, "\(like.stderr)")
        let likeHits = Self.json(like.stdout)["results"] as? [[String: Any]] ?? []
        #expect(!likeHits.contains { $0["path"] as? String == me })
        #expect(likeHits.first.flatMap { Self.timbre($0, perClass: perClass) } == "white noise", "\(likeHits)")

        // Zero-shot tagging on the shards' tags agrees with the trainer's own test evaluation.
        let report = h.dir.file("eval.json")
        let eval = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--shards", dataset,
                                                                "--split", "test", "--json", report, "--quiet", "--threads", "2"])
        try #require(eval.status == 0, "\(eval.stderr)")
        #expect(eval.stdoutText.contains("macro ROC-AUC"), "\(eval.stdoutText)")
        let tagging = Self.json(try Data(contentsOf: URL(fileURLWithPath: report)))["tagging"] as? [String: Any] ?? [:]
        let auc = tagging["macro_roc_auc"] as? Double ?? 0
        let trainerTest = try #require(TrainingEndToEndTests.metrics(run).last { $0["split"] as? String == "test" })
        let trainerAUC = trainerTest["tagging_roc_auc"] as? Double ?? -1
        #expect(auc > 0.75, "macro ROC-AUC \(auc)")
        #expect(abs(auc - trainerAUC) < 0.01, "mulan-eval \(auc) vs trainer \(trainerAUC)")
        #expect(tagging["tags_scored"] as? Int == 6)
        // Reusing the index gives the same figures without embedding again.
        let reuse = try TestProcess.run(Self.bin("mulan-eval"), ["--index", out, "--shards", dataset, "--json", report, "--quiet"])
        try #require(reuse.status == 0, "\(reuse.stderr)")
        let reused = Self.json(try Data(contentsOf: URL(fileURLWithPath: report)))
        #expect(reused["items_reused"] as? Int == 12 && reused["items_embedded"] as? Int == 0, "\(reused)")
        #expect(abs(((reused["tagging"] as? [String: Any])?["macro_roc_auc"] as? Double ?? 0) - auc) < 1e-6)

        // A MagnaTagATune-style CSV (tab-separated, quoted as the real file) and a caption set.
        let csv = try h.dir.write("mtat/annotations_final.csv", """
            "clip_id"\t"square wave"\t"pure tone"\t"white noise"\t"mp3_path"
            "1"\t"1"\t"0"\t"0"\t"square-wave-a.wav"
            "2"\t"1"\t"0"\t"0"\t"square-wave-b.mp3"
            "3"\t"0"\t"1"\t"0"\t"pure-tone-a.ogg"
            "4"\t"0"\t"0"\t"1"\t"sub/white-noise-a.flac"

            """)
        let captions = try h.dir.write("captions.jsonl", """
            {"path": "square-wave-a.wav", "caption": "square wave"}
            {"path": "pure-tone-a.ogg", "caption": "pure tone"}
            {"path": "sub/white-noise-a.flac", "caption": "white noise"}
            """)
        let mtat = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--csv", csv,
                                                                "--audio-root", files, "--captions", captions,
                                                                "--json", report, "--quiet"])
        try #require(mtat.status == 0, "\(mtat.stderr)")
        let m = Self.json(try Data(contentsOf: URL(fileURLWithPath: report)))
        let mt = m["tagging"] as? [String: Any] ?? [:]
        #expect(mt["items"] as? Int == 4 && mt["tags_scored"] as? Int == 3, "\(m)")
        #expect((mt["macro_roc_auc"] as? Double ?? 0) > 0.6, "\(m)")
        #expect((m["retrieval"] as? [String: Any])?["pairs"] as? Int == 3, "\(m)")
        #expect(mtat.stdoutText.contains("square wave") && mtat.stdoutText.contains("R@1"), "\(mtat.stdoutText)")
        // --exclusive: the group's tags also scored among the group; the plain figures unchanged.
        let grouped = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--csv", csv,
                                                                   "--audio-root", files, "--exclusive", "square wave,pure tone",
                                                                   "--json", report, "--quiet"])
        try #require(grouped.status == 0, "\(grouped.stderr)")
        let g = (Self.json(try Data(contentsOf: URL(fileURLWithPath: report)))["tagging"] as? [String: Any]) ?? [:]
        #expect(g["exclusive_groups"] as? [[String]] == [["square wave", "pure tone"]], "\(g)")
        let gPerTag = g["per_tag"] as? [[String: Any]] ?? []
        #expect(gPerTag.filter { $0["exclusive_roc_auc"] != nil }.compactMap { $0["tag"] as? String } == ["square wave", "pure tone"],
                "\(gPerTag)")
        #expect((g["macro_roc_auc"] as? Double).map { abs($0 - (mt["macro_roc_auc"] as? Double ?? -1)) < 1e-9 } == true)
        #expect(grouped.stdoutText.contains("exclusive ROC-AUC"), "\(grouped.stdoutText)")
        let unknownTag = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--csv", csv,
                                                                      "--audio-root", files, "--exclusive", "square wave,sine", "--quiet"])
        #expect(unknownTag.status == 64 && unknownTag.stderr.contains("\"sine\"") && unknownTag.stderr.contains("not a tag"),
                "\(unknownTag.stderr)")

        // Bad inputs: clear errors naming the file (and line).
        let missing = try TestProcess.run(Self.bin("mulan-embed"), ["--checkpoint", h.dir.file("none.safetensors"),
                                                                    "--text", "x", "--vocab", vocab, "--out", h.dir.file("o1"), "--quiet"])
        #expect(missing.status == 1 && missing.stderr.contains("none.safetensors") && missing.stderr.contains("does not exist"),
                "\(missing.stderr)")
        let checkpoint = index.info.checkpoint
        let bytes = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        let cut = h.dir.file("cut.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        let truncated = try TestProcess.run(Self.bin("mulan-embed"), ["--checkpoint", cut, "--text", "x", "--vocab", vocab,
                                                                      "--out", h.dir.file("o2"), "--quiet"])
        #expect(truncated.status == 1 && truncated.stderr.contains("cut.safetensors") && truncated.stderr.contains("cannot read the checkpoint"),
                "\(truncated.stderr)")
        #expect(!FileManager.default.fileExists(atPath: h.dir.file("o2/embeddings.npy")))
        let other = try TestProcess.run(Self.bin("mulan-search"), ["--index", out, "x", "--checkpoint", cut, "--quiet"])
        #expect(other.status == 1, "\(other.stderr)")
        let noPath = try h.dir.write("mtat/bad.csv", "clip_id\tsquare wave\tpath\n1\t1\tsquare-wave-a.wav\n")
        let badCSV = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--csv", noPath,
                                                                  "--audio-root", files, "--quiet"])
        #expect(badCSV.status == 64 && badCSV.stderr.contains("bad.csv:1") && badCSV.stderr.contains("mp3_path"), "\(badCSV.stderr)")
        let badValue = try h.dir.write("mtat/bad2.csv", "clip_id\tsquare wave\tmp3_path\n1\t1\tsquare-wave-a.wav\n2\tyes\tx.wav\n")
        let badRow = try TestProcess.run(Self.bin("mulan-eval"), ["--run-dir", run, "--vocab", vocab, "--csv", badValue,
                                                                  "--audio-root", files, "--quiet"])
        #expect(badRow.status == 1 && badRow.stderr.contains("bad2.csv:3") && badRow.stderr.contains("\"yes\""), "\(badRow.stderr)")
        let nothing = try TestProcess.run(Self.bin("mulan-embed"), ["--run-dir", run, "--out", h.dir.file("o3")])
        #expect(nothing.status == 64, "\(nothing.stderr)")
    }

    /// kill -9 at several moments of `mulan-embed`: the folder never holds a partial file under a final
    /// name, and the re-run writes the same bytes as an uninterrupted run.
    @Test func killedEmbeddingRunsLeaveNoPartialFilesAndFinishTheSame() throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 4)
        let run = h.dir.file("run")
        let trained = try TrainingEndToEndTests.train(dataset, run, ["--steps", "3", "--warmup-steps", "1", "--eval-every", "1000",
                                                                     "--checkpoint-every", "1000", "--threads", "1"])
        try #require(trained.status == 0, "\(trained.stderr)")
        let vocab = try TestPython.bertVocabulary()
        let arguments = ["--run-dir", run, "--vocab", vocab, "--shards", dataset, "--split", "train",
                         "--text", "square wave", "--text", "pure tone", "--threads", "1", "--quiet"]
        let straight = h.dir.file("straight")
        let done = try TestProcess.run(Self.bin("mulan-embed"), arguments + ["--out", straight])
        try #require(done.status == 0, "\(done.stderr)")
        let finals = Set([EmbeddingIndexWriter.embeddingsFile, EmbeddingIndexWriter.indexFile, EmbeddingIndexWriter.infoFile])
        func bytes(_ dir: String) throws -> [Data] {
            try [EmbeddingIndexWriter.embeddingsFile, EmbeddingIndexWriter.indexFile].map {
                try Data(contentsOf: URL(fileURLWithPath: dir + "/" + $0))
            }
        }
        // A fresh folder, and one that already holds a finished index (of the test split) being replaced.
        let old = h.dir.file("old")
        let first = try TestProcess.run(Self.bin("mulan-embed"), arguments.map { $0 == "train" ? "test" : $0 } + ["--out", old])
        try #require(first.status == 0, "\(first.stderr)")
        for (i, delay) in [0.15, 0.5, 0.9, 1.2].enumerated() {
            let out = h.dir.file("killed-\(i)")
            if i % 2 == 1 { try FileManager.default.copyItem(atPath: old, toPath: out) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.bin("mulan-embed"))
            p.arguments = arguments + ["--out", out]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(useconds_t(delay * 1_000_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            #expect(names.allSatisfy { finals.contains($0) || ($0.hasSuffix(".tmp") && finals.contains(String($0.dropLast(4)))) },
                    "kill \(i): \(names)")
            // What is there under final names is whole: a folder with its info file loads.
            if names.contains(EmbeddingIndexWriter.infoFile) {
                #expect((try? EmbeddingIndex(directory: out)) != nil, "kill \(i): \(names) does not load")
            }
            let again = try TestProcess.run(Self.bin("mulan-embed"), arguments + ["--out", out])
            #expect(again.status == 0, "kill \(i): \(again.stderr)")
            let after = try FileManager.default.contentsOfDirectory(atPath: out)
            #expect(Set(after) == finals, "kill \(i): \(after)")
            #expect(try bytes(out) == bytes(straight), "kill \(i): the re-run wrote other bytes")
        }
    }
}
