import Foundation
@testable import MulanCatalog
@testable import MulanShards
import MulanShardFormat
import MulanTestSupport
import Testing

/// Loudness in the shards: every sample's JSON carries the catalog's values, `--min-lufs` and
/// `--max-true-peak` leave clips out with their reasons counted in dataset.json, and ingest's
/// `--loudness-target` is recorded there.
@Suite("mulan-shard loudness", .serialized)
struct LoudnessShardTests {
    /// Four tracks at about −30, −45, −55 and −30 LUFS, each with two tags every track shares.
    static func corpus() throws -> IngestHarness {
        let h = IngestHarness()
        let gains = [0.0, -15, -25, 0]
        var manifest = "track_id,path\n"
        var texts = ""
        for (i, gain) in gains.enumerated() {
            try TestMedia.tone(h.dir.file("a/t\(i).ogg"), seconds: i == 0 ? 65 : 31, frequency: 220 + Double(i) * 97,
                               seed: i + 1, gainDB: gain)
            manifest += "t\(i),a/t\(i).ogg\n"
            texts += #"{"track_id": "t\#(i)", "tags": ["jazz", "piano"]}"# + "\n"
        }
        try h.dir.write("m.csv", manifest)
        try h.dir.write("texts.jsonl", texts)
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        #expect(try h.ingest(["text", "--format", "generic", "texts.jsonl"]).status == 0)
        let r = try h.filter(["--source", "tags", "--vocab", try TestPython.bertVocabulary(),
                              "--config", TestPaths.packageRoot + "/manifests/filters.toml"])
        #expect(r.status == 0, "\(r.stderr)")
        return h
    }

    static func manifest(_ dir: String) throws -> (DatasetManifest, Data) {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/dataset.json"))
        return (try JSONDecoder().decode(DatasetManifest.self, from: data), data)
    }

