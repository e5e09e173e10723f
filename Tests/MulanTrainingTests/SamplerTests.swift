import Foundation
import MulanTestSupport
import MulanCore
@testable import MulanTraining
import Testing

/// The sampler over real shards: a dataset whose clips have tags (genre) and descriptions (comment).
@Suite("Sampler over shards", .serialized)
struct SamplerTests {
    static func dataset() throws -> (IngestHarness, DatasetSplit) {
        let h = IngestHarness()
        var manifest = "track_id,path,start_s,end_s,split\n"
        let genres = ["Jazz", "Rock", "Ambient", "Folk"]
        for i in 0..<10 {
            try TestMedia.tone(h.dir.file("a/t\(i).ogg"), seconds: i % 4 == 0 ? 65 : 31, frequency: 200 + Double(i) * 53,
                               tags: ["genre": genres[i % 4],
                                      "comment": "A calm \(genres[i % 4].lowercased()) piece with soft piano and warm strings number \(i)."],
                               seed: i + 1)
            manifest += "t\(i),a/t\(i).ogg,,,train\n"
        }
        try h.dir.write("m.csv", manifest)
        guard try h.ingest(["--manifest", "m.csv"]).status == 0 else { throw TestFailure("ingest failed") }
        for source in ["tags", "descriptions"] {
            let r = try h.filter(["--source", source, "--vocab", try TestPython.bertVocabulary(),
                                  "--config", TestPaths.packageRoot + "/manifests/filters.toml"])
            guard r.status == 0 else { throw TestFailure("filter failed: \(r.stderr)") }
        }
        guard try h.shard(["--samples-per-shard", "4", "--split", "train=1"]).status == 0 else { throw TestFailure("shard failed") }
        return (h, try DatasetSplit(dataset: h.workdir + "/shards/latest", split: "train"))
    }

    @Test func batchesFollowTheMixOverManyBatchesWithoutRepeatsInABatch() throws {
        let (harness, split) = try Self.dataset()
        defer { withExtendedLifetime(harness) {} }   // its folder holds the shards
        #expect(split.availableSources == [.tags, .descriptions])
        let clips = split.manifest.splits["train"]!.samples
        #expect(clips >= 12)
        for (spec, tagShare) in [("tags=2,descriptions=2,playlists=1,aset=1", 0.5), ("tags=3,descriptions=1", 0.75)] {
            let mix = try SourceMix(parsing: spec).restricted(to: split.availableSources)
            let sampler = Sampler(split: split, mix: mix, batchSize: 8, seed: 9, bufferSize: 5)
            var counts: [TextSource: Int] = [:]
            let batches = 150   // many epochs of this small dataset
            for k in 0..<batches {
                let batch = try sampler.batch(k)
                #expect(batch.count == 8)
                #expect(Set(batch.map(\.key)).count == batch.count, "a clip twice in batch \(k)")
                for ref in batch {
                    counts[ref.source, default: 0] += 1
                    #expect(!ref.tokenIDs.isEmpty)
                }
            }
            let total = Double(batches * 8)
            #expect(abs(Double(counts[.tags, default: 0]) / total - tagShare) < 1e-9, "\(spec): \(counts)")
            #expect(counts[.playlists] == nil && counts[.aset] == nil)
        }
    }

    @Test func restoringTheStateReplaysTheSameExamples() throws {
        let (harness, split) = try Self.dataset()
        defer { withExtendedLifetime(harness) {} }   // its folder holds the shards
        let a = Sampler(split: split, mix: .muLan.restricted(to: split.availableSources), batchSize: 6, seed: 4, bufferSize: 7)
        for k in 0..<9 { _ = try a.batch(k) }
        let state = a.state
        let next = try (9..<15).map { try a.batch($0) }
        let b = Sampler(split: split, mix: .muLan.restricted(to: split.availableSources), batchSize: 6, seed: 4, bufferSize: 7)
        try b.restore(state)
        #expect(try (9..<15).map { try b.batch($0) } == next)
        // Another seed gives another order.
        let c = Sampler(split: split, mix: .muLan.restricted(to: split.availableSources), batchSize: 6, seed: 5, bufferSize: 7)
        let d = Sampler(split: split, mix: .muLan.restricted(to: split.availableSources), batchSize: 6, seed: 4, bufferSize: 7)
        #expect(try c.batch(0) != d.batch(0))
    }

    @Test func everyClipOfASourceComesOncePerEpoch() throws {
        let (harness, split) = try Self.dataset()
        defer { withExtendedLifetime(harness) {} }   // its folder holds the shards
        let stream = SourceStream(split: split, source: .tags, seed: 1, bufferSize: 3)
        let n = split.manifest.splits["train"]!.samples
        var firstEpoch: [String] = []
        while stream.epoch == 0 { firstEpoch.append(try stream.next().key) }
        // The draw that started epoch 1 is not part of epoch 0.
        firstEpoch.removeLast()
        #expect(firstEpoch.count == n)
        #expect(Set(firstEpoch).count == n)
    }
}
