import Foundation
@testable import MulanCatalog
import MulanCore
import MulanFormats
import MulanRecords
import MulanTestSupport
import MulanTraining
import Testing

/// A small labeled demo corpus (scripts/make-demo-corpus.py), ingested, sharded and used to train
/// a tiny model once for the suite; the tests then filter its clips with `mulan-filter audio`.
///
/// The model is trained on every track's true instrument family as its only tag (no weak text),
/// on 10-s clips of all tracks: these tests are about the filter, and its use — scoring the very
/// corpus a first model was trained on, to clean it for a second round. A tiny model learns the
/// families only partly in a few hundred steps, so the precision and recall asserted here are
/// "well above chance", not the demo model's (docs/audio-filter.md has those).
struct FilterCorpus: Sendable {
    static let families = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth"]
    static let tracks = 24
    static let seed = 3

    let harness: IngestHarness
    let corpus: String
    let run: String
    let vocab: String
    /// Track id → (family, split), from ground-truth.csv (never read by the pipeline).
    let truth: [String: (family: String, split: String)]
    /// dataset.json of the dataset sharded before any audio filter ran.
    let firstDatasetPath: String
    var firstDataset: [String: Any] { (try? harness.report(firstDatasetPath)) ?? [:] }

    static let shared: Result<FilterCorpus, any Error> = Result { try build() }

    static func build() throws -> FilterCorpus {
        let h = IngestHarness()
        let corpus = h.dir.file("corpus")
        // One soundfont (FluidR3, as before the demo corpus had several): these tests are about the filter.
        let made = try TestProcess.run("python3", [TestPaths.packageRoot + "/scripts/make-demo-corpus.py", "--out", corpus,
                                                   "--tracks", "\(tracks)", "--seed", "\(seed)", "--soundfonts", "fluidr3", "--production", "plain",
                                                   "--jobs", "2"])
        guard made.status == 0 else {
            throw TestFailure("make-demo-corpus.py failed (\(made.status)); it needs fluidsynth, fluid-soundfont-gm and ffmpeg: "
                              + made.stderr)
        }
        var truth: [String: (String, String)] = [:]
        let reader = try CSVReader(path: corpus + "/ground-truth.csv")
        var header: [String] = []
        while let record = try reader.next() {
            if header.isEmpty { header = record.fields; continue }
            let row = Dictionary(uniqueKeysWithValues: zip(header, record.fields))
            if let id = row["track_id"], let family = row["family"], let split = row["split"] { truth[id] = (family, split) }
        }
        // Every track in train (the manifest's last column is the split).
        let manifest = try String(contentsOfFile: corpus + "/manifest.csv", encoding: .utf8)
        let lines = manifest.split(separator: "\n").enumerated().map { i, line -> String in
            guard i > 0, let comma = line.lastIndex(of: ",") else { return String(line) }
            return line[...comma] + "train"
        }
        let allTrain = try h.dir.write("corpus/manifest-all-train.csv", lines.joined(separator: "\n") + "\n")
        // Ingest exits 3: the corpus has broken inputs on purpose.
        let ingest = try h.ingest(["audio", "--manifest", allTrain, "--sample-rate", "16000", "--clip-seconds", "10"])
        guard ingest.status == 3 else { throw TestFailure("ingest: \(ingest.status) \(ingest.stderr)") }
        let tags = truth.keys.sorted().map { "{\"track_id\": \"\($0)\", \"tags\": [\"\(truth[$0]!.0)\"]}" }
        let tagFile = try h.dir.write("family-tags.jsonl", tags.joined(separator: "\n") + "\n")
        let text = try h.ingest(["text", "--format", "generic", tagFile])
        guard text.status == 0 else { throw TestFailure("text: \(text.stderr)") }
        let vocab = try TestPython.bertVocabulary()
        let filter = try h.filter(["--source", "tags", "--vocab", vocab])
        guard filter.status == 0 else { throw TestFailure("filter: \(filter.stderr)") }
        let shard = try h.shard(["--samples-per-shard", "32"])
        guard shard.status == 0 else { throw TestFailure("shard: \(shard.stderr)") }
        // Keep the first dataset's manifest: shards/latest moves on.
        let first = h.dir.file("first-dataset.json")
        try FileManager.default.copyItem(atPath: h.workdir + "/shards/latest/dataset.json", toPath: first)
        let run = h.dir.file("run")
        let train = try TestProcess.run(TestPaths.executable("mulan-train"), [
            "--dataset", h.workdir + "/shards/latest", "--run-dir", run,
            "--batch-size", "12", "--audio-widths", "8,16", "--mel-bands", "32", "--text-width", "32",
            "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16",
            "--window-seconds", "4", "--shuffle-buffer", "64", "--steps", "300", "--lr", "2e-3", "--warmup-steps", "20",
            "--eval-every", "1000", "--checkpoint-every", "1000", "--log-every", "50", "--threads", "2", "--seed", "1", "--quiet"])
        guard train.status == 0 else { throw TestFailure("train: \(train.stderr)") }
        return FilterCorpus(harness: h, corpus: corpus, run: run, vocab: vocab,
                            truth: truth.mapValues { (family: $0.0, split: $0.1) }, firstDatasetPath: first)
    }

