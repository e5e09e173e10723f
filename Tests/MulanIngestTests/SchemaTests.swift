import Foundation
import MulanCore
import MulanFormats
import MulanTestSupport
import Testing

@Suite("JSON Schemas agree with the code")
struct SchemaTests {
    /// Rows the schema and the manifest reader must judge alike.
    static let rows = [
        #"{"track_id": "a", "path": "a.wav"}"#,
        #"{"track_id": "a/b.c", "path": "/x/a.wav", "start_s": 1.5, "end_s": 20, "split": "train"}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": "2.5", "end_s": "10"}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": null, "split": null, "other": [1, 2]}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": 0}"#,
        #"{"path": "a.wav"}"#,
        #"{"track_id": "", "path": "a.wav"}"#,
        #"{"track_id": "   ", "path": "a.wav"}"#,
        #"{"track_id": "a\tb", "path": "a.wav"}"#,
        #"{"track_id": 5, "path": "a.wav"}"#,
        #"{"track_id": "a"}"#,
        #"{"track_id": "a", "path": ""}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": -1}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": true}"#,
        #"{"track_id": "a", "path": "a.wav", "start_s": "soon"}"#,
        #"{"track_id": "a", "path": "a.wav", "end_s": 0}"#,
        #"{"track_id": "a", "path": "a.wav", "split": 3}"#,
        #"[1, 2]"#,
    ]

    @Test func manifestSchemaMatchesTheReader() throws {
        let dir = TempDir()
        let path = try dir.write("m.jsonl", Self.rows.joined(separator: "\n") + "\n")
        let reader = try ManifestReader(path: path)
        var accepted: [Bool] = []
        while let entry = reader.next() {
            if case .row = entry { accepted.append(true) } else { accepted.append(false) }
        }
        let verdicts = try SchemaValidator.validate(Self.rows, schema: "manifest.schema.json")
        #expect(accepted.count == Self.rows.count)
        for (i, row) in Self.rows.enumerated() {
            #expect(accepted[i] == (verdicts[i] == nil), "\(row): reader \(accepted[i]), schema \(verdicts[i] ?? "ok")")
        }
    }

    @Test func exampleManifestsAreValid() throws {
        let root = TestPaths.packageRoot + "/manifests/"
        let jsonl = try String(contentsOfFile: root + "example.jsonl", encoding: .utf8)
            .split(separator: "\n").map(String.init)
        #expect(try SchemaValidator.validate(jsonl, schema: "manifest.schema.json").allSatisfy { $0 == nil })
        // The CSV example, row by row as the schema describes it (empty cells are absent).
        let reader = try ManifestReader(path: root + "example.csv")
        var count = 0
        while let entry = reader.next() {
            guard case .row = entry else { Issue.record("example.csv has a rejected row"); continue }
            count += 1
        }
        #expect(count == jsonl.count)
    }

    @Test func reportMatchesItsSchema() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.wav"), seconds: 31)
        try h.dir.write("m.csv", "track_id,path\na,a.wav\nb,missing.wav\n,x\n")
        #expect(try h.ingest(["--manifest", "m.csv", "--report", "r.json"]).status == 3)
        let report = try String(contentsOfFile: h.dir.file("r.json"), encoding: .utf8)
        let compact = try JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(with: Data(report.utf8)))
        let verdict = try SchemaValidator.validate([String(decoding: compact, as: UTF8.self)],
                                                   schema: "ingest-report.schema.json")
        #expect(verdict == [nil])
    }
}
