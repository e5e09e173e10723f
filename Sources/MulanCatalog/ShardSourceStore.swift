import Foundation
import MulanCore

/// What `mulan-shard` reads from a catalog: completed filter versions, the clips that have kept
/// text (with their loudness and audio filter decision), duplicate groups, and each sample's clip
/// row and kept texts.
public struct ShardSourceStore {
    let database: Database

    public init(_ catalog: Catalog) { database = catalog.database }

    // MARK: Versions

    /// Whether text filter `version` exists and completed.
    public func isCompleteFilterVersion(_ version: String) throws(MulanError) -> Bool {
        try database.selectFirst("SELECT 1 AS found FROM filter_versions WHERE version = ? AND completed_at IS NOT NULL",
                                 [version]) != nil
    }

    /// The completed text filter versions of `source` (dry runs left out) with their completion time.
    public func completedFilterVersions(source: String) throws(MulanError) -> [(version: String, completedAt: String)] {
        try database.select("""
            SELECT version, completed_at FROM filter_versions WHERE source = ? AND completed_at IS NOT NULL
            AND version NOT LIKE '%~dry-run'
            """, [source]).compactMap { row in
            guard let v = row["version"].string, let at = row["completed_at"].string else { return nil }
            return (v, at)
        }
    }

    /// Whether audio filter `version` exists and completed.
    public func isCompleteAudioFilterVersion(_ version: String) throws(MulanError) -> Bool {
        try database.selectFirst("SELECT 1 AS found FROM audio_filter_versions WHERE version = ? AND completed_at IS NOT NULL",
                                 [version]) != nil
    }

    /// The completed audio filter versions with their completion time.
    public func completedAudioFilterVersions() throws(MulanError) -> [(version: String, completedAt: String)] {
        try database.select("SELECT version, completed_at FROM audio_filter_versions WHERE completed_at IS NOT NULL")
            .compactMap { row in
                guard let v = row["version"].string, let at = row["completed_at"].string else { return nil }
                return (v, at)
            }
    }

    /// The vocabulary hash of one of the text filter `versions` (nil: none recorded).
    public func vocabularySHA256(versions: [String]) throws(MulanError) -> String? {
        try database.selectFirst("SELECT vocab_sha256 FROM filter_versions WHERE version IN (\(Self.placeholders(versions))) LIMIT 1",
                                 versions)?["vocab_sha256"].string
    }

    // MARK: Clips

    /// The lowest sample rate of the ingested tracks (nil: none).
    public func minimumIngestedSampleRate() throws(MulanError) -> Int? {
        try database.selectFirst("SELECT MIN(sample_rate) AS rate FROM tracks WHERE status = 'ingested'")?["rate"].int
    }

    /// The longest kept clip, seconds (nil: none).
    public func maximumKeptClipSeconds() throws(MulanError) -> Double? {
        try database.selectFirst("SELECT MAX(duration_s) AS seconds FROM clips WHERE status = 'kept'")?["seconds"].double
    }

    /// A kept clip of an ingested track with a kept text of a selected version.
    public struct CandidateClip: Sendable {
        public var clipID: Int
        public var trackID: String
        public var clipIndex: Int
        public var split: String?
        public var flacSHA256: String?
        public var loudnessStatus: String?
        public var lufs: Double?
        public var truePeakDB: Double?
        public var loudnessRange: Double?
        public var loudnessTargetLUFS: Double?
        public var loudnessMaxTruePeakDB: Double?
        /// The reason the audio filter version asked for dropped the clip (nil: kept, or no version).
        public var audioDropReason: String?
    }

    /// Calls `body` for each kept clip of an ingested track that has a kept text of one of `versions`
    /// (itself or through a duplicate merged into it), in clip id order, one row in memory at a time.
    public func forEachCandidateClip(versions: [String], audioFilterVersion: String?,
                                     _ body: (CandidateClip) throws -> Void) throws {
        let placeholders = Self.placeholders(versions)
        try database.forEachRow("""
            SELECT c.id AS clip_id, t.track_id, c.clip_index, t.split, c.flac_sha256, c.loudness_status, c.lufs, c.true_peak_db,
                   c.loudness_range, t.loudness_target_lufs, t.loudness_max_true_peak_db,
                   \(Self.audioDropReason(audioFilterVersion)) AS audio_drop_reason
            FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested' AND (\(Self.hasKeptText(placeholders)))
            ORDER BY c.id
            """, (audioFilterVersion.map { [$0] } ?? []) + versions + versions) { row in
            guard let id = row["clip_id"].int, let track = row["track_id"].string, let index = row["clip_index"].int else { return }
            try body(CandidateClip(clipID: id, trackID: track, clipIndex: index, split: row["split"].string,
                                   flacSHA256: row["flac_sha256"].string, loudnessStatus: row["loudness_status"].string,
                                   lufs: row["lufs"].double, truePeakDB: row["true_peak_db"].double,
                                   loudnessRange: row["loudness_range"].double,
                                   loudnessTargetLUFS: row["loudness_target_lufs"].double,
                                   loudnessMaxTruePeakDB: row["loudness_max_true_peak_db"].double,
                                   audioDropReason: row["audio_drop_reason"].string))
        }
    }

