import Foundation
@testable import MulanCatalog
import MulanCore
@testable import MulanShards
import MulanTestSupport
import Testing

/// `mulan-dedupe` on a work directory split into worker parts (docs/dedupe.md, docs/scale-out.md):
/// the same groups and decisions as one catalog, the whole result in every part, and mulan-shard
/// giving the same dataset as from the single-process work directory.
@Suite("mulan-dedupe over worker parts", .serialized)
struct DedupePartsTests {
    static let workers = 2

    /// Families of copies whose members fall in different parts (checked), plus distinct pieces.
    struct Corpus {
        var families: [[String]] = []
        var distinct: [String] = []
        /// The member of family 0 that gives the manifest split: not the group key, in the other part.
        var splitGiver = ""
    }

    /// 3 families (a lossless original, an mp3 of it, an exact copy of the mp3) of 32-s synthetic
    /// pieces, and 2 distinct pieces; ids chosen so that each family has members in both parts.
    static func corpus(_ dir: TempDir) throws -> Corpus {
        var corpus = Corpus()
        var manifest = "track_id,path,split\n"
        let genres = ["jazz", "rock", "folk", "blues", "ambient"]
        try FileManager.default.createDirectory(atPath: dir.file("a"), withIntermediateDirectories: true)
        for f in 0..<3 {
            // The first ids "r<f>-<k>" of worker 0 and of worker 1, then one more.
            let candidates = (0..<40).map { "r\(f)-\($0)" }
            let first0 = candidates.first { WorkerSlice.worker(of: $0, workers: workers) == 0 }!
            let first1 = candidates.first { WorkerSlice.worker(of: $0, workers: workers) == 1 }!
            let third = candidates.first { $0 != first0 && $0 != first1 }!
            let ids = [first0, first1, third].sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            let source = dir.file("src/piece\(f).wav")
            try SyntheticMusic.write(source, seconds: 32, seed: UInt64(f + 1))
            try TestProcess.ffmpeg(["-i", source, "-c:a", "flac", "-metadata", "genre=\(genres[f])", dir.file("a/\(ids[0]).flac")])
            try TestProcess.ffmpeg(["-i", source, "-c:a", "libmp3lame", "-b:a", "128k", "-metadata", "genre=\(genres[f])",
                                    dir.file("a/\(ids[1]).mp3")])
            try FileManager.default.copyItem(atPath: dir.file("a/\(ids[1]).mp3"), toPath: dir.file("a/\(ids[2]).mp3"))
            // Family 0's split comes from a member that is not its group key and not in the key's part.
            let keyWorker = WorkerSlice.worker(of: ids[0], workers: workers)
            let giver = f == 0 ? ids.dropFirst().first { WorkerSlice.worker(of: $0, workers: workers) != keyWorker }! : ""
            if f == 0 { corpus.splitGiver = giver }
            for (n, id) in ids.enumerated() {
                manifest += "\(id),a/\(id).\(n == 0 ? "flac" : "mp3"),\(id == giver ? "test" : "")\n"
            }
            corpus.families.append(ids)
        }
        for d in 0..<2 {
            let id = "d\(d)"
            try SyntheticMusic.write(dir.file("src/d\(d).wav"), seconds: 32, seed: UInt64(50 + d))
            try TestProcess.ffmpeg(["-i", dir.file("src/d\(d).wav"), "-c:a", "libvorbis", "-q:a", "4",
                                    "-metadata", "genre=\(genres[3 + d])", dir.file("a/\(id).ogg")])
            manifest += "\(id),a/\(id).ogg,\n"
            corpus.distinct.append(id)
        }
        try dir.write("m.csv", manifest)
        return corpus
    }

    static func run(_ binary: String, _ arguments: [String], _ dir: TempDir) throws -> ProcessResult {
        try TestProcess.run(binary, arguments, cwd: dir.path, environment: ["MULAN_PROGRESS_INTERVAL": "0"])
    }

    static func parts(_ workdir: String) -> [String] {
        (0..<workers).map { "\(workdir)/parts/\($0)-of-\(workers)" }
    }