    /// Runs `mulan-filter audio` with one prompt per family (its name as the text) and `keep`.
    func filter(_ keep: [String], report: String) throws -> ProcessResult {
        let prompts = Self.families.flatMap { ["--prompt", "\($0)=\($0)"] }
        return try harness.filter(["audio", "--model", run, "--vocab", vocab, "--report", harness.dir.file(report),
                                   "--threads", "2"] + prompts + keep.flatMap { ["--keep", $0] })
    }

    func report(_ name: String) throws -> [String: Any] { try harness.report(harness.dir.file(name)) }

    /// (clip id, track id, status, reason, detail) of every decision of a version.
    func decisions(_ version: String) throws -> [(clip: Int, track: String, status: String, reason: String, detail: String)] {
        try harness.catalog().database.rows(
            "SELECT clip_id, track_id, status, reason, detail FROM audio_decisions WHERE version = ? ORDER BY clip_id", [version])
            .map { ($0[0].int ?? -1, $0[1].string ?? "", $0[2].string ?? "", $0[3].string ?? "", $0[4].string ?? "") }
    }

    /// Kept clips of ingested tracks: what the filter decides.
    func clipCount() throws -> Int {
        try harness.catalog().count("SELECT COUNT(*) FROM clips c JOIN tracks t ON t.id = c.track_rowid "
                                    + "WHERE c.status = 'kept' AND t.status = 'ingested'")
    }
}

/// Precision and recall of kept clips against the clips of one family.
struct Retrieval: CustomStringConvertible {
    var truePositives = 0, kept = 0, relevant = 0
    var precision: Double { kept == 0 ? 0 : Double(truePositives) / Double(kept) }
    var recall: Double { relevant == 0 ? 0 : Double(truePositives) / Double(relevant) }
    var description: String { String(format: "precision %.2f (%d/%d), recall %.2f (%d/%d)", precision, truePositives, kept,
                                     recall, truePositives, relevant) }

    init(_ decisions: [(clip: Int, track: String, status: String, reason: String, detail: String)],
         family: String, truth: [String: (family: String, split: String)], split: String? = nil) {
        for d in decisions {
            guard let t = truth[d.track], split == nil || t.split == split else { continue }
            let relevant = t.family == family, kept = d.status == "kept"
            if relevant { self.relevant += 1 }
            if kept { self.kept += 1 }
            if relevant && kept { truePositives += 1 }
        }
    }
}

@Suite("mulan-filter audio end to end", .serialized)
struct AudioFilterEndToEndTests {
    static func corpus() throws -> FilterCorpus { try FilterCorpus.shared.get() }