    /// Every sample JSON of a dataset, as text and as a dictionary.
    static func samples(_ dir: String, _ manifest: DatasetManifest) throws -> [(text: String, object: [String: Any])] {
        var out: [(String, [String: Any])] = []
        for (split, info) in manifest.splits {
            for shard in info.shards {
                let reader = try TarReader(path: dir + "/" + split + "/" + shard)
                while let m = try reader.next() {
                    guard m.name.hasSuffix(".json") else { continue }
                    let object = try JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any] ?? [:]
                    out.append((String(decoding: m.data, as: UTF8.self), object))
                }
            }
        }
        return out
    }

    @Test func samplesCarryLoudnessAndQuietClipsAreLeftOutWithReasons() throws {
        let h = try Self.corpus()
        let c = try h.catalog()
        // One clip as a catalog from before loudness would have it: not measured.
        try c.database.run("""
            UPDATE clips SET lufs = NULL, loudness_range = NULL, true_peak_db = NULL, loudness_status = NULL
            WHERE clip_index = 1 AND track_rowid = (SELECT id FROM tracks WHERE track_id = 't0')
            """)
        let kept = try c.count("SELECT COUNT(*) FROM clips WHERE status = 'kept'")
        #expect(kept == 5)

        // No filter: every clip ships, with its catalog values (null when not measured).
        let all = h.dir.file("all")
        #expect(try h.shard(["--split", "train=1.0", "--out", all]).status == 0)
        let (plain, plainData) = try Self.manifest(all)
        #expect(plain.loudnessFilter == nil && plain.loudnessNormalization == nil)
        #expect(!String(decoding: plainData, as: UTF8.self).contains("loudness"))
        let shipped = try Self.samples(all, plain)
        #expect(shipped.count == kept)
        for sample in shipped {
            let track = sample.object["track_id"] as? String ?? ""
            let index = sample.object["clip_index"] as? Int ?? -1
            let row = try #require(try c.database.row("""
                SELECT c.lufs, c.loudness_range, c.true_peak_db FROM clips c JOIN tracks t ON t.id = c.track_rowid
                WHERE t.track_id = ? AND c.clip_index = ?
                """, [track, index]))
            for (k, key) in ["lufs", "loudness_range", "true_peak_db"].enumerated() {
                #expect(sample.object.keys.contains(key), "every sample has \(key), null when unknown")
                if let expected = row[k].double {
                    #expect(abs((sample.object[key] as? Double ?? .nan) - expected) <= 0.0005 + 1e-9, "\(track) \(key)")
                } else {
                    #expect(sample.object[key] is NSNull, "\(track)/\(index) \(key)")
                }
            }
        }
        #expect(try SchemaValidator.validate(shipped.map(\.text), schema: "sample.schema.json").allSatisfy { $0 == nil })

        // --min-lufs -50: t2 (about −55 LUFS) is too quiet, t0's unmeasured clip cannot be shown to pass.
        let minimum = -50.0
        let filtered = h.dir.file("filtered")
        let r = try h.shard(["--split", "train=1.0", "--min-lufs", "\(minimum)", "--out", filtered])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("no loudness measurement"), "a warning says how to measure them: \(r.stderr)")
        #expect(r.stdoutText.contains("1 lufs-below-min"), "\(r.stdoutText)")
        let (m, data) = try Self.manifest(filtered)
        let quiet = try c.count("SELECT COUNT(*) FROM clips WHERE status = 'kept' AND lufs < ?", [minimum])
        #expect(quiet == 1)
        #expect(m.loudnessFilter?.minLUFS == minimum && m.loudnessFilter?.maxTruePeakDB == nil)
        #expect(m.loudnessFilter?.clipsDroppedByReason == ["lufs-below-min": quiet, "loudness-not-measured": 1,
                                                           "true-peak-above-max": 0])
        #expect(m.splits["train"]?.samples == kept - quiet - 1)
        #expect(m.datasetID != plain.datasetID)
        let left = try Self.samples(filtered, m)
        #expect(left.allSatisfy { ($0.object["lufs"] as? Double ?? -.infinity) >= minimum })
        #expect(!left.contains { $0.object["track_id"] as? String == "t2" })
        #expect(try SchemaValidator.validate([ShardStageTests.compact(data)], schema: "dataset.schema.json") == [nil])
        #expect(try h.shard(["verify", filtered]).status == 0)

        // --max-true-peak: the loud tracks' clips go, for that reason.
        let peaks = try c.database.rows("SELECT true_peak_db FROM clips WHERE true_peak_db IS NOT NULL ORDER BY true_peak_db")
            .compactMap { $0[0].double }
        let ceiling = ((peaks[0] + peaks[peaks.count - 1]) / 2).rounded()
        let above = peaks.filter { $0 > ceiling }.count
        #expect(above > 0 && above < peaks.count)
        let capped = h.dir.file("capped")
        #expect(try h.shard(["--split", "train=1.0", "--max-true-peak", "\(ceiling)", "--out", capped]).status == 0)
        let (cm, _) = try Self.manifest(capped)
        #expect(cm.loudnessFilter?.clipsDroppedByReason["true-peak-above-max"] == above)
        #expect(cm.splits["train"]?.samples == kept - above - 1)
    }

    @Test func ingestNormalizationIsRecordedInTheManifest() throws {
        let h = try Self.corpus()
        // Re-ingest at a loudness target (the texts, loaded from a file, stay with their decisions).
        #expect(try h.ingest(["--manifest", "m.csv", "--loudness-target", "-20"]).status == 0)
        let out = h.dir.file("normalized")
        let r = try h.shard(["--split", "train=1.0", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let (m, data) = try Self.manifest(out)
        let samples = m.splits["train"]?.samples ?? 0
        #expect(samples == 5)
        #expect(m.loudnessNormalization?.settings.map(\.targetLUFS) == [-20])
        #expect(m.loudnessNormalization?.settings.first?.maxTruePeakDB == -1)
        #expect(m.loudnessNormalization?.settings.first?.samples == samples)
        #expect(m.loudnessNormalization?.samplesNotNormalized == 0)
        #expect(r.stdoutText.contains("loudness normalization"))
        #expect(try SchemaValidator.validate([ShardStageTests.compact(data)], schema: "dataset.schema.json") == [nil])
        for sample in try Self.samples(out, m) {
            #expect(abs((sample.object["lufs"] as? Double ?? .nan) - -20) <= 0.011)
        }
    }
}
