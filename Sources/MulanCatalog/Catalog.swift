import Foundation
import MulanCore

/// A clip as the catalog records it.
public struct ClipRecord: Sendable, Hashable {
    public enum Status: String, Sendable { case kept, silent }
    public var index: Int
    public var startSeconds: Double
    public var durationSeconds: Double
    public var sampleRate: Int
    public var stats: ClipStats
    public var status: Status
    /// Path of the FLAC file relative to the work directory, and its SHA-256 (kept clips only).
    public var flacPath: String?
    public var flacSHA256: String?
    /// EBU R128 loudness of the stored samples (kept clips; nil: not measured, e.g. silent clips).
    public var loudness: ClipLoudness?
    /// What `--loudness-target` did before encoding (nil when normalization is off).
    public var normalization: LoudnessNormalization?

    public init(index: Int, startSeconds: Double, durationSeconds: Double, sampleRate: Int, stats: ClipStats,
                status: Status, flacPath: String?, flacSHA256: String?, loudness: ClipLoudness? = nil,
                normalization: LoudnessNormalization? = nil) {
        self.index = index
        self.startSeconds = startSeconds
        self.durationSeconds = durationSeconds
        self.sampleRate = sampleRate
        self.stats = stats
        self.status = status
        self.flacPath = flacPath
        self.flacSHA256 = flacSHA256
        self.loudness = loudness
        self.normalization = normalization
    }
}

/// A raw text that came with a track (for ingest: its container and stream tags).
public struct RawText: Sendable, Hashable {
    public var origin: String
    public var field: String
    public var text: String
    public var source: TextSource?
    /// Invalid UTF-8 in the original was replaced by U+FFFD (`raw_texts.repaired`).
    public var repaired: Bool

    public init(origin: String, field: String, text: String, source: TextSource? = nil, repaired: Bool = false) {
        self.origin = origin
        self.field = field
        self.text = text
        self.source = source
        self.repaired = repaired
    }
}

/// Everything ingest learned about one track: the row of `tracks`, its clips and its raw texts.
public struct TrackRecord: Sendable {
    public enum Status: String, Sendable { case ingested, failed }
    public var row: ManifestRow
    public var status: Status
    public var reason: FailureReason?
    public var detail: String?
    public var fileSize: Int?
    public var contentHash: String?
    public var container: String?
    public var codec: String?
    public var originalSampleRate: Int?
    public var originalChannels: Int?
    public var channelLayout: String?
    public var durationSeconds: Double?
    public var decodeErrors = 0
    public var tailDroppedSeconds = 0.0
    /// The gain applied to the downmix of stored clips (1 for mono input; 1/√2 for stereo).
    public var downmixGain = 1.0
    public var sampleRate: Int
    public var settingsKey: String
    public var clips: [ClipRecord] = []
    public var texts: [RawText] = []
    /// The fingerprint of the decoded audio (nil when decoding never started).
    public var fingerprint: Fingerprint?
    /// `--loudness-target` and `--loudness-max-true-peak` when normalization was on (nil: off).
    public var loudnessTarget: (lufs: Double, maxTruePeakDB: Double)?

    public init(row: ManifestRow, status: Status, sampleRate: Int, settingsKey: String) {
        self.row = row
        self.status = status
        self.sampleRate = sampleRate
        self.settingsKey = settingsKey
    }

    public var keptClips: Int { clips.filter { $0.status == .kept }.count }
    public var silentClips: Int { clips.filter { $0.status == .silent }.count }
}

/// What the catalog already holds for a track id, to decide whether to redo it.
public struct PreviousTrack: Sendable, Hashable {
    public var contentHash: String?
    public var settingsKey: String
    public var status: String
    public var reason: String?
    public var detail: String?
    /// Whether a fingerprint row exists (tracks ingested before fingerprints get one on a re-run).
    public var hasFingerprint = true
    /// Kept clips without a loudness measurement (ingested before schema version 5, or with
    /// `--loudness off`): a re-run that measures loudness measures their stored files.
    public var clipsWithoutLoudness: [StoredClip] = []
    /// Kept clips measured without their true peak (`--loudness integrated`): a `full` re-run adds it.
    public var clipsWithoutTruePeak: [StoredClip] = []
}

/// A kept clip's place on its track and its file in the store.
public struct StoredClip: Sendable, Hashable {
    public var index: Int
    /// Relative to the work directory (`clips/ab/cd/<sha256>.flac`).
    public var flacPath: String

    public init(index: Int, flacPath: String) {
        self.index = index
        self.flacPath = flacPath
    }
}