    /// A catalog's dedupe result by content: groups, members, pairs (without row and run ids,
    /// timestamps, and the pairs' measured spans, which are the same as they come from the same tracks).
    static func result(_ directory: String) throws -> [String] {
        let db = try Catalog(path: directory + "/catalog.sqlite").database
        func rows(_ sql: String) throws -> [String] {
            try db.rows(sql).map { $0.map { $0.string ?? $0.int.map(String.init) ?? $0.double.map { "\($0)" } ?? "-" }
                .joined(separator: "|") }.sorted()
        }
        return try rows("""
            SELECT 'group', id, group_key, size, representative, kinds, total_s, removed_s, manifest_split FROM dup_groups
            """)
            + rows("SELECT 'member', track_id, group_id, decision, merged_into, reason FROM dup_members")
            + rows("""
                SELECT 'pair', group_id, track_a, track_b, kind, a_start_s, a_end_s, b_start_s, b_end_s, bit_error_rate, votes
                FROM dup_pairs
                """)
            + rows("SELECT 'state', policy, settings, signature FROM dedupe_state")
    }

    static func state(_ directory: String) throws -> (signature: String, token: String?, parts: Int?) {
        let row = try Catalog(path: directory + "/catalog.sqlite").database.row(
            "SELECT signature, run_token, parts FROM dedupe_state WHERE id = 1")
        return (row?[0].string ?? "", row?[1].string, row?[2].int)
    }