    @Test func keepingAnInstrumentKeepsItsTracksAndRecordsEveryDecision() throws {
        let c = try Self.corpus()
        let clips = try c.clipCount()
        try #require(clips >= FilterCorpus.tracks, "at least one clip per track")
        var all = Retrieval([], family: "", truth: [:])
        var lines: [String] = []
        var versions: Set<String> = []
        var labeled = 0
        for (i, family) in FilterCorpus.families.enumerated() {
            let r = try c.filter(["\(family) > others"], report: "\(family).json")
            try #require(r.status == 0, "\(family): \(r.stderr)")
            let report = try c.report("\(family).json")
            let version = try #require(report["version"] as? String)
            versions.insert(version)
            // The first run embeds every clip (unless another test did); the others share its scores
            // (same model and prompts).
            let scored = report["scored_this_run"] as? Int ?? -1, reused = report["scores_reused"] as? Int ?? -1
            #expect(scored + reused == clips && (i == 0 || scored == 0), "\(report)")
            #expect(report["clips_total"] as? Int == clips)
            #expect(Set((report["score_distribution"] as? [String: Any] ?? [:]).keys) == Set(FilterCorpus.families))
            // Every clip has a decision; a dropped one names the rule and the numbers.
            let decisions = try c.decisions(version)
            #expect(decisions.count == clips)
            labeled = decisions.filter { c.truth[$0.track] != nil }.count
            #expect(decisions.filter { $0.status == "kept" }.count == report["kept"] as? Int)
            for d in decisions where d.status == "dropped" {
                #expect(d.reason == "\(family) > others", "\(d)")
                #expect(d.detail.hasPrefix("\(family) 0.") || d.detail.hasPrefix("\(family) -"), "\(d.detail)")
                #expect(d.detail.contains(" ≤ ") && d.detail.contains("scores: piano "), "\(d.detail)")
            }
            let every = Retrieval(decisions, family: family, truth: c.truth)
            lines.append("\(family) > others: \(every)")
            all.truePositives += every.truePositives; all.kept += every.kept; all.relevant += every.relevant
            if family == "piano" {
                // The issue's example: keeping "piano" keeps the piano tracks (chance precision 1/8).
                // Measured (2026-11-26): precision 1.00 (10/10), recall 1.00 (10/10).
                #expect(every.precision >= 0.7 && every.recall >= 0.7, "piano: \(every)")
            }
        }
        #expect(versions.count == FilterCorpus.families.count)
        // Pooled over the eight families (each clip kept by exactly its best-scoring family's run).
        lines.append("pooled over the families: \(all)")
        print("mulan-filter audio on the demo corpus (\(FilterCorpus.tracks) tracks, seed \(FilterCorpus.seed), \(clips) clips):\n  "
              + lines.joined(separator: "\n  "))
        #expect(all.kept == labeled, "every clip has exactly one best family")
        // Measured (2026-11-26): 0.70 (89/128); chance 0.125.
        #expect(all.precision >= 0.5, "\(all) (chance 0.125)")
    }

