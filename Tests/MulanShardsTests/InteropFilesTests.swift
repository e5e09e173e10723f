import Foundation
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

/// LAION-CLAP's `text`/`tag` in every sample, the wids indexes and the Hugging Face dataset card
/// (python/tests/test_interop.py reads them with the real laion-clap, wids and datasets packages).
@Suite("mulan-shard interop files", .serialized)
struct InteropFilesTests {
    static func text(_ s: String) -> SampleRecord.Text { .init(text: s, tokenIDs: [1], rawTextID: 0) }

    @Test func captionsFollowTheDocumentedRule() {
        // Written out by hand from docs/shards.md: descriptions as they are, the tags joined into one
        // caption, playlists as they are, the AudioSet labels joined; each caption once.
        let texts: [String: [SampleRecord.Text]] = [
            "aset": [Self.text("Jazz"), Self.text("Piano"), Self.text("Jazz")],
            "playlists": [Self.text("late night jazz"), Self.text("a calm piano piece.")],
            "tags": [Self.text("jazz"), Self.text("piano"), Self.text("calm"), Self.text("jazz")],
            "descriptions": [Self.text("a calm piano piece."), Self.text("brushes on a snare drum.")],
        ]
        #expect(ClapFields.captions(texts) == ["a calm piano piece.", "brushes on a snare drum.", "jazz, piano, calm",
                                               "late night jazz", "Jazz, Piano"])
        #expect(ClapFields.tags(texts) == ["jazz", "piano", "calm"])
        #expect(ClapFields.captions(["tags": [Self.text("rock")]]) == ["rock"])
        #expect(ClapFields.tags(["descriptions": [Self.text("a song.")]]) == [])
    }

    @Test func samplesIndexesAndCardAgreeWithTheDatasetAndVerifyChecksThem() throws {
        let h = try ShardStageTests.corpus(tracks: 6)
        let out = h.dir.file("ds")
        let r = try h.shard(["--samples-per-shard", "3", "--split", "train=0.6,valid-a=0.4", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let manifest = try JSONDecoder().decode(DatasetManifest.self,
                                                from: Data(contentsOf: URL(fileURLWithPath: out + "/dataset.json")))
        // t1's manifest split is test; the others fall on the shares by their hash.
        #expect(Set(manifest.splits.keys) == ["train", "valid-a", "test"])

        var documents: [String] = []
        for (split, info) in manifest.splits {
            // The wids index: every shard of dataset.json, in order, with its sidecar's counts and the tar's size.
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/\(split).wids.json"))
            documents.append(ShardStageTests.compact(data))
            let index = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(index["wids_version"] as? Int == 1)
            let list = index["shardlist"] as? [[String: Any]] ?? []
            #expect(list.compactMap { $0["url"] as? String } == info.shards.map { "\(split)/\($0)" })
            let sizes = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/\(split)/sizes.json")))
                as? [String: Int] ?? [:]
            for entry in list {
                let url = entry["url"] as? String ?? ""
                #expect(entry["nsamples"] as? Int == sizes[String(url.dropFirst(split.count + 1))])
                let bytes = try FileManager.default.attributesOfItem(atPath: out + "/" + url)[.size] as? Int
                #expect(entry["filesize"] as? Int == bytes)
            }
            #expect(list.reduce(0) { $0 + ($1["nsamples"] as? Int ?? 0) } == info.samples)

            // Every sample carries text (non-empty, each kept description among them) and tag (the kept tags).
            for shard in info.shards {
                let reader = try TarReader(path: out + "/" + split + "/" + shard)
                while let m = try reader.next() {
                    guard m.name.hasSuffix(".json") else { continue }
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any])
                    let texts = object["texts"] as? [String: [[String: Any]]] ?? [:]
                    let captions = object["text"] as? [String] ?? []
                    let tags = (texts["tags"] ?? []).compactMap { $0["text"] as? String }
                    #expect(!captions.isEmpty)
                    #expect(object["tag"] as? [String] == tags)
                    for d in texts["descriptions"] ?? [] { #expect(captions.contains(d["text"] as? String ?? "")) }
                    if !tags.isEmpty { #expect(captions.contains(tags.joined(separator: ", "))) }
                    #expect(object.keys.contains("duplicate_group") && object["duplicate_group"] is NSNull)
                }
            }
        }
        #expect(try SchemaValidator.validate(documents, schema: "wids-index.schema.json").allSatisfy { $0 == nil })

        // The card names each split's tars; a split name with '-' becomes '_' for Hugging Face.
        let card = try String(contentsOfFile: out + "/README.md", encoding: .utf8)
        #expect(card.hasPrefix("---\n"))
        #expect(card.contains("  - split: \"train\"\n    path: \"train/shard-*.tar\"\n"))
        #expect(card.contains("  - split: \"valid_a\"\n    path: \"valid-a/shard-*.tar\"\n"))
        #expect(card.contains("  - name: \"valid_a\"\n    num_examples: \(manifest.splits["valid-a"]!.samples)\n"))

        // verify checks all of it and names what is missing or changed.
        #expect(try h.shard(["verify", out]).status == 0)
        try FileManager.default.removeItem(atPath: out + "/train.wids.json")
        try Data((card + "edited\n").utf8).write(to: URL(fileURLWithPath: out + "/README.md"))
        let v = try h.shard(["verify", out])
        #expect(v.status == 3)
        #expect(v.stderr.contains("train.wids.json: missing"), "\(v.stderr)")
        #expect(v.stderr.contains("README.md: differs"), "\(v.stderr)")
        // A re-run with the same options keeps the shards and writes both again, byte for byte.
        #expect(try h.shard(["--samples-per-shard", "3", "--split", "train=0.6,valid-a=0.4", "--out", out]).status == 0)
        #expect(try String(contentsOfFile: out + "/README.md", encoding: .utf8) == card)
        #expect(try h.shard(["verify", out]).status == 0)
    }
}