    static func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in IngestHarness.files(below: dir) { out[rel] = FileManager.default.contents(atPath: dir + "/" + rel) }
        return out
    }

    /// Ingest as 2 workers, dedupe the parts: the groups, decisions and signature of the same corpus
    /// in one catalog, in every part; shards (2 workers + finalize, and one process over the parts)
    /// byte-identical to the single-process work directory's, each group in one split.
    @Test func partsGiveTheSameGroupsAndShardsAsOneCatalog() throws {
        let dir = TempDir("mulan-dedupe-parts")
        let corpus = try Self.corpus(dir)
        for family in corpus.families {
            #expect(Set(family.map { WorkerSlice.worker(of: $0, workers: Self.workers) }).count == 2, "\(family)")
        }
        let ingest = IngestHarness.binary, filter = IngestHarness.filterBinary, shard = IngestHarness.shardBinary
        let dedupe = DedupeEndToEndTests.dedupeBinary
        let vocab = try TestPython.bertVocabulary()
        let a = dir.file("A"), b = dir.file("B")
        func common(_ w: String) -> [String] { ["--workdir", w, "--quiet"] }
        func workerArgs(_ i: Int) -> [String] { ["--worker", "\(i)", "--workers", "\(Self.workers)"] }

        // One process: ingest, dedupe, filter.
        let ia = try Self.run(ingest, common(a) + ["--manifest", "m.csv"], dir)
        #expect(ia.status == 0, "\(ia.stderr)")
        let da = try Self.run(dedupe, common(a), dir)
        #expect(da.status == 0, "\(da.stderr)")
        #expect(try Self.run(filter, ["--source", "tags", "--vocab", vocab] + common(a), dir).status == 0)

        // Two ingest workers, then dedupe of the parts (one process), then the filter's two phases.
        for i in 0..<Self.workers {
            let r = try Self.run(ingest, common(b) + ["--manifest", "m.csv"] + workerArgs(i), dir)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let db = try Self.run(dedupe, ["--workdir", b, "--report", dir.file("b.json")], dir)
        #expect(db.status == 0, "\(db.stderr)")
        #expect(db.stdoutText.contains("11 tracks in 2 worker parts"), "\(db.stdoutText)")
        for phase in ["local", "global"] {
            for i in 0..<Self.workers {
                let r = try Self.run(filter, ["--source", "tags", "--vocab", vocab, "--phase", phase] + common(b) + workerArgs(i), dir)
                #expect(r.status == 0, "\(r.stderr)")
            }
        }

        // The same result in every part as in the single catalog, from one run.
        let reference = try Self.result(a)
        #expect(reference.filter { $0.hasPrefix("group|") }.count == 3)
        #expect(reference.filter { $0.hasPrefix("member|") }.count == 9)
        let states = try Self.parts(b).map(Self.state)
        for (part, state) in zip(Self.parts(b), states) {
            #expect(try Self.result(part) == reference, "\(part)")
            #expect(state.signature == (try Self.state(a)).signature && state.parts == 2 && state.token != nil)
        }
        #expect(Set(states.map(\.token)).count == 1)
        #expect(try Self.state(a).parts == 1)
        // Family 0's manifest split comes from a member in the other part than its key.
        let key0 = corpus.families[0][0]
        let split0 = try Catalog(path: a + "/catalog.sqlite").database.row(
            "SELECT manifest_split FROM dup_groups WHERE group_key = ?", [key0])?[0].string
        #expect(split0 == "test")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("b.json"))))
            as? [String: Any] ?? [:]
        #expect(report["parts"] as? Int == 2 && report["groups"] as? Int == 3 && report["tracks"] as? Int == 11)
        let latest = try Self.run(dedupe, ["report"] + common(b), dir)
        #expect(latest.status == 0, "\(latest.stderr)")
        let latestJSON = try JSONSerialization.jsonObject(with: Data(latest.stdoutText.utf8)) as? [String: Any]
        #expect(latestJSON?["parts"] as? Int == 2 && latestJSON?["groups"] as? Int == 3, "\(latest.stdoutText)")

        // Shards: the single-process work directory's dataset, byte for byte, from 2 shard workers
        // and from one process over the parts.
        let plan = ["--samples-per-shard", "2", "--split", "train=0.5,test=0.5", "--seed", "3"]
        let sa = try Self.run(shard, plan + common(a), dir)
        #expect(sa.status == 0, "\(sa.stderr)")
        let datasetID = try FileManager.default.destinationOfSymbolicLink(atPath: a + "/shards/latest")
        let expected = Self.files(a + "/shards/" + datasetID)
        #expect(expected["dataset.json"] != nil)
        for i in 0..<Self.workers {
            let r = try Self.run(shard, plan + common(b) + workerArgs(i), dir)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let fin = try Self.run(shard, ["finalize"] + plan + common(b), dir)
        #expect(fin.status == 0, "\(fin.stderr)")
        #expect(Self.files(b + "/shards/" + datasetID) == expected)
        let overParts = dir.file("over-parts")
        #expect(try Self.run(shard, plan + ["--out", overParts] + common(b), dir).status == 0)
        #expect(Self.files(overParts) == expected)

        // Every group in one split; family 0 in its member's manifest split.
        let samples = try DedupeEndToEndTests.samples(overParts)
        let splitOf = Dictionary(grouping: samples, by: \.trackID).mapValues { Set($0.map(\.split)) }
        for family in corpus.families {
            #expect(family.allSatisfy { splitOf[$0] != nil }, "\(family) not all shipped")
            #expect(Set(family.flatMap { splitOf[$0] ?? [] }).count == 1, "\(family) straddles splits")
        }
        #expect(Set(corpus.families[0].flatMap { splitOf[$0] ?? [] }) == ["test"])

        // A result from before the split was stored (no run token): mulan-shard computes it itself,
        // with the same dataset.
        let old = try Catalog(path: a + "/catalog.sqlite").database
        try old.run("UPDATE dedupe_state SET run_token = NULL, parts = NULL")
        try old.run("UPDATE dup_groups SET manifest_split = NULL")
        let fallback = dir.file("fallback")
        #expect(try Self.run(shard, plan + ["--out", fallback] + common(a), dir).status == 0)
        #expect(Self.files(fallback) == expected)
    }

    /// Policy merge and a missing part are refused before anything is written; parts holding
    /// results of different dedupe runs are refused by mulan-shard and `report` until dedupe runs again.
    @Test func mergeMissingPartsAndMixedRunsAreRefused() throws {
        let dir = TempDir("mulan-dedupe-parts-refused")
        _ = try Self.corpus(dir)
        let b = dir.file("B")
        let dedupe = DedupeEndToEndTests.dedupeBinary
        for i in 0..<Self.workers {
            let r = try Self.run(IngestHarness.binary, ["--workdir", b, "--quiet", "--manifest", "m.csv", "--worker", "\(i)",
                                                        "--workers", "\(Self.workers)"], dir)
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try Self.run(dedupe, ["report", "--workdir", b], dir).status == 64)
        #expect(try Self.run(dedupe, ["--workdir", b, "--quiet"], dir).status == 0)
        let before = try Self.parts(b).map(Self.result)
        let tokens = try Self.parts(b).map { try Self.state($0).token }
        func dedupeRuns(_ part: String) throws -> Int {
            try Catalog(path: part + "/catalog.sqlite").count("SELECT COUNT(*) FROM runs WHERE stage = 'dedupe'")
        }
        let runs = try Self.parts(b).map(dedupeRuns)

        let merge = try Self.run(dedupe, ["--workdir", b, "--policy", "merge"], dir)
        #expect(merge.status == 64 && merge.stderr.contains("--policy merge") && merge.stderr.contains("--policy split"),
                "\(merge.stderr)")
        #expect(try Self.parts(b).map(Self.result) == before)
        #expect(try Self.parts(b).map { try Self.state($0).token } == tokens)
        #expect(try Self.parts(b).map(dedupeRuns) == runs)

        let aside = dir.file("aside")
        try FileManager.default.moveItem(atPath: Self.parts(b)[1], toPath: aside)
        let missing = try Self.run(dedupe, ["--workdir", b], dir)
        #expect(missing.status == 64 && missing.stderr.contains("parts/1-of-2"), "\(missing.stderr)")
        #expect(try dedupeRuns(Self.parts(b)[0]) == runs[0])
        try FileManager.default.moveItem(atPath: aside, toPath: Self.parts(b)[1])

        // Part 1 keeps a result of another run (as after a run interrupted between parts).
        let vocab = try TestPython.bertVocabulary()
        for phase in ["local", "global"] {
            for i in 0..<Self.workers {
                let r = try Self.run(IngestHarness.filterBinary, ["--source", "tags", "--vocab", vocab, "--phase", phase,
                                                                  "--workdir", b, "--quiet", "--worker", "\(i)",
                                                                  "--workers", "\(Self.workers)"], dir)
                #expect(r.status == 0, "\(r.stderr)")
            }
        }
        try Catalog(path: Self.parts(b)[1] + "/catalog.sqlite").database.run("UPDATE dedupe_state SET run_token = 'an-older-run'")
        let plan = ["--samples-per-shard", "2", "--split", "train=0.5,test=0.5", "--workdir", b, "--quiet"]
        let mixed = try Self.run(IngestHarness.shardBinary, plan, dir)
        #expect(mixed.status == 64 && mixed.stderr.contains("different mulan-dedupe results")
                && mixed.stderr.contains("run mulan-dedupe"), "\(mixed.stderr)")
        #expect(!FileManager.default.fileExists(atPath: b + "/shards/latest"))
        #expect(try Self.run(dedupe, ["report", "--workdir", b], dir).status == 64)
        // A part without any result next to one with a result: the same.
        try Catalog(path: Self.parts(b)[1] + "/catalog.sqlite").database.run("DELETE FROM dedupe_state")
        #expect(try Self.run(IngestHarness.shardBinary, plan, dir).status == 64)

        // A re-run of dedupe redoes every part; then mulan-shard goes ahead.
        #expect(try Self.run(dedupe, ["--workdir", b, "--quiet"], dir).status == 0)
        let after = try Self.parts(b).map(Self.result)
        #expect(after == before, "\(zip(after, before).map { Set($0).symmetricDifference(Set($1)) })")
        let again = try Self.run(IngestHarness.shardBinary, plan, dir)
        #expect(again.status == 0, "\(again.stderr)")
    }
}