    /// Kept clips of ingested tracks without a kept text of any of `versions`.
    public func clipsWithoutKeptText(versions: [String]) throws(MulanError) -> Int {
        try database.selectFirst("""
            SELECT COUNT(*) AS clips FROM clips c JOIN tracks t ON t.id = c.track_rowid
            WHERE c.status = 'kept' AND t.status = 'ingested' AND NOT (\(Self.hasKeptText(Self.placeholders(versions))))
            """, versions + versions)?["clips"].int ?? 0
    }

    /// The track id and clip index of clip row `clipID` (nil: no such clip).
    public func clipKey(clipID: Int) throws(MulanError) -> (trackID: String, clipIndex: Int)? {
        guard let row = try database.selectFirst("""
            SELECT t.track_id, c.clip_index FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?
            """, [clipID]), let track = row["track_id"].string, let index = row["clip_index"].int else { return nil }
        return (track, index)
    }

    /// A clip row as a sample is built from.
    public struct SampleClip: Sendable {
        public var trackID: String
        public var clipIndex: Int
        public var startSeconds: Double?
        public var durationSeconds: Double?
        public var sampleRate: Int?
        public var flacPath: String
        public var flacSHA256: String?
        public var lufs: Double?
        public var loudnessRange: Double?
        public var truePeakDB: Double?
    }

    /// The clip row `clipID` with its track (nil: no such clip, or one without a stored file).
    public func sampleClip(clipID: Int) throws(MulanError) -> SampleClip? {
        guard let row = try database.selectFirst("""
            SELECT c.id, t.id, t.track_id, c.clip_index, c.start_s, c.duration_s, c.sample_rate, c.flac_path,
                   c.flac_sha256, t.split, c.lufs, c.loudness_range, c.true_peak_db
            FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.id = ?
            """, [clipID]), let track = row["track_id"].string, let index = row["clip_index"].int,
            let path = row["flac_path"].string else { return nil }
        return SampleClip(trackID: track, clipIndex: index, startSeconds: row["start_s"].double,
                          durationSeconds: row["duration_s"].double, sampleRate: row["sample_rate"].int, flacPath: path,
                          flacSHA256: row["flac_sha256"].string, lufs: row["lufs"].double,
                          loudnessRange: row["loudness_range"].double, truePeakDB: row["true_peak_db"].double)
    }

    /// A kept text of a track (`text_decisions`): its raw text's row id, normalized text and token ids.
    public struct KeptText: Sendable {
        public var rawTextID: Int?
        public var normalized: String?
        public var tokenIDs: String?
    }

    /// The kept texts of `version` for `track`, in raw text order.
    public func keptTexts(version: String, track: String) throws(MulanError) -> [KeptText] {
        try database.select("""
            SELECT raw_text_id, normalized, token_ids FROM text_decisions INDEXED BY text_decisions_track
            WHERE version = ? AND track_id = ? AND status = 'kept' ORDER BY raw_text_id
            """, [version, track]).map {
            KeptText(rawTextID: $0["raw_text_id"].int, normalized: $0["normalized"].string, tokenIDs: $0["token_ids"].string)
        }
    }

    /// Where a raw text came from (for its catalog-independent id).
    public struct RawTextOrigin: Sendable {
        public var id: Int
        public var origin: String?
        public var originFile: String?
        public var originLine: Int?
    }

    /// The raw texts of `track` in row id order.
    public func rawTextOrigins(track: String) throws(MulanError) -> [RawTextOrigin] {
        try database.select("SELECT id, origin, origin_file, origin_line FROM raw_texts WHERE track_id = ? ORDER BY id",
                            [track]).compactMap { row in
            guard let id = row["id"].int else { return nil }
            return RawTextOrigin(id: id, origin: row["origin"].string, originFile: row["origin_file"].string,
                                 originLine: row["origin_line"].int)
        }
    }

