import Foundation
@testable import MulanCatalog
import MulanCore
import MulanTestSupport
import Testing

@Suite("Catalog")
struct CatalogTests {
    func record(_ id: String, clips: [String]) -> TrackRecord {
        let row = ManifestRow(trackID: id, path: "/x/\(id).wav", origin: SourceLocation(file: "/m.csv", line: 2, trackID: id))
        var r = TrackRecord(row: row, status: .ingested, sampleRate: 16000, settingsKey: "k")
        r.contentHash = "hash-\(id)"
        r.clips = clips.enumerated().map { i, sha in
            ClipRecord(index: i, startSeconds: Double(i) * 30, durationSeconds: 30, sampleRate: 16000,
                       stats: ClipStats(rms: 0.1, peak: 0.5, silenceShare: 0), status: .kept,
                       flacPath: "clips/\(sha).flac", flacSHA256: sha)
        }
        r.texts = [RawText(origin: "container:format", field: "genre", text: "Jazz")]
        return r
    }

    @Test func migrationsAreRecordedAndIdempotent() throws {
        let dir = TempDir()
        _ = try Catalog(path: dir.file("c.sqlite"))
        let again = try Catalog(path: dir.file("c.sqlite"))
        let versions = try again.database.rows("SELECT version FROM schema_migrations").compactMap { $0[0].int }
        #expect(versions == Catalog.migrationVersions && versions.last == Catalog.schemaVersion)
    }

    @Test func newerSchemaIsRefused() throws {
        let dir = TempDir()
        let c = try Catalog(path: dir.file("c.sqlite"))
        try c.database.run("INSERT INTO schema_migrations VALUES (999, 'future', 'now')")
        #expect(throws: MulanError.self) { try Catalog(path: dir.file("c.sqlite")) }
    }

    @Test func replaceSwapsRowsAndQueuesUnreferencedFiles() throws {
        let dir = TempDir()
        let c = try Catalog(path: dir.file("c.sqlite"))
        let run = try c.beginRun(stage: "ingest", settings: "{}")
        try c.replace(record("t1", clips: ["aa", "bb"]), runID: run)
        try c.replace(record("t2", clips: ["bb"]), runID: run)
        #expect(try c.previous(trackID: "t1")?.contentHash == "hash-t1")
        #expect(try c.pendingGarbage().isEmpty)
        // Re-ingest t1 with new content: "aa" loses its only reference, "bb" is still used by t2.
        try c.replace(record("t1", clips: ["cc"]), runID: run)
        #expect(Set(try c.pendingGarbage()) == ["aa", "bb"])
        #expect(try !c.isReferenced(sha256: "aa"))
        #expect(try c.isReferenced(sha256: "bb"))
        #expect(try c.count("SELECT COUNT(*) FROM clips") == 2)
        #expect(try c.count("SELECT COUNT(*) FROM tracks") == 2)
        #expect(try c.count("SELECT COUNT(*) FROM raw_texts WHERE track_id = 't1'") == 1)
    }

    @Test func failedTransactionLeavesNothing() throws {
        let dir = TempDir()
        let c = try Catalog(path: dir.file("c.sqlite"))
        let run = try c.beginRun(stage: "ingest", settings: "{}")
        var bad = record("t1", clips: ["aa"])
        bad.clips.append(bad.clips[0])  // duplicate clip index violates UNIQUE
        #expect(throws: (any Error).self) { try c.replace(bad, runID: run) }
        #expect(try c.count("SELECT COUNT(*) FROM tracks") == 0)
        #expect(try c.count("SELECT COUNT(*) FROM raw_texts") == 0)
    }

    @Test func textWithNULAndUnicodeRoundTrips() throws {
        let dir = TempDir()
        let db = try Database(path: dir.file("d.sqlite"))
        try db.execute("CREATE TABLE t (v TEXT)")
        let value = "a\u{0}b — ünï 🎵"
        try db.run("INSERT INTO t VALUES (?)", [value])
        #expect(try db.row("SELECT v FROM t")?[0].string == value)
    }

    @Test func rejectsAreReplacedPerManifestLine() throws {
        let dir = TempDir()
        let c = try Catalog(path: dir.file("c.sqlite"))
        let run = try c.beginRun(stage: "ingest", settings: "{}")
        let reject = RejectedRow(origin: SourceLocation(file: "/m.csv", line: 3), reason: .invalidRow, detail: "d", raw: "r")
        try c.addReject(reject, runID: run)
        try c.addReject(reject, runID: run)
        #expect(try c.count("SELECT COUNT(*) FROM rejected_rows") == 1)
        try c.clearRejects(manifest: "/m.csv")
        #expect(try c.count("SELECT COUNT(*) FROM rejected_rows") == 0)
    }
}