    @Test func marginsThresholdsMeasuresAndBadRules() throws {
        let c = try Self.corpus()
        let clips = try c.clipCount()
        // piano > guitar keeps every piano clip the piano-vs-everything rule keeps, and more.
        let pair = try c.filter(["piano > guitar"], report: "pair.json")
        try #require(pair.status == 0, "\(pair.stderr)")
        let strict = try c.filter(["piano > others"], report: "strict.json")
        try #require(strict.status == 0, "\(strict.stderr)")
        let pairKept = try c.report("pair.json")["kept"] as? Int ?? 0
        let strictKept = try c.report("strict.json")["kept"] as? Int ?? 0
        #expect(pairKept >= strictKept && strictKept > 0)
        // A margin keeps fewer; a threshold no clip reaches keeps none; rules all must hold.
        let margin = try c.filter(["piano > others + 0.05"], report: "margin.json")
        try #require(margin.status == 0, "\(margin.stderr)")
        #expect((try c.report("margin.json")["kept"] as? Int ?? -1) <= strictKept)
        let none = try c.filter(["piano > guitar", "piano >= 1.01"], report: "none.json")
        try #require(none.status == 0, "\(none.stderr)")
        let noneReport = try c.report("none.json")
        #expect(noneReport["kept"] as? Int == 0)
        // The first failing rule is the reason.
        let reasons = noneReport["dropped_by_reason"] as? [String: Int] ?? [:]
        #expect(reasons["piano >= 1.01"] == pairKept && reasons["piano > guitar"] == clips - pairKept, "\(reasons)")
        // Clip measures from the catalog: every clip of the corpus is louder than -60 dBFS, none above 0.
        let loud = try c.filter(["rms_db > -60", "silence_share < 0.9"], report: "loud.json")
        try #require(loud.status == 0, "\(loud.stderr)")
        #expect(try c.report("loud.json")["kept"] as? Int == clips)
        let hot = try c.filter(["peak_db > 0"], report: "hot.json")
        let hotReasons = try c.report("hot.json")["dropped_by_reason"] as? [String: Int]
        #expect(hot.status == 0 && hotReasons == ["peak_db > 0": clips])
        #expect(hot.stdoutText.contains("audio filter version") && hot.stdoutText.contains("peak_db > 0"), "\(hot.stdoutText)")
        // EBU R128 loudness measured by ingest: every clip lies between -70 LUFS and full scale.
        let measured = try c.filter(["lufs > -70", "lufs < 0", "true_peak_db < 3"], report: "lufs.json")
        try #require(measured.status == 0, "\(measured.stderr)")
        #expect(try c.report("lufs.json")["kept"] as? Int == clips)

        // Bad rules and prompts: exit 64 before the model loads, naming the rule and the problem.
        let typo = try c.filter(["pianno > guitar"], report: "x.json")
        #expect(typo.status == 64 && typo.stderr.contains("\"pianno\" is neither a prompt"), "\(typo.stderr)")
        let syntax = try c.filter(["piano >> guitar"], report: "x.json")
        #expect(syntax.status == 64 && syntax.stderr.contains("--keep \"piano >> guitar\""), "\(syntax.stderr)")
        let noPrompt = try c.harness.filter(["audio", "--model", c.run, "--vocab", c.vocab, "--keep", "a > b"])
        #expect(noPrompt.status == 64, "\(noPrompt.stderr)")
        let noModel = try c.harness.filter(["audio", "--model", c.harness.dir.file("nothing"), "--vocab", c.vocab,
                                            "--prompt", "a=b"])
        #expect(noModel.status == 64 && noModel.stderr.contains("--model") && noModel.stderr.contains("nothing"),
                "\(noModel.stderr)")
    }

    @Test func aReRunIsANoOpAndAKilledRunResumes() throws {
        let c = try Self.corpus()
        let clips = try c.clipCount()
        let first = try c.filter(["organ > others"], report: "organ-1.json")
        try #require(first.status == 0, "\(first.stderr)")
        let version = try #require(try c.report("organ-1.json")["version"] as? String)
        let before = try c.decisions(version).map { "\($0)" }
        let again = try c.filter(["organ > others"], report: "organ-2.json")
        try #require(again.status == 0, "\(again.stderr)")
        let second = try c.report("organ-2.json")
        #expect(second["version"] as? String == version)
        #expect(second["scored_this_run"] as? Int == 0 && second["decided_this_run"] as? Int == 0, "\(second)")
        #expect(try c.decisions(version).map { "\($0)" } == before)

        // New prompts (a new score set): kill -9 while it embeds, then finish.
        let prompts = FilterCorpus.families.flatMap { ["--prompt", "\($0)=\($0) music"] }
        let args = ["audio", "--model", c.run, "--vocab", c.vocab, "--keep", "piano > others", "--batch", "4", "--threads", "1",
                    "--workdir", c.harness.workdir, "--quiet"] + prompts
        for delay in [0.8, 1.6] {
            try KillHarness.runAndKill(IngestHarness.filterBinary, args, after: delay)
        }
        let catalog = try c.harness.catalog()
        let partial = try catalog.count("SELECT COUNT(*) FROM audio_decisions d JOIN audio_filter_versions v ON v.version = d.version "
                                        + "WHERE v.prompts LIKE '%piano music%'")
        let resumed = try TestProcess.run(IngestHarness.filterBinary, args + ["--report", c.harness.dir.file("resumed.json")])
        try #require(resumed.status == 0, "\(resumed.stderr)")
        let report = try c.report("resumed.json")
        #expect(report["decided_this_run"] as? Int == clips - partial, "\(report); \(partial) decided before the kill")
        let resumedVersion = try #require(report["version"] as? String)
        let decisions = try c.decisions(resumedVersion)
        #expect(decisions.count == clips && Set(decisions.map(\.clip)).count == clips)
        // Each clip scored once: no duplicate or missing score rows.
        let set = try #require(report["score_set"] as? String)
        #expect(try catalog.count("SELECT COUNT(*) FROM audio_scores WHERE score_set = ? AND scores IS NOT NULL", [set]) == clips)
        // The decisions equal those of an uninterrupted run's rules on the stored scores: a rerun decides nothing.
        let idle = try TestProcess.run(IngestHarness.filterBinary, args + ["--report", c.harness.dir.file("idle.json")])
        let idleDecided = try c.report("idle.json")["decided_this_run"] as? Int
        #expect(idle.status == 0 && idleDecided == 0)
    }

    @Test func shardsLeaveOutDroppedClipsAndCountThemByReason() throws {
        let c = try Self.corpus()
        let r = try c.filter(["piano > others"], report: "shard-filter.json")
        try #require(r.status == 0, "\(r.stderr)")
        let report = try c.report("shard-filter.json")
        let version = try #require(report["version"] as? String)
        func samples(_ dataset: [String: Any]) -> Int {
            (dataset["splits"] as? [String: [String: Any]] ?? [:]).values.reduce(0) { $0 + ($1["samples"] as? Int ?? 0) }
        }
        let before = samples(c.firstDataset)
        #expect(c.firstDataset["audio_filter_version"] == nil && c.firstDataset["clips_dropped_by_audio_filter"] == nil)

        // The version run last applies by default.
        let out = c.harness.dir.file("filtered")
        let shard = try c.harness.shard(["--samples-per-shard", "32", "--out", out])
        try #require(shard.status == 0, "\(shard.stderr)")
        let dataset = try c.harness.report(out + "/dataset.json")
        #expect(dataset["audio_filter_version"] as? String == version)
        let dropped = dataset["clips_dropped_by_audio_filter"] as? [String: Int] ?? [:]
        // Clips of tracks with text (the broken inputs have none and are not in any dataset).
        let decisions = try c.decisions(version).filter { c.truth[$0.track] != nil }
        let droppedWithText = decisions.filter { $0.status == "dropped" }.count
        #expect(dropped == ["piano > others": droppedWithText], "\(dropped) vs \(report)")
        #expect(samples(dataset) == before - droppedWithText)
        #expect(samples(dataset) == decisions.count - droppedWithText)
        #expect(dataset["dataset_id"] as? String != c.firstDataset["dataset_id"] as? String)
        #expect(shard.stdoutText.contains("clips left out (audio filter \(version))"), "\(shard.stdoutText)")
        let compact = String(decoding: try JSONSerialization.data(withJSONObject: dataset), as: UTF8.self)
        #expect(try SchemaValidator.validate([compact], schema: "dataset.schema.json") == [nil])
        // The filter's --report follows its schema.
        let reportJSON = String(decoding: try JSONSerialization.data(withJSONObject: report), as: UTF8.self)
        #expect(try SchemaValidator.validate([reportJSON], schema: "audio-filter-report.schema.json") == [nil])
        // The shards hold exactly the clips the version kept: their samples' (track, clip index).
        var inShards: [String] = []
        for split in (dataset["splits"] as? [String: [String: Any]] ?? [:]).keys {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: out + "/" + split)) ?? [] where name.hasSuffix(".tar") {
                let members = try TestProcess.run("tar", ["-xOf", out + "/" + split + "/" + name, "--wildcards", "*.json"])
                let text = members.stdoutText
                let pattern = try NSRegularExpression(pattern: "\"clip_index\":([0-9]+).*?\"track_id\":\"([^\"]+)\"")
                for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    if let index = Range(m.range(at: 1), in: text), let track = Range(m.range(at: 2), in: text) {
                        inShards.append("\(text[track])#\(text[index])")
                    }
                }
            }
        }
        let keptClips = try c.harness.catalog().database.rows("""
            SELECT t.track_id, c.clip_index FROM audio_decisions d JOIN clips c ON c.id = d.clip_id
            JOIN tracks t ON t.id = c.track_rowid WHERE d.version = ? AND d.status = 'kept'
            """, [version]).filter { c.truth[$0[0].string ?? ""] != nil }.map { "\($0[0].string ?? "")#\($0[1].int ?? -1)" }
        #expect(inShards.sorted() == keptClips.sorted())
        let verify = try c.harness.shard(["verify", out])
        #expect(verify.status == 0, "\(verify.stdoutText)\(verify.stderr)")

        // --audio-filter-version none: the dataset of before, byte for byte the same id.
        let plain = try c.harness.shard(["--samples-per-shard", "32", "--out", c.harness.dir.file("plain"),
                                         "--audio-filter-version", "none"])
        try #require(plain.status == 0, "\(plain.stderr)")
        let unfiltered = try c.harness.report(c.harness.dir.file("plain/dataset.json"))
        #expect(unfiltered["dataset_id"] as? String == c.firstDataset["dataset_id"] as? String)
        #expect(samples(unfiltered) == before)
        // A named version that does not exist is refused.
        let unknown = try c.harness.shard(["--audio-filter-version", "audio-000000000000", "--out", c.harness.dir.file("x")])
        #expect(unknown.status == 64 && unknown.stderr.contains("audio-000000000000"), "\(unknown.stderr)")
    }
}

