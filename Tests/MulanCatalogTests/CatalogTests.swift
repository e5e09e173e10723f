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
        let error = #expect(throws: MulanError.self) { try c.replace(bad, runID: run) }
        #expect(error?.code == .catalog && error?.description.contains("UNIQUE") == true, "\(String(describing: error))")
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

    /// A catalog written before loudness existed (schema 4) gains the columns with NULL in its
    /// rows; `previous` lists the kept clips to measure; `putLoudness` fills them in.
    @Test func migrationFiveAddsLoudnessAndOldRowsStayNull() throws {
        let dir = TempDir()
        let path = dir.file("c.sqlite")
        do {
            let db = try Database(path: path)
            try db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            for m in Migrations.all where m.version <= 4 {
                try db.execute(m.sql)
                try m.after?(db)
                try db.run("INSERT INTO schema_migrations VALUES (?, ?, 'then')", [m.version, m.name])
            }
            try db.execute("""
                INSERT INTO tracks (id, track_id, source_path, status, sample_rate, settings_key, updated_at)
                    VALUES (1, 't1', '/x/t1.wav', 'ingested', 16000, 'k', 'then');
                INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak, silence_share,
                    status, flac_path, flac_sha256) VALUES
                    (1, 0, 0, 30, 16000, 0.1, 0.5, 0, 'kept', 'clips/aa.flac', 'aa'),
                    (1, 1, 30, 30, 16000, 0, 0, 1, 'silent', NULL, NULL);
                """)
        }
        let c = try Catalog(path: path)
        #expect(try c.count("SELECT COUNT(*) FROM schema_migrations WHERE version = 5") == 1)
        #expect(try c.count("SELECT COUNT(*) FROM clips WHERE lufs IS NULL AND loudness_status IS NULL AND loudness_gain_db IS NULL") == 2)
        #expect(try c.count("SELECT COUNT(*) FROM tracks WHERE loudness_target_lufs IS NULL") == 1)
        #expect(try c.previous(trackID: "t1")?.clipsWithoutLoudness == [StoredClip(index: 0, flacPath: "clips/aa.flac")])
        try c.putLoudness([0: ClipLoudness(status: .measured, integratedLUFS: -23.5, loudnessRange: 4, truePeakDB: -3)],
                          trackID: "t1")
        #expect(try c.previous(trackID: "t1")?.clipsWithoutLoudness == [])
        let row = try #require(try c.database.row("SELECT lufs, loudness_range, true_peak_db, loudness_status FROM clips WHERE clip_index = 0"))
        #expect(row[0].double == -23.5 && row[1].double == 4 && row[2].double == -3 && row[3].string == "measured")
        // A status outside the documented ones is refused.
        let error = #expect(throws: MulanError.self) { try c.database.run("UPDATE clips SET loudness_status = 'loud'") }
        #expect(error?.code == .catalog && error?.description.contains("CHECK") == true, "\(String(describing: error))")
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
