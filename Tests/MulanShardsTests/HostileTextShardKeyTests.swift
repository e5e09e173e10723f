import Foundation
import MulanCatalog
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

/// Path-like and dotted track ids through ingest, text, filter and mulan-shard: shard keys are a
/// hash of the id (WebDataset splits member names at the first dot of the basename and `/` makes
/// sub-folders), so every sample comes back whole, under its key, with its id and texts.
@Suite("HostileText: path-like track ids in WebDataset shards", .serialized)
struct HostileTextShardKeyTests {
    static let ids = ["../../etc/passwd", "a/../../b", ".hidden", "...", ".", "..", "/abs/x.flac", "a.b.c",
                      "a\\..\\b", "x/", "key.json", "\u{202E}cod.exe"]

    @Test func pathLikeIDsMakeSafeKeysAndWholeSamples() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        try TestMedia.tone(h.dir.file("audio/t.ogg"), seconds: 31)
        var csv = "track_id,path\n"
        var jsonl = ""
        for (i, id) in Self.ids.enumerated() {
            csv += "\"\(id)\",audio/t.ogg\n"
            let object: [String: Any] = ["track_id": id, "tags": ["rock", "tag \(i)", "tag \(i)"]]
            jsonl += String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self) + "\n"
        }
        try h.dir.write("m.csv", csv)
        try h.dir.write("t.jsonl", jsonl)
        try h.dir.write("one.toml", "[tags]\nmin_frequency = 1\n")
        let before = IngestHarness.files(below: h.dir.path)
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        #expect(try h.ingest(["text", "--format", "generic", "t.jsonl"]).status == 0)
        #expect(try h.filter(["--source", "tags", "--vocab", vocab, "--config", h.dir.file("one.toml")]).status == 0)
        let r = try h.shard(["--split", "train=0.5,valid=0.25,test=0.25", "--samples-per-shard", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        let latest = h.workdir + "/shards/latest"
        let v = try h.shard(["verify", latest])
        #expect(v.status == 0, "\(v.stdoutText) \(v.stderr)")
        // Only the work directory grew; no file or folder is named after an id.
        let added = IngestHarness.files(below: h.dir.path).subtracting(before)
        #expect(added.allSatisfy { $0.hasPrefix("work/") }, "\(added.sorted())")
        #expect(!added.contains { $0.contains("etc/") || $0.contains("hidden") || $0.contains("passwd") })

        // Member names are `<16 hex>_<clip index>.flac|json`: one dot, no slash.
        let dataset = try FileManager.default.destinationOfSymbolicLink(atPath: latest)
        for shard in IngestHarness.files(below: h.workdir + "/shards/" + dataset) where shard.hasSuffix(".tar") {
            let reader = try TarReader(path: latest + "/" + shard)
            while let m = try reader.next() {
                #expect(m.name.range(of: #"^[0-9a-f]{16}_[0-9]{4}\.(flac|json)$"#, options: .regularExpression) != nil,
                        "\(m.name)")
            }
        }

        // Python's webdataset reads every sample whole: key, track id and texts as mulan wrote them.
        let script = """
            import json, sys, webdataset
            root = sys.argv[1]
            manifest = json.load(open(f"{root}/dataset.json"))
            out = []
            for split, info in sorted(manifest["splits"].items()):
                urls = [f"{root}/{split}/{s}" for s in info["shards"]]
                for sample in webdataset.WebDataset(urls, shardshuffle=False):
                    meta = json.loads(sample["json"])
                    out.append({"key": sample["__key__"], "members": sorted(k for k in sample if not k.startswith("__")),
                                "flac_bytes": len(sample["flac"]), "meta_key": meta["key"], "track_id": meta["track_id"],
                                "tags": [t["text"] for t in meta["texts"].get("tags", [])]})
            print(json.dumps(out))
            """
        let py = try TestProcess.run(TestPython.path, ["-c", script, latest])
        #expect(py.status == 0, "\(py.stderr)")
        let samples = try JSONSerialization.jsonObject(with: py.stdout) as? [[String: Any]] ?? []
        #expect(samples.count == Self.ids.count)
        var seen: [String: [String]] = [:]
        for s in samples {
            let id = s["track_id"] as? String ?? ""
            let key = s["key"] as? String ?? ""
            #expect(key == ShardKeys.key(trackID: id, clipIndex: 0), "\(id): \(key)")
            #expect(s["meta_key"] as? String == key)
            #expect(s["members"] as? [String] == ["flac", "json"])
            #expect((s["flac_bytes"] as? Int ?? 0) > 1000)
            seen[id] = s["tags"] as? [String]
        }
        // Python compares strings by code point, Swift by canonical equivalence: none of these differ.
        #expect(Set(seen.keys) == Set(Self.ids))
        for (i, id) in Self.ids.enumerated() {
            #expect(seen[id] == ["rock", "tag \(i)"], "\(id)")  // the duplicate tag was dropped
        }
    }
}
