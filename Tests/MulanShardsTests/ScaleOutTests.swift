import Foundation
@testable import MulanCatalog
import MulanCore
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

/// Running the data stages as N workers (docs/scale-out.md): the partition, choosing the worker
/// from a scheduler's environment, and the pipeline on 3 concurrent worker processes per stage
/// giving the same decisions and the same shards, byte for byte, as one process.
@Suite("Scale-out across workers", .serialized)
struct ScaleOutTests {
    static var ontology: String { TestPaths.audioSetOntology }
    static var config: String { TestPaths.packageRoot + "/manifests/filters.toml" }

    // MARK: The partition and the worker's identity

    /// The partition is SHA-256 of the track id, first 8 bytes big-endian, mod N. Pinned: a change
    /// of hash would move tracks between the parts of existing work directories.
    @Test func partitionIsStable() throws {
        let pinned: [(String, Int, Int)] = [("t0", 0, 0), ("t1", 2, 2), ("t4", 0, 1), ("t6", 1, 3), ("t9", 2, 3),
                                            ("track-0001", 2, 0), ("zz-no-audio", 2, 2), ("t1000", 0, 1)]
        for (id, of3, of4) in pinned {
            #expect(WorkerSlice.worker(of: id, workers: 3) == of3, "\(id)")
            #expect(WorkerSlice.worker(of: id, workers: 4) == of4, "\(id)")
            #expect(WorkerSlice.worker(of: id, workers: 1) == 0)
        }
        #expect(WorkerSlice.trackHash("t0") == 0x512f_26ad_a3c3_d634)  // sha256("t0")[:8], big-endian
        // Every id lands in exactly one slice.
        let slices = try (0..<3).map { try WorkerSlice(index: $0, count: 3) }
        for i in 0..<200 {
            #expect(slices.filter { $0.owns(trackID: "id-\(i)") }.count == 1)
        }
        // Rows without a track id go to worker 0 only.
        #expect(slices.map { $0.owns(optionalTrackID: nil) } == [true, false, false])
    }