/// The SQLite catalog of a work directory: tracks, clips, raw texts, rejected rows and runs.
/// One `Catalog` is the single writer of a run.
public final class Catalog {
    /// The connection; internal: the stages call the typed stores (`TextFilterStore`, …) and the
    /// methods below, never SQL of their own (tests reach it with `@testable import MulanCatalog`).
    let database: Database

    /// The catalog file's path.
    public var path: String { database.path }

    /// Opens the catalog at `path`, creating it and applying pending migrations.
    public init(path: String) throws(MulanError) {
        database = try Database(path: path)
        try Migrations.apply(to: database)
    }

    /// Opens a finished catalog read-only and immutable (see `Database.init(path:readOnly:immutable:)`):
    /// a worker's part that the stage reading it must not lock or change. Its schema must be the
    /// current one (parts are migrated by the stages that write them).
    public init(finishedAt path: String) throws(MulanError) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw MulanError(.catalog, "there is no catalog at \(path)", hint: "run mulan-ingest for it first")
        }
        database = try Database(path: path, immutable: true)
        let version = try database.row("SELECT MAX(version) FROM schema_migrations")?[0].int ?? 0
        if version != Self.schemaVersion {
            throw MulanError(.catalog, "the catalog \(path) has schema version \(version), this mulan reads \(Self.schemaVersion)",
                             hint: version < Self.schemaVersion ? "run mulan-filter (or mulan-ingest) on it with this mulan first"
                                 : "use a newer mulan")
        }
    }

    public static var schemaVersion: Int { Migrations.all.last?.version ?? 0 }

    /// The migration versions this mulan applies, in order (numbers may have gaps: branches reserve them).
    public static var migrationVersions: [Int] { Migrations.all.map(\.version) }

    // MARK: Runs

    public func beginRun(stage: String, settings: String) throws(MulanError) -> Int64 {
        try database.run("INSERT INTO runs (stage, started_at, settings) VALUES (?, ?, ?)",
                         [stage, Timestamp.now(), settings])
        return database.lastInsertRowID
    }

    public func finishRun(_ id: Int64, summary: String) throws(MulanError) {
        try database.run("UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?", [Timestamp.now(), summary, id])
    }

    // MARK: Tracks

    public func previous(trackID: String) throws(MulanError) -> PreviousTrack? {
        guard let r = try database.row(
            """
            SELECT t.content_hash, t.settings_key, t.status, t.reason, t.detail, f.track_rowid IS NOT NULL, t.id,
                   EXISTS (SELECT 1 FROM clips c WHERE c.track_rowid = t.id AND c.status = 'kept'
                           AND (c.loudness_status IS NULL OR (c.loudness_status != 'failed' AND c.true_peak_db IS NULL)))
            FROM tracks t LEFT JOIN fingerprints f ON f.track_rowid = t.id WHERE t.track_id = ?
            """, [trackID])
        else { return nil }
        var previous = PreviousTrack(contentHash: r[0].string, settingsKey: r[1].string ?? "", status: r[2].string ?? "",
                                     reason: r[3].string, detail: r[4].string, hasFingerprint: r[5].int != 0)
        if let rowid = r[6].int, r[7].int != 0 {
            // A kept clip is never digital silence, so a measured one has a true peak unless it was
            // measured without (`--loudness integrated`).
            for row in try database.rows("""
                SELECT clip_index, flac_path, loudness_status IS NULL FROM clips
                WHERE track_rowid = ? AND status = 'kept'
                AND (loudness_status IS NULL OR (loudness_status != 'failed' AND true_peak_db IS NULL)) ORDER BY clip_index
                """, [rowid]) {
                guard let index = row[0].int, let path = row[1].string else { continue }
                if row[2].int != 0 {
                    previous.clipsWithoutLoudness.append(StoredClip(index: index, flacPath: path))
                } else {
                    previous.clipsWithoutTruePeak.append(StoredClip(index: index, flacPath: path))
                }
            }
        }
        return previous
    }

    /// Updates where an unchanged track was listed (manifest, line, split) without touching its clips.
    public func touch(_ row: ManifestRow, runID: Int64) throws(MulanError) {
        try database.run("""
            UPDATE tracks SET manifest_file = ?, manifest_line = ?, split = ?, source_path = ?
            WHERE track_id = ?
            """, [row.origin.file, row.origin.line, row.split, row.path, row.trackID])
    }

    /// Replaces everything recorded for the track in one transaction. Store files that the old
    /// record referenced and the new one does not are queued in `file_gc` in the same transaction.
    public func replace(_ record: TrackRecord, runID: Int64) throws {
        try database.transaction {
            let r = record.row
            if let old = try database.row("SELECT id FROM tracks WHERE track_id = ?", [r.trackID])?[0].int {
                let newHashes = Set(record.clips.compactMap(\.flacSHA256))
                for sha in try database.rows(
                    "SELECT DISTINCT flac_sha256 FROM clips WHERE track_rowid = ? AND flac_sha256 IS NOT NULL", [old])
                    .compactMap({ $0[0].string }) where !newHashes.contains(sha) {
                    try database.run("INSERT OR IGNORE INTO file_gc (sha256) VALUES (?)", [sha])
                }
                try database.run("DELETE FROM tracks WHERE id = ?", [old])
            }
            try database.run("DELETE FROM raw_texts WHERE track_id = ? AND origin LIKE 'container:%'", [r.trackID])
            try database.run("""
                INSERT INTO tracks (track_id, source_path, manifest_file, manifest_line, split, start_s, end_s,
                    file_size, content_hash, container, codec, orig_sample_rate, orig_channels, channel_layout,
                    duration_s, status, reason, detail, decode_errors, clips_kept, clips_silent, tail_dropped_s,
                    downmix_gain, sample_rate, settings_key, run_id, updated_at, loudness_target_lufs,
                    loudness_max_true_peak_db)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [r.trackID, r.path, r.origin.file, r.origin.line, r.split, r.startSeconds, r.endSeconds,
                      record.fileSize, record.contentHash, record.container, record.codec,
                      record.originalSampleRate, record.originalChannels, record.channelLayout,
                      record.durationSeconds, record.status.rawValue, record.reason?.rawValue, record.detail,
                      record.decodeErrors, record.keptClips, record.silentClips, record.tailDroppedSeconds,
                      record.downmixGain, record.sampleRate, record.settingsKey, runID, Timestamp.now(),
                      record.loudnessTarget?.lufs, record.loudnessTarget?.maxTruePeakDB])
            let rowid = database.lastInsertRowID
            for c in record.clips {
                try database.run("""
                    INSERT INTO clips (track_rowid, clip_index, start_s, duration_s, sample_rate, rms, peak,
                        silence_share, status, flac_path, flac_sha256, lufs, loudness_range, true_peak_db,
                        loudness_status, lufs_before, true_peak_before_db, loudness_gain_db)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [rowid, c.index, c.startSeconds, c.durationSeconds, c.sampleRate, c.stats.rms,
                          c.stats.peak, c.stats.silenceShare, c.status.rawValue, c.flacPath, c.flacSHA256,
                          c.loudness?.integratedLUFS, c.loudness?.loudnessRange, c.loudness?.truePeakDB,
                          c.loudness?.status.rawValue, c.normalization?.before.integratedLUFS,
                          c.normalization?.before.truePeakDB, c.normalization?.gainDB])
            }
            for t in record.texts {
                try database.run("INSERT INTO raw_texts (track_id, origin, field, text, source, repaired) VALUES (?, ?, ?, ?, ?, ?)",
                                 [r.trackID, t.origin, t.field, t.text, t.source?.rawValue, t.repaired])
            }
            if let fingerprint = record.fingerprint {
                try insertFingerprint(fingerprint, trackRowID: rowid, contentHash: record.contentHash)
            }
        }
    }

    // MARK: Fingerprints

    /// Adds (or replaces) the fingerprint of an unchanged track that was ingested before
    /// fingerprints existed; its clips are untouched.
    public func putFingerprint(_ fingerprint: Fingerprint, trackID: String, contentHash: String?) throws {
        try database.transaction {
            guard let rowid = try database.row("SELECT id FROM tracks WHERE track_id = ?", [trackID])?[0].int else { return }
            try insertFingerprint(fingerprint, trackRowID: Int64(rowid), contentHash: contentHash)
        }
    }

    private func insertFingerprint(_ f: Fingerprint, trackRowID: Int64, contentHash: String?) throws(MulanError) {
        try database.run("""
            INSERT OR REPLACE INTO fingerprints (track_rowid, algorithm, sample_rate, duration_s, item_s, item_count, raw,
                status, detail, content_hash, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [trackRowID, f.algorithm, f.sampleRate, f.durationSeconds, f.itemSeconds, f.items.count,
                  f.littleEndianBytes, f.status.rawValue, f.detail, contentHash, Timestamp.now()])
    }

    // MARK: Loudness

    /// Records the loudness of kept clips of an unchanged track measured from their stored files
    /// (clips ingested before schema version 5); nothing else of the track changes.
    public func putLoudness(_ loudness: [Int: ClipLoudness], trackID: String) throws {
        try database.transaction {
            guard let rowid = try database.row("SELECT id FROM tracks WHERE track_id = ?", [trackID])?[0].int else { return }
            for (index, l) in loudness.sorted(by: { $0.key < $1.key }) {
                try database.run("""
                    UPDATE clips SET lufs = ?, loudness_range = ?, true_peak_db = ?, loudness_status = ?
                    WHERE track_rowid = ? AND clip_index = ? AND status = 'kept'
                    """, [l.integratedLUFS, l.loudnessRange, l.truePeakDB, l.status.rawValue, rowid, index])
            }
        }
    }

    // MARK: Annotation files

    /// What was loaded from an annotation file: its hash and the options it was read with.
    public func textFile(path: String) throws(MulanError) -> (sha256: String, options: String)? {
        guard let r = try database.row("SELECT sha256, options FROM text_files WHERE path = ?", [path]) else { return nil }
        return (r[0].string ?? "", r[1].string ?? "")
    }

    /// Replaces everything recorded from the file `path` in one transaction: its texts and its
    /// rejects are deleted, `body` inserts the new ones, and the file's row records the result.
    public func replaceTextFile(path: String, format: String, sha256: String, options: String, runID: Int64,
                                _ body: (TextInserter) throws -> (texts: Int, rejects: Int)) throws {
        try database.transaction {
            try database.run("DELETE FROM raw_texts WHERE origin_file = ?", [path])
            try database.run("DELETE FROM rejected_rows WHERE manifest_file = ?", [path])
            let counts = try body(TextInserter(catalog: self, runID: runID, origin: "file:" + format))
            try database.run("""
                INSERT OR REPLACE INTO text_files (path, format, sha256, options, texts, rejects, run_id, loaded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [path, format, sha256, options, counts.texts, counts.rejects, runID, Timestamp.now()])
        }
    }

    /// Inserts the texts and rejects of one annotation file (inside `replaceTextFile`).
    public struct TextInserter {
        let catalog: Catalog
        let runID: Int64
        let origin: String

        public func insert(_ a: TextAnnotation) throws(MulanError) {
            try catalog.database.run("""
                INSERT INTO raw_texts (track_id, origin, field, text, origin_file, origin_line, source, group_id, repaired)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [a.trackID, origin, a.field, a.text, a.origin.file, a.origin.line, a.source.rawValue, a.group,
                      a.repaired])
        }

        public func reject(_ r: RejectedRow) throws(MulanError) {
            try catalog.database.run("""
                INSERT INTO rejected_rows (manifest_file, manifest_line, track_id, reason, detail, raw, run_id)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (manifest_file, manifest_line) DO UPDATE SET
                    detail = detail || '; ' || excluded.detail
                """, [r.origin.file ?? "", r.origin.line ?? 0, r.origin.trackID, r.reason.rawValue, r.detail, r.raw, runID])
        }
    }

    /// Texts of an annotation file whose track id is not (yet) in the catalog.
    public func unmatchedTexts(file: String) throws(MulanError) -> Int {
        try count("""
            SELECT COUNT(*) FROM raw_texts r WHERE r.origin_file = ?
            AND NOT EXISTS (SELECT 1 FROM tracks t WHERE t.track_id = r.track_id)
            """, [file])
    }

    // MARK: Rejected manifest rows

    /// Forgets the rejects of a manifest before it is read again (its rows are re-judged).
    public func clearRejects(manifest: String) throws(MulanError) {
        try database.run("DELETE FROM rejected_rows WHERE manifest_file = ?", [manifest])
    }

    public func addReject(_ reject: RejectedRow, runID: Int64) throws(MulanError) {
        try database.run("""
            INSERT OR REPLACE INTO rejected_rows (manifest_file, manifest_line, track_id, reason, detail, raw, run_id)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, [reject.origin.file ?? "", reject.origin.line ?? 0, reject.origin.trackID,
                  reject.reason.rawValue, reject.detail, reject.raw, runID])
    }

    // MARK: Clip store bookkeeping

    /// Whether any clip row references the store file with this hash.
    public func isReferenced(sha256: String) throws(MulanError) -> Bool {
        try database.row("SELECT 1 FROM clips WHERE flac_sha256 = ? LIMIT 1", [sha256]) != nil
    }

    /// Store files queued for deletion by `replace` that may not have been deleted yet.
    public func pendingGarbage() throws(MulanError) -> [String] {
        try database.rows("SELECT sha256 FROM file_gc").compactMap { $0[0].string }
    }

    public func forgetGarbage(sha256: String) throws(MulanError) {
        try database.run("DELETE FROM file_gc WHERE sha256 = ?", [sha256])
    }

    // MARK: Counts

    /// The integer of the first column of the first row of `sql` (0: none); for this module and tests.
    func count(_ sql: String, _ arguments: [any SQLBindable] = []) throws(MulanError) -> Int {
        try database.row(sql, arguments)?[0].int ?? 0
    }
}
