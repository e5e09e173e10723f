import Foundation
@testable import MulanCatalog
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

@Suite("mulan-shard", .serialized)
struct ShardStageTests {
    /// A work directory with ingested clips and filtered tags and descriptions.
    static func corpus(tracks: Int = 8) throws -> IngestHarness {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        var manifest = "track_id,path,start_s,end_s,split\n"
        let genres = ["Jazz", "Rock", "Ambient", "Jazz", "Rock", "Ambient", "Jazz", "Folk"]
        for i in 0..<tracks {
            let seconds = i % 3 == 0 ? 65.0 : 31.0
            try TestMedia.tone(h.dir.file("a/t\(i).ogg"), seconds: seconds, frequency: 200 + Double(i) * 53,
                               tags: ["genre": genres[i % genres.count],
                                      "comment": "A calm \(genres[i % genres.count].lowercased()) piece with soft piano and warm strings."],
                               seed: i + 1)
            manifest += "t\(i),a/t\(i).ogg,,,\(i == 1 ? "test" : "")\n"
        }
        try h.dir.write("m.csv", manifest)
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        for source in ["tags", "descriptions"] {
            let r = try h.filter(["--source", source, "--vocab", vocab,
                                  "--config", TestPaths.packageRoot + "/manifests/filters.toml"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        return h
    }

    static func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in IngestHarness.files(below: dir) { out[rel] = FileManager.default.contents(atPath: dir + "/" + rel) }
        return out
    }

    @Test func deterministicSplitByTrackVerifiedAndReadableByWebDataset() throws {
        let h = try Self.corpus()
        let r1 = try h.shard(["--samples-per-shard", "3", "--split", "train=0.5,valid=0.25,test=0.25", "--seed", "7"])
        #expect(r1.status == 0, "\(r1.stderr)")
        let latest = h.workdir + "/shards/latest"
        let datasetDir = try FileManager.default.destinationOfSymbolicLink(atPath: latest)
        #expect(r1.stdoutText.contains(datasetDir))
        // Same catalog, settings and seed: byte-identical files, in another folder.
        #expect(try h.shard(["--samples-per-shard", "3", "--split", "train=0.5,valid=0.25,test=0.25", "--seed", "7",
                             "--out", h.dir.file("again")]).status == 0)
        let first = Self.files(h.workdir + "/shards/" + datasetDir)
        #expect(!first.isEmpty)
        #expect(first == Self.files(h.dir.file("again")))
        // Another seed shuffles differently.
        #expect(try h.shard(["--samples-per-shard", "3", "--split", "train=0.5,valid=0.25,test=0.25", "--seed", "8",
                             "--out", h.dir.file("seed8")]).status == 0)
        #expect(Self.files(h.dir.file("seed8"))["train/shard-000000.tar"] != first["train/shard-000000.tar"])

        // Every track lies in one split; the manifest's split is honoured; dataset.json agrees.
        let manifest = try JSONDecoder().decode(DatasetManifest.self, from: first["dataset.json"]!)
        var splitOfTrack: [String: Set<String>] = [:]
        var sampleJSON: [String] = []
        var samples = 0
        for (split, info) in manifest.splits {
            for shard in info.shards {
                let reader = try TarReader(path: latest + "/" + split + "/" + shard)
                while let m = try reader.next() {
                    guard m.name.hasSuffix(".json") else { continue }
                    let record = try JSONDecoder().decode(SampleRecord.self, from: Data(m.data))
                    splitOfTrack[record.trackID, default: []].insert(split)
                    sampleJSON.append(String(decoding: m.data, as: UTF8.self))
                    samples += 1
                }
            }
        }
        #expect(splitOfTrack.values.allSatisfy { $0.count == 1 })
        #expect(splitOfTrack["t1"] == ["test"])
        #expect(samples == manifest.splits.values.reduce(0) { $0 + $1.samples })
        // t7's only tag ("Folk") is rare and its description is the only one of its kind: the clips
        // of tracks without any kept text are counted, not shipped.
        let c = try h.catalog()
        let kept = try c.count("SELECT COUNT(*) FROM clips WHERE status = 'kept'")
        #expect(samples + manifest.clipsWithoutText == kept)

        // Schemas (reference validator).
        #expect(try SchemaValidator.validate([Self.compact(first["dataset.json"]!)], schema: "dataset.schema.json") == [nil])
        let sidecars = first.filter { $0.key.hasSuffix(".json") && $0.key.contains("shard-") }.map { Self.compact($0.value) }
        #expect(try SchemaValidator.validate(sidecars, schema: "shard-sidecar.schema.json").allSatisfy { $0 == nil })
        let sizes = first.filter { $0.key.hasSuffix("sizes.json") }.map { Self.compact($0.value) }
        #expect(try SchemaValidator.validate(sizes, schema: "sizes.schema.json").allSatisfy { $0 == nil })
        #expect(try SchemaValidator.validate(sampleJSON, schema: "sample.schema.json").allSatisfy { $0 == nil })

        // verify passes; Python's webdataset reads every sample and decodes every FLAC.
        let v = try h.shard(["verify", latest])
        #expect(v.status == 0, "\(v.stdoutText) \(v.stderr)")
        let check = try TestPython.tool("webdataset_check.py", [latest]).stdoutText
        let parsed = try JSONSerialization.jsonObject(with: Data(check.utf8)) as? [String: Any]
        let splits = parsed?["splits"] as? [String: [String: Any]] ?? [:]
        for (name, info) in manifest.splits {
            #expect(splits[name]?["samples"] as? Int == info.samples)
            #expect(splits[name]?["bad"] as? Int == 0)
        }
    }

    static func compact(_ data: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: data),
              let out = try? JSONSerialization.data(withJSONObject: object) else { return "" }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func crashResumeShard() throws {
        let h = try Self.corpus()
        let args = ["--samples-per-shard", "1", "--split", "train=1.0"]
        let started = Date()
        #expect(try h.shard(args + ["--out", h.dir.file("reference")]).status == 0)
        let wall = Date().timeIntervalSince(started)
        let reference = Self.files(h.dir.file("reference"))
        // A crash's leftovers: a partial shard, a shard without its sidecar, a missing shard.
        let out = h.dir.file("resumed")
        #expect(try h.shard(args + ["--out", out]).status == 0)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: out + "/train/shard-000003.tar.part"))
        try FileManager.default.removeItem(atPath: out + "/train/shard-000002.json")
        try FileManager.default.removeItem(atPath: out + "/train/shard-000004.tar")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: out + "/train/shard-000005.tar"))
        try FileManager.default.removeItem(atPath: out + "/dataset.json")
        #expect(try h.shard(args + ["--out", out]).status == 0)
        #expect(Self.files(out) == reference)  // the stale .part is gone too
        // A real kill -9 mid-run, then a re-run, gives the same bytes with no partial file left
        // (MULAN_KILL_POINTS seeded kill points; 3 in `make test`).
        var interrupted = 0
        let delays = KillHarness.delays(wall: wall, stage: "shard")
        for (i, delay) in delays.enumerated() {
            let dir = h.dir.file("killed-\(i)")
            let (delay, landed) = try KillHarness.killMidRun(
                IngestHarness.shardBinary, args + ["--out", dir, "--workdir", h.workdir, "--quiet"],
                after: delay) { try KillHarness.remove(dir) }
            if landed { interrupted += 1 }
            let progress = IngestHarness.files(below: dir).filter { $0.hasSuffix(".tar") }.count
            #expect(try h.shard(args + ["--out", dir]).status == 0)
            let files = Self.files(dir)
            let leftovers = KillHarness.leftovers(below: dir)
            #expect(files == reference, "kill point \(i)")
            #expect(leftovers.isEmpty, "kill point \(i): \(leftovers)")
            KillHarness.record(stage: "shard", point: i, delay: delay, interrupted: landed, progress: progress,
                               identical: files == reference, leftovers: leftovers)
        }
        #expect(interrupted == delays.count, "only \(interrupted) of \(delays.count) runs were interrupted")
    }

    @Test func byteLimitAndIncrementalDatasets() throws {
        let h = try Self.corpus()
        // --max-shard-bytes closes shards before they pass the limit (a single larger sample still fits).
        let limit = 1_200_000
        #expect(try h.shard(["--max-shard-bytes", "\(limit)", "--split", "train=1.0", "--out", h.dir.file("small")]).status == 0)
        let manifest = try JSONDecoder().decode(DatasetManifest.self,
                                                from: Data(contentsOf: URL(fileURLWithPath: h.dir.file("small/dataset.json"))))
        let train = manifest.splits["train"]!
        #expect(train.shards.count > 1)
        for shard in train.shards {
            let size = try FileManager.default.attributesOfItem(atPath: h.dir.file("small/train/" + shard))[.size] as? Int ?? 0
            #expect(size <= limit + 10240, "\(shard) is \(size) bytes")
        }
        // A grown catalog gives a new dataset in a new folder; the published one is untouched.
        #expect(try h.shard(["--split", "train=1.0"]).status == 0)
        let first = try FileManager.default.destinationOfSymbolicLink(atPath: h.workdir + "/shards/latest")
        let before = Self.files(h.workdir + "/shards/" + first)
        try TestMedia.tone(h.dir.file("a/new.ogg"), seconds: 31, frequency: 999,
                           tags: ["genre": "Jazz", "comment": "A calm jazz piece with soft piano and warm strings."])
        try h.dir.write("m2.csv", "track_id,path\nnew,a/new.ogg\n")
        #expect(try h.ingest(["--manifest", "m2.csv"]).status == 0)
        let vocab = try TestPython.bertVocabulary()
        #expect(try h.filter(["--source", "tags", "--vocab", vocab,
                              "--config", TestPaths.packageRoot + "/manifests/filters.toml"]).status == 0)
        #expect(try h.shard(["--split", "train=1.0"]).status == 0)
        let second = try FileManager.default.destinationOfSymbolicLink(atPath: h.workdir + "/shards/latest")
        #expect(second != first)
        #expect(Self.files(h.workdir + "/shards/" + first) == before)
        let grown = try JSONDecoder().decode(DatasetManifest.self, from: Data(contentsOf: URL(
            fileURLWithPath: h.workdir + "/shards/" + second + "/dataset.json")))
        #expect(grown.previousDatasetID == first)
        #expect(grown.splits["train"]!.samples == (try JSONDecoder().decode(DatasetManifest.self, from: before["dataset.json"]!))
            .splits["train"]!.samples + 1)
    }

    @Test func verifyNamesTheDamagedShardAndMember() throws {
        let h = try Self.corpus(tracks: 4)
        let out = h.dir.file("ds")
        #expect(try h.shard(["--samples-per-shard", "2", "--split", "train=1.0", "--out", out]).status == 0)
        #expect(try h.shard(["verify", out]).status == 0)
        // Flip one byte inside the first FLAC member of shard 0.
        let shard0 = out + "/train/shard-000000.tar"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard0))
        let name = String(decoding: bytes[0..<100].prefix { $0 != 0 }, as: UTF8.self)
        bytes[512 + 4000] ^= 0x55
        try bytes.write(to: URL(fileURLWithPath: shard0))
        let damaged = try h.shard(["verify", out])
        #expect(damaged.status == 3)
        #expect(damaged.stderr.contains("train/shard-000000.tar: SHA-256"))
        #expect(damaged.stderr.contains("member \(name)"), "\(damaged.stderr)")
        // Truncate shard 1.
        let shard1 = out + "/train/shard-000001.tar"
        let full = try Data(contentsOf: URL(fileURLWithPath: shard1))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: shard1))
        let truncated = try h.shard(["verify", out])
        #expect(truncated.stderr.contains("train/shard-000001.tar") && truncated.stderr.contains("truncated"))
    }
}
