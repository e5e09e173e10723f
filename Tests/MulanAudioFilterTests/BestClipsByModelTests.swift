import Foundation
import MulanAudioFilter
@testable import MulanCatalog
import MulanCore
import MulanFormats
import MulanIngest
import MulanRecords
import MulanTestSupport
import MulanTraining
import Testing

/// `mulan-ingest --clip-policy best:N --clip-model`: the candidates ranked by the zero-shot scores
/// of the tiny model `FilterCorpus` trains (shared with the filter's end-to-end tests).
@Suite("best:N ranked by a model", .serialized)
struct BestClipsByModelTests {
    static func corpus() throws -> FilterCorpus { try FilterCorpus.shared.get() }

    /// One prompt per family, as the filter's tests use them.
    static let prompts = FilterCorpus.families.map { Prompt(name: $0, text: $0) }
    static var promptArguments: [String] { prompts.flatMap { ["--clip-prompt", "\($0.name)=\($0.text)"] } }
    static let rule = "piano - others"

    /// A 16 kHz mono FLAC of 10-s sections taken from corpus tracks of `families` (one track per
    /// family, the same track again for a repeated family, from a later point), so that the grid
    /// clips of `--clip-seconds 10` are exactly the sections.
    static func sections(_ families: [String], corpus c: FilterCorpus, to path: String) throws {
        let reader = try CSVReader(path: c.corpus + "/ground-truth.csv")
        var header: [String] = []
        var pathOf: [String: String] = [:]
        while let record = try reader.next() {
            if header.isEmpty { header = record.fields; continue }
            let row = Dictionary(uniqueKeysWithValues: zip(header, record.fields))
            // Only tracks long enough for three sections from 2 s on, and not the broken inputs.
            guard let family = row["family"], pathOf[family] == nil, let p = row["path"], let id = row["track_id"],
                  c.truth[id] != nil, Double(row["duration_s"] ?? "") ?? 0 >= 35 else { continue }
            pathOf[family] = p.hasPrefix("/") ? p : c.corpus + "/" + p
        }
        var inputs: [String] = []
        var filters: [String] = []
        var used: [String: Int] = [:]
        for (i, family) in families.enumerated() {
            let source = try #require(pathOf[family], "no \(family) track in the corpus")
            inputs += ["-i", source]
            let start = 2 + 11 * used[family, default: 0]
            used[family, default: 0] += 1
            filters.append("[\(i):a]aresample=16000,aformat=sample_fmts=fltp:channel_layouts=mono,"
                           + "atrim=start=\(start):duration=10,asetpts=N/SR/TB[s\(i)]")
        }
        let graph = filters.joined(separator: ";") + ";" + families.indices.map { "[s\($0)]" }.joined()
            + "concat=n=\(families.count):v=0:a=1"
        try TestProcess.ffmpeg(inputs + ["-filter_complex", graph, "-ar", "16000", "-ac", "1", "-c:a", "flac", path])
    }

    /// The rank score of every grid candidate of `path` (10-s clips at 16 kHz), computed here with
    /// the model's own `ZeroShotScorer`, independently of ingest.
    static func candidateScores(_ path: String, corpus c: FilterCorpus) throws -> [Double] {
        let samples = try Embedder.decodeFile(path, sampleRate: 16000).get()
        let clip = 160_000
        let clips = (0..<(samples.count / clip)).map { Array(samples[($0 * clip)..<(($0 + 1) * clip)]) }
        let checkpoint = try Embedder.resolveCheckpoint(nil, runDirectory: c.run)
        let scorer = try ZeroShotScorer(embedder: try Embedder(checkpoint: checkpoint, vocabulary: c.vocab), prompts: prompts)
        let names = prompts.map(\.name)
        return try scorer.scores(clips: clips).map { s in
            let s = try #require(s)
            let piano = Double(s[names.firstIndex(of: "piano")!])
            let others = zip(names, s).filter { $0.0 != "piano" }.map { Double($0.1) }.max()!
            return piano - others
        }
    }