    @Test func environmentSelectsTheSameSliceAsFlags() throws {
        func slice(_ worker: Int?, _ workers: Int?, _ env: [String: String]) throws(MulanError) -> WorkerSlice {
            try WorkerSlice.resolve(worker: worker, workers: workers, environment: env)
        }
        let flags = try slice(1, 3, [:])
        #expect(flags == (try WorkerSlice(index: 1, count: 3)))
        #expect(try slice(nil, nil, ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"]) == flags)
        #expect(try slice(nil, nil, ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3",
                                     "SLURM_ARRAY_TASK_MIN": "1"]) == flags)
        #expect(try slice(nil, 3, ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"]) == flags)
        #expect(try slice(nil, 3, ["JOB_COMPLETION_INDEX": "1"]) == flags)
        #expect(try slice(nil, nil, ["JOB_COMPLETION_INDEX": "1", "MULAN_WORKERS": "3"]) == flags)
        #expect(try slice(nil, nil, ["MULAN_WORKER": "1", "MULAN_WORKERS": "3"]) == flags)
        #expect(try slice(nil, nil, ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3",
                                     "SLURM_ARRAY_TASK_MIN": "1", "MULAN_WORKERS": "3"]) == flags)
        // A resubmitted task (sbatch --array=1, so Slurm says task 1 of 1 with minimum 1): with the
        // count given, the task id is the worker index; likewise for some tasks of an array.
        let resubmitted = ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "1"]
        #expect(try slice(nil, nil, resubmitted.merging(["MULAN_WORKERS": "3"]) { $1 }) == flags)
        #expect(try slice(nil, 3, resubmitted) == flags)
        #expect(try slice(nil, nil, ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0",
                                     "MULAN_WORKERS": "3"]) == flags)
        #expect(try slice(nil, nil, resubmitted.merging(["MULAN_WORKER": "1", "MULAN_WORKERS": "3"]) { $1 }) == flags)
        // Explicit flags win over the environment.
        #expect(try slice(1, 3, ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "5"]) == flags)
        // Nothing: one process. --workers 1 alone: one process.
        #expect(try slice(nil, nil, [:]).isSingle)
        #expect(try slice(nil, 1, [:]).isSingle)

        func usageError(_ worker: Int?, _ workers: Int?, _ env: [String: String]) -> Bool {
            do {
                _ = try slice(worker, workers, env)
                return false
            } catch {
                return error.code == .usage
            }
        }
        #expect(usageError(3, 3, [:]))                                   // I ≥ N
        #expect(usageError(-1, 3, [:]))
        #expect(usageError(0, 0, [:]))
        #expect(usageError(nil, 2, ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"]))  // more tasks than workers
        #expect(usageError(nil, nil, ["MULAN_WORKERS": "2", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"]))
        #expect(usageError(nil, nil, ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "7",
                                      "MULAN_WORKERS": "3"]))              // resubmitted task 7 of 3 workers
        #expect(usageError(nil, nil, resubmitted))                       // resubmitted task 1 without the count
        #expect(usageError(nil, nil, ["JOB_COMPLETION_INDEX": "1"]))      // no count
        #expect(usageError(nil, 3, [:]))                                 // no index
        #expect(usageError(nil, nil, ["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3"]))
        #expect(usageError(nil, nil, ["SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "3"]))
    }

    // MARK: The pipeline on 3 workers

    /// ~14 tracks with container tags, and texts of every source: generic JSONL (tags,
    /// descriptions, aset) and playlists; duplicates and near-duplicates across tracks of
    /// different workers, playlists spanning workers, rare tags, bad records.
    static func corpus(_ dir: TempDir) throws {
        var manifest = "track_id,path,start_s,end_s,split\n"
        let genres = ["Jazz", "Rock", "Ambient", "Jazz", "Rock", "Ambient", "Jazz", "Folk", "Rock", "Jazz", "Ambient",
                      "Rock", "Jazz", "Folk"]
        for i in 0..<genres.count {
            let seconds = i % 4 == 0 ? 65.0 : 31.0
            try TestMedia.tone(dir.file("a/t\(i).ogg"), seconds: seconds, frequency: 200 + Double(i) * 53, rate: 22050,
                               tags: ["genre": genres[i],
                                      "comment": "A calm \(genres[i].lowercased()) piece with soft piano and warm strings."],
                               seed: i + 1)
            manifest += "t\(i),a/t\(i).ogg,,,\(i == 1 ? "test" : "")\n"
        }
        manifest += "bad,,,,\nt3,a/t3.ogg,,,\nmissing,a/none.ogg,,,\n"
        try dir.write("m.csv", manifest)
        try dir.write("texts.jsonl", """
            {"track_id": "t1", "tags": ["Hip-Hop", "hiphop", "favorite", "1999", "Jazz", "rare one"]}
            {"track_id": "t2", "tags": ["hip hop", "jazz", "R&B"], "aset": ["Guitar", "Speech", "Music genre"]}
            {"track_id": "t3", "tags": ["rnb", "Rhythm and Blues", "seen live"], "aset": ["Guitar", "Guitar", "Piano"]}
            {"track_id": "t4", "tags": ["jazz", "piano", "rnb", "strings"], "aset": ["Piano"]}
            {"track_id": "t5", "tags": ["piano", "calm"], "aset": ["Drum kit"]}
            {"track_id": "t6", "tags": ["calm", "strings", "piano"]}
            {"track_id": "t1", "description": "A slow, sad piano ballad with soft strings. Subscribe to my channel! Visit www.example.com for tour dates."}
            {"track_id": "t2", "description": "A slow, sad piano ballad with soft strings. Follow us on Instagram."}
            {"track_id": "t3", "description": "Energetic punk rock with shouted choruses, fast power chords, a pounding bass line, crashing cymbals and a raw garage production that sounds like it was recorded live in a small sweaty club full of people. 0:00 Intro 3:15 Outro"}
            {"track_id": "t4", "description": "Energetic punk rock with shouted choruses, fast power chords, a pounding bass line, crashing cymbals and a raw garage production that sounds like it was recorded live in a small sweaty club full of fans."}
            {"track_id": "t5", "description": "I listened to this on my way to work this morning."}
            {"track_id": "t7", "description": "A calm jazz piece with soft piano and warm strings."}
            {"track_id": "t8", "description": "A bright folk song with acoustic guitar and gentle harmonica."}
            {"track_id": "t9", "description": "A bright folk song with acoustic guitar and a gentle harmonica."}
            {"track_id": "t10", "description": "Dark ambient drones with distant bells and slowly evolving synth pads."}
            {"track_id": "t11", "description": "Dark ambient drones with distant bells and slowly evolving synth pads."}
            {"track_id": "t12", "tags": ["jazz", "calm"], "description": "A bright folk song with acoustic guitar and gentle harmonica."}
            {"track_id": "", "tags": ["x"]}
            not json
            {"track_id": "zz-no-audio", "tags": ["jazz"], "description": "A slow, sad piano ballad with soft strings."}

            """)
        try dir.write("tags.toml", "[tags]\nmax_per_track = 3\n")
        try dir.write("playlists.jsonl", """
            {"playlist_id": "p1", "title": "slow piano for sleep", "track_ids": ["t1", "t2", "t7"]}
            {"playlist_id": "p2", "title": "my mix 3", "track_ids": ["t1", "t2", "t3"]}
            {"playlist_id": "p3", "title": "road trip anthems", "track_ids": ["t3"]}
            {"playlist_id": "p4", "title": "🔥🔥🔥", "track_ids": ["t1", "t3"]}
            {"playlist_id": "p5", "title": "Slow Piano for Sleep", "track_ids": ["t1", "t4", "t9", "t10"]}
            {"playlist_id": "p6", "title": "sunday morning jazz", "track_ids": ["t0", "t5", "t6", "t8", "t11", "t13"]}
            {"playlist_id": "p7", "title": "", "track_ids": ["t0"]}

            """)
    }

    /// Runs one command in `n` concurrent worker processes (`--worker i --workers n`, or the
    /// environment) and returns their results in worker order.
    static func workers(_ binary: String, _ arguments: [String], n: Int, cwd: String,
                        environment: (Int) -> [String: String]? = { _ in nil }) throws -> [ProcessResult] {
        // Flags, or the environment a scheduler would set.
        let runs = (0..<n).map { i -> (args: [String], env: [String: String]) in
            guard let env = environment(i) else {
                return (arguments + ["--worker", "\(i)", "--workers", "\(n)"], ["MULAN_PROGRESS_INTERVAL": "0"])
            }
            return (arguments, env.merging(["MULAN_PROGRESS_INTERVAL": "0"]) { $1 })
        }
        let box = ResultBox(count: n)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            box.set(i, Result { try TestProcess.run(binary, runs[i].args, cwd: cwd, environment: runs[i].env) })
        }
        return try box.results.map { try $0!.get() }
    }

    /// Results of concurrent processes, each slot written once under the lock.
    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [Result<ProcessResult, any Error>?]
        init(count: Int) { slots = Array(repeating: nil, count: count) }
        func set(_ i: Int, _ r: Result<ProcessResult, any Error>) { lock.withLock { slots[i] = r } }
        var results: [Result<ProcessResult, any Error>?] { lock.withLock { slots } }
    }

    struct Pipeline {
        let dir: TempDir
        let vocab: String
        let ingest = IngestHarness.binary
        let filter = IngestHarness.filterBinary
        let shard = IngestHarness.shardBinary

        func common(_ workdir: String) -> [String] { ["--workdir", workdir, "--quiet"] }

        /// Tags with at most 3 per track, so that the corpus-wide ranking is exercised too.
        var filterRuns: [(source: String, options: [String])] {
            [("tags", ["--config", dir.file("tags.toml")]), ("descriptions", ["--config", ScaleOutTests.config]),
             ("playlists", ["--config", ScaleOutTests.config]), ("aset", ["--labels", ScaleOutTests.ontology])]
        }

        /// Ingest, load texts, filter every source: one process.
        func single(_ workdir: String) throws {
            #expect(try TestProcess.run(ingest, ["audio"] + common(workdir) + ["--manifest", "m.csv", "--jobs", "2"],
                                        cwd: dir.path).status == 3)
            for (format, file) in [("generic", "texts.jsonl"), ("playlists", "playlists.jsonl")] {
                #expect(try TestProcess.run(ingest, ["text"] + common(workdir) + ["--format", format, file],
                                            cwd: dir.path).status == 3)
            }
            for (source, options) in filterRuns {
                let r = try TestProcess.run(filter, ["--source", source, "--vocab", vocab, "--report", "\(workdir)-\(source).json"]
                                            + options + common(workdir), cwd: dir.path)
                #expect(r.status == 0, "\(r.stderr)")
            }
        }

        /// The same as `n` concurrent workers per stage (each filter source in two phases).
        func parallel(_ workdir: String, n: Int) throws {
            let audio = try workers(ingest, ["audio"] + common(workdir) + ["--manifest", "m.csv", "--jobs", "1"],
                                    n: n, cwd: dir.path)
            #expect(audio.allSatisfy { $0.status == 0 || $0.status == 3 }, "\(audio.map(\.stderr))")
            #expect(audio.contains { $0.status == 3 })  // the bad rows are someone's
            for (format, file) in [("generic", "texts.jsonl"), ("playlists", "playlists.jsonl")] {
                let text = try workers(ingest, ["text"] + common(workdir) + ["--format", format, file], n: n, cwd: dir.path)
                #expect(text.allSatisfy { $0.status == 0 || $0.status == 3 }, "\(text.map(\.stderr))")
            }
            for (source, options) in filterRuns {
                for phase in ["local", "global"] {
                    let r = try workers(filter, ["--source", source, "--vocab", vocab, "--phase", phase] + options
                                        + common(workdir), n: n, cwd: dir.path)
                    #expect(r.allSatisfy { $0.status == 0 }, "\(source) \(phase): \(r.map(\.stderr))")
                }
            }
        }
    }

    /// Every decision of completed versions, by content (row ids differ between layouts).
    static func decisions(_ catalogs: [String]) throws -> [String] {
        var out: [String] = []
        for path in catalogs {
            out += try Catalog(path: path).database.rows("""
                SELECT d.version, d.source, d.track_id, r.origin, r.field, r.text, d.status, d.reason, d.normalized,
                       IFNULL(d.token_ids, ''), d.token_count, IFNULL(d.details, '')
                FROM text_decisions d JOIN raw_texts r ON r.id = d.raw_text_id
                JOIN filter_versions v ON v.version = d.version WHERE v.completed_at IS NOT NULL
                """).map { $0.map { $0.string ?? $0.int.map(String.init) ?? "" }.joined(separator: "|") }
        }
        return out.sorted()
    }

    static func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in IngestHarness.files(below: dir) { out[rel] = FileManager.default.contents(atPath: dir + "/" + rel) }
        return out
    }

    static func parts(_ workdir: String, _ n: Int) -> [String] {
        (0..<n).map { "\(workdir)/parts/\($0)-of-\(n)/catalog.sqlite" }
    }

    @Test func threeConcurrentWorkersGiveTheSameDecisionsAndShardsAsOne() throws {
        let dir = TempDir("mulan-scaleout")
        try Self.corpus(dir)
        let p = Pipeline(dir: dir, vocab: try TestPython.bertVocabulary())
        let a = dir.file("A"), b = dir.file("B")
        try p.single(a)
        try p.parallel(b, n: 3)

        // Ingest: every row, track, clip, text and reject is in exactly one part.
        let one = try IngestHarness.snapshot(Catalog(path: a + "/catalog.sqlite"))
        var union: (tracks: [[String]], clips: [[String]], texts: [[String]], rejects: [[String]]) = ([], [], [], [])
        for path in Self.parts(b, 3) {
            let s = try IngestHarness.snapshot(Catalog(path: path))
            #expect(!s.tracks.isEmpty, "\(path) got no track")
            union.tracks += s.tracks
            union.clips += s.clips
            union.texts += s.texts
            union.rejects += s.rejects
        }
        #expect(union.tracks.count == one.tracks.count && Set(union.tracks) == one.tracks)
        #expect(union.clips.count == one.clips.count && Set(union.clips) == one.clips)
        #expect(union.texts.count == one.texts.count && Set(union.texts) == one.texts)
        #expect(union.rejects.count == one.rejects.count && Set(union.rejects) == one.rejects)
        #expect(one.rejects.count >= 4)

        // Filter: the same decisions, and the per-worker reports add up to one process's.
        let single = try Self.decisions([a + "/catalog.sqlite"])
        #expect(single.count > 60)
        #expect(try Self.decisions(Self.parts(b, 3)) == single)
        for reason in ["|rare|", "|duplicate|", "|over-max-per-track|", "|too-few-tracks|", "|generic-title|",
                       "|outside-subtree|", "near-duplicate", "\"reason\":\"duplicate\""] {
            #expect(single.contains { $0.contains(reason) }, "the corpus should exercise \(reason)")
        }
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: a + "-tags.json")))
            as? [String: Any] ?? [:]
        var kept = 0
        for i in 0..<3 {
            let c = try Catalog(path: Self.parts(b, 3)[i])
            kept += try c.count("SELECT COUNT(*) FROM text_decisions WHERE source = 'tags' AND status = 'kept'")
        }
        #expect(kept == report["kept"] as? Int)

        // Shards: 3 concurrent shard workers then finalize; 2 workers; one process reading the
        // parts: all byte-identical to one process on the single catalog.
        let plan = ["--samples-per-shard", "3", "--split", "train=0.6,valid=0.2,test=0.2", "--seed", "5"]
        #expect(try TestProcess.run(p.shard, plan + p.common(a), cwd: dir.path).status == 0)
        let datasetID = try FileManager.default.destinationOfSymbolicLink(atPath: a + "/shards/latest")
        let reference = Self.files(a + "/shards/" + datasetID)
        #expect(reference.count > 10 && reference["dataset.json"] != nil)

        let shardWorkers = try Self.workers(p.shard, plan + p.common(b), n: 3, cwd: dir.path)
        #expect(shardWorkers.allSatisfy { $0.status == 0 }, "\(shardWorkers.map(\.stderr))")
        #expect(!FileManager.default.fileExists(atPath: b + "/shards/" + datasetID + "/dataset.json"))
        let finalize = try TestProcess.run(p.shard, ["finalize"] + plan + p.common(b), cwd: dir.path)
        #expect(finalize.status == 0, "\(finalize.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: b + "/shards/latest") == datasetID)
        #expect(Self.files(b + "/shards/" + datasetID) == reference)

        let two = dir.file("two")
        let twoWorkers = try Self.workers(p.shard, plan + ["--out", two] + p.common(b), n: 2, cwd: dir.path)
        #expect(twoWorkers.allSatisfy { $0.status == 0 }, "\(twoWorkers.map(\.stderr))")
        #expect(try TestProcess.run(p.shard, ["finalize"] + plan + ["--out", two] + p.common(b), cwd: dir.path).status == 0)
        #expect(Self.files(two) == reference)
        let oneOverParts = dir.file("one-over-parts")
        #expect(try TestProcess.run(p.shard, plan + ["--out", oneOverParts] + p.common(b), cwd: dir.path).status == 0)
        #expect(Self.files(oneOverParts) == reference)

        // Shards closed by size: the workers size every sample first and agree with one process.
        let bySize = plan + ["--max-shard-bytes", "1500000"]
        #expect(try TestProcess.run(p.shard, bySize + ["--out", dir.file("size-a")] + p.common(a), cwd: dir.path).status == 0)
        let sized = try Self.workers(p.shard, bySize + ["--out", dir.file("size-b")] + p.common(b), n: 3, cwd: dir.path)
        #expect(sized.allSatisfy { $0.status == 0 }, "\(sized.map(\.stderr))")
        #expect(try TestProcess.run(p.shard, ["finalize"] + bySize + ["--out", dir.file("size-b")] + p.common(b),
                                    cwd: dir.path).status == 0)
        let sizeA = Self.files(dir.file("size-a"))
        #expect(sizeA.keys.filter { $0.hasSuffix(".tar") }.count > reference.keys.filter { $0.hasSuffix(".tar") }.count / 2)
        #expect(Self.files(dir.file("size-b")) == sizeA)

        // The workers' dataset passes verify and Python's webdataset reader.
        let v = try TestProcess.run(p.shard, ["verify", b + "/shards/latest", "--quiet"], cwd: dir.path)
        #expect(v.status == 0, "\(v.stdoutText) \(v.stderr)")
        let check = try TestPython.tool("webdataset_check.py", [b + "/shards/latest"]).stdoutText
        let parsed = try JSONSerialization.jsonObject(with: Data(check.utf8)) as? [String: Any]
        let manifest = try JSONDecoder().decode(DatasetManifest.self, from: reference["dataset.json"]!)
        for (name, info) in manifest.splits {
            let split = (parsed?["splits"] as? [String: [String: Any]])?[name]
            #expect(split?["samples"] as? Int == info.samples && split?["bad"] as? Int == 0)
        }
    }

    /// A shard worker killed mid-write (simulated by its leftovers), finalize before all workers
    /// are done, and the re-runs that finish the job with the same bytes.
    @Test func interruptedShardWorkersFinishWithTheSameBytes() throws {
        let dir = TempDir("mulan-scaleout-resume")
        try Self.corpus(dir)
        let p = Pipeline(dir: dir, vocab: try TestPython.bertVocabulary())
        let b = dir.file("B")
        try p.parallel(b, n: 3)
        let plan = ["--samples-per-shard", "2", "--split", "train=1.0"]
        let reference = dir.file("reference")
        #expect(try TestProcess.run(p.shard, plan + ["--out", reference] + p.common(b), cwd: dir.path).status == 0)
        let expected = Self.files(reference)

        let out = dir.file("out")
        let args = plan + ["--out", out] + p.common(b)
        // Which worker writes a shard: its number counted over the splits in name order, mod 3.
        let manifest = try JSONDecoder().decode(DatasetManifest.self, from: expected["dataset.json"]!)
        var owner: [String: Int] = [:]
        var number = 0
        for split in manifest.splits.keys.sorted() {
            for shard in manifest.splits[split]!.shards {
                owner[split + "/" + shard] = number % 3
                number += 1
            }
        }
        let train = manifest.splits["train"]!.shards.map { "train/" + $0 }
        #expect(train.count >= 6)
        let ofWorker1 = train.filter { owner[$0] == 1 }, ofWorker2 = train.filter { owner[$0] == 2 }

        // Worker 1 of 3 only: finalize names what is missing.
        #expect(try TestProcess.run(p.shard, args + ["--worker", "1", "--workers", "3"], cwd: dir.path).status == 0)
        let early = try TestProcess.run(p.shard, ["finalize"] + args, cwd: dir.path)
        #expect(early.status == 1, "\(early.stderr)")
        #expect(owner.keys.filter { owner[$0] != 1 }.allSatisfy { early.stderr.contains($0) }, "\(early.stderr)")
        #expect(!ofWorker1.contains { early.stderr.contains($0) })
        #expect(!FileManager.default.fileExists(atPath: out + "/dataset.json"))
        // Leftovers of killed workers: partial shards and a half-written sidecar.
        try Data("partial".utf8).write(to: URL(fileURLWithPath: out + "/" + ofWorker2[0] + ".part"))
        try Data("{\"half".utf8).write(to: URL(fileURLWithPath: out + "/" + ofWorker2[1].dropLast(4) + ".json.tmp"))
        let envs: (Int) -> [String: String]? = { ["SLURM_ARRAY_TASK_ID": "\($0)", "SLURM_ARRAY_TASK_COUNT": "3"] }
        #expect(try Self.workers(p.shard, args, n: 3, cwd: dir.path, environment: envs).allSatisfy { $0.status == 0 })
        // Then: a shard of worker 2 loses its sidecar, one of worker 1 is damaged (its sidecar no
        // longer matches), a partial shard of worker 1 lies around.
        try FileManager.default.removeItem(atPath: out + "/" + ofWorker2[0].dropLast(4) + ".json")
        var damaged = try Data(contentsOf: URL(fileURLWithPath: out + "/" + ofWorker1[0]))
        damaged[700] ^= 0xFF
        try damaged.write(to: URL(fileURLWithPath: out + "/" + ofWorker1[0]))
        try Data("partial".utf8).write(to: URL(fileURLWithPath: out + "/" + ofWorker1[1] + ".part"))
        // The workers again (from the environment, as array tasks) rewrite just those, then finalize.
        let again = try Self.workers(p.shard, args, n: 3, cwd: dir.path, environment: envs)
        #expect(again.allSatisfy { $0.status == 0 }, "\(again.map(\.stderr))")
        #expect(again[0].stdoutText.contains(" 0 shards written"), "\(again[0].stdoutText)")
        #expect(again[1].stdoutText.contains(" 1 shards written"), "\(again[1].stdoutText)")
        #expect(again[2].stdoutText.contains(" 1 shards written"), "\(again[2].stdoutText)")
        #expect(try TestProcess.run(p.shard, ["finalize"] + args, cwd: dir.path).status == 0)
        let files = Self.files(out)
        #expect(files == expected)
        #expect(!files.keys.contains { $0.hasSuffix(".part") || $0.hasSuffix(".tmp") })
    }

    /// Worker options are checked like any other option; layouts are never mixed.
    @Test func usageErrors() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 31, tags: ["genre": "Jazz"])
        try h.dir.write("m.csv", "track_id,path\nt0,a.ogg\n")
        let bin = IngestHarness.binary
        func ingest(_ extra: [String], env: [String: String] = [:]) throws -> ProcessResult {
            try TestProcess.run(bin, ["--workdir", h.workdir, "--quiet", "--manifest", "m.csv"] + extra, cwd: h.dir.path,
                                environment: env)
        }
        let tooBig = try ingest(["--worker", "3", "--workers", "3"])
        #expect(tooBig.status == 64 && tooBig.stderr.contains("worker 3"), "\(tooBig.stderr)")
        let mismatch = try ingest(["--workers", "2"], env: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3"])
        #expect(mismatch.status == 64 && mismatch.stderr.contains("Slurm"), "\(mismatch.stderr)")
        // sbatch --array=7 alone, without the number of workers: the hint names MULAN_WORKERS.
        let alone = try ingest([], env: ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_MIN": "7"])
        #expect(alone.status == 64 && alone.stderr.contains("MULAN_WORKERS=N"), "\(alone.stderr)")
        #expect(try ingest([], env: ["JOB_COMPLETION_INDEX": "0"]).status == 64)
        #expect(!FileManager.default.fileExists(atPath: h.workdir + "/catalog.sqlite"))

        // The environment picks the part a worker writes, as the flags do.
        #expect(try ingest([], env: ["JOB_COMPLETION_INDEX": "1", "MULAN_WORKERS": "2"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: h.workdir + "/parts/1-of-2/catalog.sqlite"))
        #expect(try ingest(["--worker", "0", "--workers", "2"]).status == 0)
        let owner = WorkerSlice.worker(of: "t0", workers: 2)
        for i in 0..<2 {
            let tracks = try Catalog(path: h.workdir + "/parts/\(i)-of-2/catalog.sqlite").count("SELECT COUNT(*) FROM tracks")
            #expect(tracks == (i == owner ? 1 : 0))
        }
        // A partitioned work directory takes workers of the same count only.
        let single = try ingest([])
        #expect(single.status == 64 && single.stderr.contains("--workers 2"), "\(single.stderr)")
        #expect(try ingest(["--worker", "0", "--workers", "3"]).status == 64)
        let filter = try TestProcess.run(IngestHarness.filterBinary,
                                         ["--source", "tags", "--vocab", try TestPython.bertVocabulary(),
                                          "--workdir", h.workdir, "--worker", "0", "--workers", "2"], cwd: h.dir.path)
        #expect(filter.status == 64 && filter.stderr.contains("--phase"), "\(filter.stderr)")
    }
}