/// `ZeroShotScorer`, the scoring on its own (what `best:N` in ingest can reuse).
@Suite("zero-shot scorer", .serialized)
struct ZeroShotScorerTests {
    @Test func windowScoresAgreeWithTheClipScore() throws {
        let c = try FilterCorpus.shared.get()
        let embedder = try Embedder(checkpoint: Embedder.resolveCheckpoint(nil, runDirectory: c.run), vocabulary: c.vocab)
        let scorer = try ZeroShotScorer(embedder: embedder, prompts: FilterCorpus.families.map { Prompt(name: $0, text: $0) })
        let clip = try #require(try c.harness.catalog().database.row(
            "SELECT flac_path FROM clips WHERE status = 'kept' ORDER BY id LIMIT 1")?[0].string)
        let path = c.harness.workdir + "/" + clip
        let whole = try #require(try scorer.score([.file(path)]).first?.get())
        #expect(whole.scores.count == FilterCorpus.families.count && whole.windows == 3)
        // The clip's embedding is the renormalized mean of its (unit-norm) window embeddings, so
        // the mean of `embedWindows` scores as the clip does.
        let samples = try Embedder.decodeFile(path, sampleRate: embedder.config.logMel.sampleRate).get()
        let windows = scorer.windowScores(samples: samples)
        #expect(windows.map(\.offset) == embedder.windowOffsets(sampleCount: samples.count))
        #expect(windows.allSatisfy { $0.scores.count == FilterCorpus.families.count && $0.scores.allSatisfy { abs($0) <= 1.0001 } })
        let embeddings = embedder.embedWindows(samples, offsets: windows.map(\.offset))
        var mean = [Float](repeating: 0, count: embedder.dim)
        for e in embeddings { for j in mean.indices { mean[j] += e[j] } }
        let fromWindows = scorer.scores(embedding: mean)
        for (a, b) in zip(fromWindows, whole.scores) { #expect(abs(a - b) < 1e-3, "\(fromWindows) vs \(whole.scores)") }
        // A scored window is its own embedding's cosine with each prompt.
        #expect(zip(scorer.scores(embedding: embeddings[0]), windows[0].scores).allSatisfy { abs($0 - $1) < 1e-5 })
        // No prompt: a usage error.
        #expect(throws: MulanError.self) { try ZeroShotScorer(embedder: embedder, prompts: []) }
    }
}
