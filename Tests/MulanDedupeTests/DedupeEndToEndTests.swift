import Foundation
@testable import MulanCatalog
import MulanCore
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

@Suite("mulan-dedupe end to end", .serialized)
struct DedupeEndToEndTests {
    static var dedupeBinary: String { TestPaths.executable("mulan-dedupe") }

    static func dedupe(_ h: IngestHarness, _ arguments: [String]) throws -> ProcessResult {
        try TestProcess.run(dedupeBinary, arguments + ["--workdir", h.workdir, "--quiet"], cwd: h.dir.path)
    }

    /// Pairs (a|b, a < b) from the catalog: verified pairs, and all pairs within a group.
    static func predicted(_ c: Catalog) throws -> (direct: Set<String>, grouped: Set<String>, groups: [[String]]) {
        var direct = Set<String>()
        for r in try c.database.rows("SELECT track_a, track_b FROM dup_pairs") {
            direct.insert([r[0].string!, r[1].string!].sorted().joined(separator: "|"))
        }
        // Only the first of exact copies (same bytes) is fingerprint-matched: the others stand for it.
        for r in try c.database.rows("SELECT track_a, track_b FROM dup_pairs WHERE kind = 'exact'") {
            let (first, copy) = (r[0].string!, r[1].string!)
            for pair in direct {
                let ends = pair.split(separator: "|").map(String.init)
                guard ends.contains(first), !ends.contains(copy) else { continue }
                let other = ends[0] == first ? ends[1] : ends[0]
                direct.insert([copy, other].sorted().joined(separator: "|"))
            }
        }
        var byGroup: [Int: [String]] = [:]
        for r in try c.database.rows("SELECT group_id, track_id FROM dup_members ORDER BY track_id") {
            byGroup[r[0].int!, default: []].append(r[1].string!)
        }
        var grouped = Set<String>()
        for members in byGroup.values {
            for (i, a) in members.enumerated() { for b in members[(i + 1)...] { grouped.insert([a, b].sorted().joined(separator: "|")) } }
        }
        return (direct, grouped, Array(byGroup.values))
    }

    static func score(_ predicted: Set<String>, _ truth: Set<String>) -> (precision: Double, recall: Double) {
        let hits = Double(predicted.intersection(truth).count)
        return (predicted.isEmpty ? 1 : hits / Double(predicted.count), truth.isEmpty ? 1 : hits / Double(truth.count))
    }