    // MARK: Duplicate groups

    /// The catalog's `dedupe_state`: which run wrote its dedupe result.
    public struct DedupeState: Sendable {
        public var policy: String?
        public var signature: String?
        /// Shared by every part one run wrote (nil: written before dedupe read parts).
        public var runToken: String?
        public var completedAt: String?
    }

    /// The dedupe state (nil: dedupe never wrote a result).
    public func dedupeState() throws(MulanError) -> DedupeState? {
        try database.selectFirst("SELECT policy, signature, run_token, completed_at FROM dedupe_state WHERE id = 1").map {
            DedupeState(policy: $0["policy"].string, signature: $0["signature"].string, runToken: $0["run_token"].string,
                        completedAt: $0["completed_at"].string)
        }
    }

    /// A member of a duplicate group.
    public struct DuplicateMember: Sendable {
        public var trackID: String
        public var groupKey: String
        public var mergedInto: String?
        /// The group's manifest split (nil: no member gave one).
        public var groupSplit: String?
    }

    /// Every member of a duplicate group. `storedSplits`: the groups' manifest splits as dedupe stored
    /// them (results with a run token); else computed from the catalog's tracks (the first split given
    /// among the members in track id order).
    public func duplicateMembers(storedSplits: Bool) throws(MulanError) -> [DuplicateMember] {
        let split = storedSplits ? "g.manifest_split" : """
            (SELECT t.split FROM dup_members m2 JOIN tracks t ON t.track_id = m2.track_id
             WHERE m2.group_id = g.id AND t.split IS NOT NULL AND t.split != '' ORDER BY t.track_id LIMIT 1)
            """
        return try database.select("""
            SELECT m.track_id, g.group_key, m.merged_into, \(split) AS group_split
            FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            """).compactMap { row in
            guard let track = row["track_id"].string, let key = row["group_key"].string else { return nil }
            return DuplicateMember(trackID: track, groupKey: key, mergedInto: row["merged_into"].string,
                                   groupSplit: row["group_split"].string)
        }
    }

    /// Ingested tracks updated after `time` (a timestamp as the catalog stores them).
    public func tracksIngested(after time: String) throws(MulanError) -> Int {
        try database.selectFirst("SELECT COUNT(*) AS tracks FROM tracks WHERE status = 'ingested' AND updated_at > ?",
                                 [time])?["tracks"].int ?? 0
    }

    /// The key of `track`'s duplicate group in a completed dedupe result (nil: in no group, or no
    /// completed result).
    public func groupKey(of track: String) throws(MulanError) -> String? {
        try database.selectFirst("""
            SELECT g.group_key FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            WHERE m.track_id = ? AND EXISTS (SELECT 1 FROM dedupe_state WHERE id = 1 AND completed_at IS NOT NULL)
            """, [track])?["group_key"].string
    }

    /// The tracks merged into `track` (none unless dedupe ran with the merge policy), in track id order.
    public func tracksMerged(into track: String) throws(MulanError) -> [String] {
        try database.select("SELECT track_id FROM dup_members WHERE merged_into = ? ORDER BY track_id", [track])
            .compactMap { $0["track_id"].string }
    }

    // MARK: SQL fragments

    static func placeholders(_ values: [String]) -> String { values.map { _ in "?" }.joined(separator: ",") }

    /// SQL: track `t` has a kept text of a selected version, itself or through a duplicate merged into
    /// it. Takes the version list twice.
    static func hasKeptText(_ placeholders: String) -> String {
        """
        EXISTS (SELECT 1 FROM text_decisions d INDEXED BY text_decisions_track WHERE d.track_id = t.track_id
                AND d.status = 'kept' AND d.version IN (\(placeholders)))
        OR EXISTS (SELECT 1 FROM dup_members m JOIN text_decisions d INDEXED BY text_decisions_track ON d.track_id = m.track_id
                   WHERE m.merged_into = t.track_id AND d.status = 'kept' AND d.version IN (\(placeholders)))
        """
    }

    /// SQL for a column: the reason `version` dropped clip `c`, or NULL (takes the version once,
    /// first among the query's arguments). Without a version, always NULL.
    static func audioDropReason(_ version: String?) -> String {
        guard version != nil else { return "NULL" }
        return """
            (SELECT a.reason FROM audio_decisions a WHERE a.version = ? AND a.clip_id = c.id AND a.status = 'dropped')
            """
    }
}