    /// (clip index, rank score) of the kept clips, from the track's detail.
    static func detailScores(_ detail: String) -> [(index: Int, score: Double)] {
        let regex = try! NSRegularExpression(pattern: #"clip (\d+) \((-?[0-9.]+)\)"#)
        return regex.matches(in: detail, range: NSRange(detail.startIndex..., in: detail)).map { m in
            (Int(detail[Range(m.range(at: 1), in: detail)!])!, Double(detail[Range(m.range(at: 2), in: detail)!])!)
        }
    }

    func ingest(_ h: IngestHarness, _ c: FilterCorpus, _ extra: [String] = [], report: String = "r.json",
                jobs: Int = 2) throws -> ProcessResult {
        try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--sample-rate", "16000", "--clip-policy", "best:2",
                      "--clip-model", c.run, "--clip-vocab", c.vocab, "--clip-score", Self.rule, "--jobs", "\(jobs)",
                      "--report", h.dir.file(report)] + Self.promptArguments + extra)
    }

    /// The kept clips are the top N of every grid candidate by the model's score, computed here;
    /// the piano sections of a track made of piano and other instruments win; two workers scoring
    /// at once choose what one would; the detail and the report say what ranked them.
    @Test func keepsTheCandidatesTheModelScoresHighest() throws {
        let c = try Self.corpus()
        let h = IngestHarness()
        let families = ["guitar", "piano", "bass", "organ", "piano", "brass"]
        try Self.sections(families, corpus: c, to: h.dir.file("mix.flac"))
        try h.dir.write("m.csv", "track_id,path\nmix,mix.flac\nmix2,mix.flac\n")
        let started = Date()
        let r = try ingest(h, c)
        let seconds = Date().timeIntervalSince(started)
        try #require(r.status == 0, "\(r.stderr)")

        let expected = try Self.candidateScores(h.dir.file("mix.flac"), corpus: c)
        #expect(expected.count == families.count)
        let top = expected.indices.sorted { expected[$0] != expected[$1] ? expected[$0] > expected[$1] : $0 < $1 }
        let topTwo = Array(top.prefix(2)).sorted()
        // No near-tie at the cut, or float noise could decide it.
        #expect(expected[top[1]] - expected[top[2]] > 1e-3, "\(expected)")
        let rows = try h.catalog().database.rows("""
            SELECT t.track_id, c.clip_index, t.detail FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' ORDER BY t.track_id, c.clip_index
            """)
        let kept = Dictionary(grouping: rows, by: { $0[0].string ?? "" }).mapValues { $0.map { $0[1].int ?? -1 } }
        #expect(kept["mix"] == topTwo, "scores \(expected)")
        #expect(kept["mix2"] == topTwo, "the second worker's track")
        // The model hears the piano sections (1 and 4) best; measured with the seed-1 model on the
        // seed-3 corpus (see the printout).
        #expect(topTwo == [1, 4], "scores \(expected)")

        let detail = try #require(rows.first?[2].string)
        #expect(detail.hasPrefix("best:2 by zero-shot \"piano - others\" of 6 candidates: clip "), "\(detail)")
        let fromDetail = Self.detailScores(detail)
        #expect(fromDetail.map(\.index) == topTwo)
        for (index, score) in fromDetail { #expect(abs(score - expected[index]) < 2e-4, "clip \(index): \(score) vs \(expected[index])") }
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["clip_ranking"] as? String == "zero-shot \"piano - others\"")
        #expect(r.stdoutText.contains("candidates ranked by zero-shot \"piano - others\""), "\(r.stdoutText)")
        print("best:2 by \(Self.rule) over \(families): rank scores " + expected.map { String(format: "%.4f", $0) }
              .joined(separator: ", ") + String(format: "; kept %@; ingest of 2 × 60 s took %.1f s", "\(topTwo)", seconds))
    }

    /// A kept clip's rank score is what `mulan-filter audio` stores for that clip (with the same
    /// model and prompts): the filter scores the stored FLAC, ingest the samples before encoding.
    @Test func theRankScoreIsTheFiltersScore() throws {
        let c = try Self.corpus()
        let h = IngestHarness()
        try Self.sections(["strings", "piano", "synth", "piano"], corpus: c, to: h.dir.file("mix.flac"))
        try h.dir.write("m.csv", "track_id,path\nmix,mix.flac\n")
        let r = try ingest(h, c)
        try #require(r.status == 0, "\(r.stderr)")
        let prompts = Self.prompts.flatMap { ["--prompt", "\($0.name)=\($0.text)"] }
        let f = try h.filter(["audio", "--model", c.run, "--vocab", c.vocab, "--keep", "piano > others", "--threads", "2"] + prompts)
        try #require(f.status == 0, "\(f.stderr)")
        let rows = try h.catalog().database.rows("""
            SELECT c.clip_index, s.scores, t.detail FROM clips c JOIN tracks t ON t.id = c.track_rowid
            JOIN audio_scores s ON s.clip_id = c.id WHERE c.status = 'kept' ORDER BY c.clip_index
            """)
        try #require(rows.count == 2)
        let independent = try Self.candidateScores(h.dir.file("mix.flac"), corpus: c)
        let fromDetail = Dictionary(uniqueKeysWithValues: Self.detailScores(rows[0][2].string ?? "").map { ($0.index, $0.score) })
        var worst = 0.0
        for row in rows {
            let index = try #require(row[0].int)
            let json = try #require(row[1].string)
            let scores = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Double])
            let filterScore = scores["piano"]! - scores.filter { $0.key != "piano" }.values.max()!
            let rankScore = try #require(fromDetail[index])
            // The detail rounds to 4 decimals. Measured (2026-11-26): the in-memory score of the 16-bit source is within
            // 1e-6 of the filter's score of the stored 16-bit FLAC.
            #expect(abs(rankScore - filterScore) < 1e-4 + 5e-5, "clip \(index): rank \(rankScore), filter \(filterScore)")
            #expect(abs(independent[index] - filterScore) < 1e-5, "clip \(index): \(independent[index]) vs \(filterScore)")
            worst = max(worst, abs(independent[index] - filterScore))
        }
        print(String(format: "rank score vs mulan-filter audio's score of the stored clip: largest difference %.2g", worst))
    }

    /// The settings key names the checkpoint and the vocabulary by content, the prompts and the
    /// rule: the same model and prompts leave a track unchanged, another prompt or rule re-ingests.
    @Test func theSettingsKeyFollowsTheModelThePromptsAndTheRule() throws {
        let c = try Self.corpus()
        let checkpoint = try Embedder.resolveCheckpoint(nil, runDirectory: c.run)
        func scorer(_ path: String, _ prompts: [Prompt] = Self.prompts, rule: String = Self.rule) throws -> ZeroShotClipScorer {
            try ZeroShotClipScorer(checkpoint: path, vocabulary: c.vocab, prompts: prompts,
                                   rule: try ClipRankRule(parsing: rule), ingestSampleRate: 16000)
        }
        let base = try scorer(checkpoint)
        let tmp = TempDir("best-model-key")
        let copy = tmp.file("elsewhere.safetensors")
        try FileManager.default.copyItem(atPath: checkpoint, toPath: copy)
        let sha = try SHA256Digest.hex(ofFile: checkpoint).digest
        #expect(base.key?.contains("checkpoint=\(sha)") == true, "\(base.key ?? "nil")")
        #expect(try scorer(copy).key == base.key, "the same content elsewhere")
        #expect(try scorer(checkpoint, Self.prompts.reversed()).key == base.key, "prompt order changes no score")
        var other = Self.prompts
        other[0].text = "solo piano music"
        #expect(try scorer(checkpoint, other).key != base.key)
        #expect(try scorer(checkpoint, rule: "piano").key != base.key)
        // A window ingest calls silent is not embedded (BestClips scores it −∞ without asking the
        // scorer: ClipPolicyTests.aSilentClipIsNotScored), though the model itself would score it.
        let silence = [Float](repeating: 0, count: 160_000)
        #expect(base.promptScores(silence) != nil, "the model itself would score it")
        var settings = IngestSettings()
        settings.clipPolicy = .best(2)
        let loudness = settings.key(startSeconds: nil, endSeconds: nil)
        #expect(!loudness.contains("rank="), "ranking by loudness keeps the keys of earlier runs")
        settings.clipRanking = base.key
        #expect(settings.key(startSeconds: nil, endSeconds: nil) == loudness + ";rank=" + base.key!)

        // End to end: a re-run with the same model and prompts is a no-op; another prompt re-ingests.
        let h = IngestHarness()
        try Self.sections(["guitar", "piano"], corpus: c, to: h.dir.file("mix.flac"))
        try h.dir.write("m.csv", "track_id,path\nmix,mix.flac\n")
        try #require(try ingest(h, c, report: "1.json").status == 0)
        let first = try IngestHarness.snapshot(try h.catalog())
        try #require(try ingest(h, c, report: "2.json").status == 0)
        #expect(try h.report(h.dir.file("2.json"))["tracks_skipped"] as? Int == 1)
        #expect(try IngestHarness.snapshot(try h.catalog()).tracks == first.tracks)
        let again = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--clip-policy", "best:2", "--clip-model", c.run,
                                  "--clip-vocab", c.vocab, "--clip-prompt", "piano=solo piano", "--clip-prompt", "guitar=guitar",
                                  "--clip-score", "piano - guitar", "--report", h.dir.file("3.json")])
        try #require(again.status == 0, "\(again.stderr)")
        #expect(try h.report(h.dir.file("3.json"))["tracks_ingested"] as? Int == 1)
        let loud = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--clip-policy", "best:2",
                                 "--report", h.dir.file("4.json")])
        try #require(loud.status == 0, "\(loud.stderr)")
        #expect(try h.report(h.dir.file("4.json"))["tracks_ingested"] as? Int == 1, "back to loudness")
        let detail = try h.catalog().database.row("SELECT detail FROM tracks")?[0].string ?? ""
        #expect(detail.hasPrefix("best:2 by loudness of 2 candidates: clip 0 ("), "\(detail)")
    }

    /// Wrong combinations stop before any track, with exit 64 and what to do.
    @Test func usageErrors() throws {
        let c = try Self.corpus()
        let h = IngestHarness()
        try h.dir.write("m.csv", "track_id,path\nx,x.flac\n")
        let empty = h.dir.file("empty-run")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let model = ["--clip-model", c.run, "--clip-vocab", c.vocab]
        let cases: [(args: [String], message: String)] = [
            (model + ["--clip-prompt", "piano=piano"], "--clip-model ranks the candidates of --clip-policy best:N, but the policy is all"),
            (["--clip-policy", "best:1", "--clip-prompt", "piano=piano"], "--clip-prompt is for ranking best:N with a model, but no --clip-model"),
            (["--clip-policy", "best:1", "--clip-model", c.run, "--clip-prompt", "piano=piano"], "needs the vocabulary"),
            (["--clip-policy", "best:1"] + model, "needs at least one prompt"),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "piano"], "--clip-prompt \"piano\" has no name"),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "1piano=piano"],
             "e.g. --clip-prompt solo_piano=\"solo piano\""),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "piano=piano", "--clip-prompt", "organ=organ"],
             "with 2 --clip-prompt, say which score ranks the candidates"),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "piano=piano", "--clip-score", "pianno"],
             "\"pianno\" is not a prompt"),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "piano=piano", "--clip-score", "piano - others"],
             "there is no other prompt"),
            (["--clip-policy", "best:1"] + model + ["--clip-prompt", "piano=piano", "--clip-score", "piano > organ"],
             "is not a score rule"),
            (["--clip-policy", "best:1", "--clip-model", h.dir.file("nothing"), "--clip-vocab", c.vocab, "--clip-prompt", "a=b"],
             "--clip-model \(h.dir.file("nothing")) does not exist"),
            (["--clip-policy", "best:1", "--clip-model", empty, "--clip-vocab", c.vocab, "--clip-prompt", "a=b"],
             "holds no checkpoint"),
            (["--clip-policy", "best:1", "--sample-rate", "22050"] + model + ["--clip-prompt", "a=b"],
             "was trained on 16000 Hz audio but --sample-rate is 22050 Hz"),
        ]
        for (args, message) in cases {
            let r = try h.ingest(["--manifest", "m.csv"] + args)
            #expect(r.status == 64 && r.stderr.contains(message), "\(args): \(r.status) \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: h.workdir + "/catalog.sqlite"), "nothing was ingested")
    }

    @Test func rankRules() throws {
        let names = ["music", "speech", "noise"]
        let scores: [Float] = [0.5, 0.25, 0.375]
        #expect(try ClipRankRule(parsing: "music").value(scores: scores, prompts: names) == 0.5)
        #expect(try ClipRankRule(parsing: " music-speech ").value(scores: scores, prompts: names) == 0.25)
        let others = try ClipRankRule(parsing: "music - others")
        #expect(others.value(scores: scores, prompts: names) == 0.125)
        #expect(others.description == "music - others")
        #expect(try ClipRankRule(parsing: "speech - others").value(scores: scores, prompts: names) == -0.25)
        for bad in ["", "others", "music - ", "music - speech - noise", "1music", "music + speech"] {
            #expect(throws: MulanError.self, "\(bad)") { _ = try ClipRankRule(parsing: bad) }
        }
        #expect(throws: MulanError.self) { try ClipRankRule(parsing: "music - music").check(prompts: names) }
    }
}