    /// Re-encoded, resampled, gain-changed, downmixed, trimmed and embedded copies of 6 pieces among
    /// 14 distinct pieces: precision and recall of the duplicate pairs, the overlap spans, the
    /// decisions of both policies, and shards where no group straddles two splits.
    @Test func accuracyDecisionsAndLeakageFreeShards() throws {
        let h = IngestHarness()
        let corpus = try DedupeCorpus.make(in: h.dir, families: 6, distinct: 14)
        let ingest = try h.ingest(["--manifest", h.dir.file("dedupe.csv"), "--jobs", "2", "--report", h.dir.file("ingest.json")])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let c = try h.catalog()
        #expect(try c.count("SELECT COUNT(*) FROM tracks WHERE status = 'ingested'") == corpus.families.count)
        #expect(try c.count("SELECT COUNT(*) FROM fingerprints WHERE status = 'ok'") == corpus.families.count)

        let run = try Self.dedupe(h, ["--report", h.dir.file("dedupe.json")])
        #expect(run.status == 0, "\(run.stderr)")
        let (direct, grouped, groups) = try Self.predicted(c)
        let truth = corpus.truePairs
        let d = Self.score(direct, truth), g = Self.score(grouped, truth)
        print(String(format: "dedupe accuracy (%@ music, %d tracks, %d true pairs): verified pairs precision %.4f recall %.4f; "
                     + "group pairs precision %.4f recall %.4f", corpus.realMusic ? "real" : "synthetic",
                     corpus.families.count, truth.count, d.precision, d.recall, g.precision, g.recall))
        for miss in truth.subtracting(direct).sorted() { print("  missed pair: \(miss)") }
        for extra in direct.subtracting(truth).sorted() { print("  false pair: \(extra)") }
        #expect(d.precision >= 0.99 && g.precision >= 0.99)
        #expect(d.recall >= 0.95 && g.recall >= 0.95)
        // No false group: distinct pieces are in no group, and no group mixes two pieces.
        for members in groups {
            let families = Set(members.flatMap { corpus.families[$0]! })
            #expect(families.count == 1, "group mixes pieces: \(members)")
        }
        #expect(groups.count == 6)

        // Kinds and spans: exact copies by hash; the embedded copy contains the piece from 20 s to 65 s.
        let exact = try c.database.rows("SELECT track_a, track_b FROM dup_pairs WHERE kind = 'exact'")
        #expect(exact.count == 6)
        let span = try c.database.row("""
            SELECT a_start_s, a_end_s, b_start_s, b_end_s, kind FROM dup_pairs WHERE track_a = 'f0-embedded' AND track_b = 'f0-orig'
            """)
        #expect(span?[4].string == "contained")
        if let span {
            #expect(abs(span[0].double! - 20) < 3 && abs(span[1].double! - 63) < 4, "\(span)")
            #expect(span[2].double! < 3 && abs(span[3].double! - 43) < 4, "\(span)")
        }
        // Every member has a decision with a reason; under split nothing is merged.
        #expect(try c.count("SELECT COUNT(*) FROM dup_members WHERE reason = '' OR reason IS NULL") == 0)
        #expect(try c.count("SELECT COUNT(*) FROM dup_members WHERE decision = 'merged'") == 0)
        let report = try h.report(h.dir.file("dedupe.json"))
        #expect(report["groups"] as? Int == 6)
        #expect((report["group_sizes"] as? [String: Int]) == ["11": 6])
        #expect(try TestProcess.run(Self.dedupeBinary, ["report", "--workdir", h.workdir]).stdoutText.contains("\"top_groups\""))

        // Shards: texts, then split by group. Hashing track ids alone would straddle some group.
        let vocab = try TestPython.bertVocabulary()
        let f = try h.filter(["--source", "tags", "--vocab", vocab, "--config", TestPaths.packageRoot + "/manifests/filters.toml"])
        #expect(f.status == 0, "\(f.stderr)")
        let spec = try SplitSpec(parsing: "train=0.5,test=0.5")
        #expect(groups.contains { Set($0.map { spec.split(trackID: $0, manifestSplit: nil) }).count > 1 })
        let splitRun = try h.shard(["--split", "train=0.5,test=0.5", "--out", h.dir.file("split")])
        #expect(splitRun.status == 0, "\(splitRun.stderr)")
        let splitSamples = try Self.samples(h.dir.file("split"))
        let trackSplits = Dictionary(grouping: splitSamples, by: \.trackID).mapValues { Set($0.map(\.split)) }
        let shipped = Set(try c.database.rows("""
            SELECT DISTINCT t.track_id FROM tracks t JOIN clips c ON c.track_rowid = t.id WHERE c.status = 'kept'
            AND EXISTS (SELECT 1 FROM text_decisions d WHERE d.track_id = t.track_id AND d.status = 'kept')
            """).map { $0[0].string! })
        #expect(Set(trackSplits.keys) == shipped)
        for members in groups {
            let splits = Set(members.flatMap { trackSplits[$0] ?? [] })
            #expect(splits.count == 1, "group \(members) straddles \(splits)")
        }
        // Each sample names its duplicate group (the group's key: its smallest track id); a distinct piece none.
        var groupOf: [String: String] = [:]
        for members in groups { for m in members { groupOf[m] = members.min() } }
        for sample in splitSamples { #expect(sample.duplicateGroup == groupOf[sample.trackID], "\(sample.trackID)") }
        #expect(try h.shard(["verify", h.dir.file("split")]).status == 0)

        // Policy merge: one representative per group (the longest: the embedded file), the others
        // merged into it with their texts; re-running replaces the previous result.
        #expect(try Self.dedupe(h, ["--policy", "merge"]).status == 0)
        #expect(try c.count("SELECT COUNT(*) FROM dup_groups") == 6)
        #expect(try c.count("SELECT COUNT(*) FROM dup_members WHERE decision = 'merged'") == 60)
        let reps = Set(try c.database.rows("SELECT representative FROM dup_groups").map { $0[0].string! })
        #expect(reps == Set((0..<6).map { "f\($0)-embedded" }))
        let mergeRun = try h.shard(["--split", "train=0.5,test=0.5", "--out", h.dir.file("merge")])
        #expect(mergeRun.status == 0, "\(mergeRun.stderr)")
        let merged = try Self.samples(h.dir.file("merge"))
        #expect(Set(merged.map(\.trackID)) == shipped.filter { $0.hasPrefix("distinct") || reps.contains($0) })
        for sample in merged where reps.contains(sample.trackID) {
            // Its own tag and the ten merged members' tags.
            #expect((sample.texts["tags"]?.count ?? 0) >= 11, "\(sample.trackID): \(sample.texts["tags"]?.count ?? 0) tags")
        }
        #expect(try h.shard(["verify", h.dir.file("merge")]).status == 0)
    }

    static func samples(_ folder: String) throws -> [SampleRecord] {
        let manifest = try JSONDecoder().decode(DatasetManifest.self,
                                                from: Data(contentsOf: URL(fileURLWithPath: folder + "/dataset.json")))
        var out: [SampleRecord] = []
        for (split, info) in manifest.splits {
            for shard in info.shards {
                let reader = try TarReader(path: folder + "/" + split + "/" + shard)
                while let m = try reader.next() {
                    guard m.name.hasSuffix(".json") else { continue }
                    out.append(try JSONDecoder().decode(SampleRecord.self, from: Data(m.data)))
                }
            }
        }
        return out
    }
}
