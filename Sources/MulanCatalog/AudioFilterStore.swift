import Foundation
import MulanCore

/// What `mulan-filter audio` reads and writes: its versions, the zero-shot scores of clips (per score
/// set and clip content) and the keep/drop decision of each kept clip per version.
public struct AudioFilterStore {
    let database: Database
    /// Scores are stored as JSON with sorted keys.
    private let encoder: JSONEncoder

    public init(_ catalog: Catalog) {
        database = catalog.database
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
    }

    /// One audio filter version as `audio_filter_versions` records it.
    public struct Version: Sendable {
        public var version: String
        public var scoreSet: String
        public var checkpoint: String
        public var checkpointSHA256: String
        public var checkpointStep: Int
        public var vocabularySHA256: String
        /// JSON of the prompts and of the rule texts.
        public var promptsJSON: String
        public var rulesJSON: String

        public init(version: String, scoreSet: String, checkpoint: String, checkpointSHA256: String, checkpointStep: Int,
                    vocabularySHA256: String, promptsJSON: String, rulesJSON: String) {
            self.version = version
            self.scoreSet = scoreSet
            self.checkpoint = checkpoint
            self.checkpointSHA256 = checkpointSHA256
            self.checkpointStep = checkpointStep
            self.vocabularySHA256 = vocabularySHA256
            self.promptsJSON = promptsJSON
            self.rulesJSON = rulesJSON
        }
    }

    /// Records `v` unless a version of that name is there already.
    public func register(_ v: Version) throws(MulanError) {
        try database.run("""
            INSERT OR IGNORE INTO audio_filter_versions (version, score_set, checkpoint, checkpoint_sha256, checkpoint_step,
                vocab_sha256, prompts, rules, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [v.version, v.scoreSet, v.checkpoint, v.checkpointSHA256, v.checkpointStep, v.vocabularySHA256,
                  v.promptsJSON, v.rulesJSON, Timestamp.now()])
    }

    /// A kept clip of an ingested track without a decision of the version asked for.
    public struct PendingClip: Sendable {
        public var clipID: Int
        public var trackID: String
        public var flacPath: String
        public var flacSHA256: String
        /// The scores stored for the score set and this clip's content (nil: none, or a stored error).
        public var storedScores: [String: Double]?
        /// The values of the `clips` columns asked for, by column name (absent: NULL).
        public var measures: [String: Double]
    }

    /// Calls `body` for each kept clip of an ingested track that has no decision of `version`, in
    /// clip id order, with the scores of `scoreSet` already stored for its content and the values of
    /// `measureColumns` (columns of `clips`). Streams: one row in memory at a time.
    public func forEachPendingClip(version: String, scoreSet: String, measureColumns: [String],
                                   _ body: (PendingClip) throws -> Void) throws {
        let columns = Array(Set(measureColumns)).sorted()
        for column in columns where !column.allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }) {
            throw MulanError(.internalError, "\(column) is not a column name of clips", hint: "fix ClipMeasures")
        }
        let selected = columns.map { ", c.\($0) AS measure_\($0)" }.joined()
        try database.forEachRow("""
            SELECT c.id AS clip_id, t.track_id, c.flac_path, c.flac_sha256, s.scores\(selected)
            FROM clips c JOIN tracks t ON t.id = c.track_rowid
            LEFT JOIN audio_scores s ON s.score_set = ? AND s.clip_id = c.id AND s.flac_sha256 = c.flac_sha256
            WHERE c.status = 'kept' AND t.status = 'ingested'
              AND NOT EXISTS (SELECT 1 FROM audio_decisions d WHERE d.version = ? AND d.clip_id = c.id)
            ORDER BY c.id
            """, [scoreSet, version]) { row in
            guard let id = row["clip_id"].int, let track = row["track_id"].string, let path = row["flac_path"].string,
                  let sha = row["flac_sha256"].string else { return }
            var values: [String: Double] = [:]
            for column in columns {
                if let v = row["measure_" + column].double { values[column] = v }
            }
            try body(PendingClip(clipID: id, trackID: track, flacPath: path, flacSHA256: sha,
                             storedScores: row["scores"].string.flatMap(Self.decodeScores), measures: values))
        }
    }

    /// The scores of one clip computed by a run (`scores` nil with `error` when it could not be scored).
    public struct Scores: Sendable {
        public var clipID: Int
        public var flacSHA256: String
        public var scores: [String: Double]?
        public var windows: Int
        public var error: String?

        public init(clipID: Int, flacSHA256: String, scores: [String: Double]?, windows: Int, error: String?) {
            self.clipID = clipID
            self.flacSHA256 = flacSHA256
            self.scores = scores
            self.windows = windows
            self.error = error
        }
    }

    /// The decision of one clip.
    public struct Decision: Sendable {
        public var clipID: Int
        public var trackID: String
        public var kept: Bool
        public var reason: String
        public var detail: String

        public init(clipID: Int, trackID: String, kept: Bool, reason: String, detail: String) {
            self.clipID = clipID
            self.trackID = trackID
            self.kept = kept
            self.reason = reason
            self.detail = detail
        }
    }

    /// Stores a batch's new scores (for `scoreSet`) and its decisions (of `version`) in one transaction.
    public func record(scoreSet: String, scores: [Scores], version: String, decisions: [Decision]) throws {
        try database.transaction {
            for s in scores {
                try database.run("""
                    INSERT OR REPLACE INTO audio_scores (score_set, clip_id, flac_sha256, scores, windows, error)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, [scoreSet, s.clipID, s.flacSHA256, s.scores.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }, s.windows, s.error])
            }
            for d in decisions {
                try database.run("""
                    INSERT OR REPLACE INTO audio_decisions (version, clip_id, track_id, status, reason, detail)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, [version, d.clipID, d.trackID, d.kept ? "kept" : "dropped", d.reason, d.detail])
            }
        }
    }

    /// How many clips of existing clip rows the decisions of `version` keep or drop, by status and reason.
    public func decisionCounts(version: String) throws(MulanError) -> [(kept: Bool, reason: String?, clips: Int)] {
        try database.select("""
            SELECT d.status, d.reason, COUNT(*) AS clips FROM audio_decisions d JOIN clips c ON c.id = d.clip_id
            WHERE d.version = ? GROUP BY d.status, d.reason
            """, [version]).map { ($0["status"].string == "kept", $0["reason"].string, $0["clips"].int ?? 0) }
    }

    /// Calls `body` with the stored scores of every clip decided by `version` (streaming).
    public func forEachDecidedScores(version: String, scoreSet: String, _ body: ([String: Double]) throws -> Void) throws {
        try database.forEachRow("""
            SELECT s.scores FROM audio_decisions d JOIN audio_scores s ON s.score_set = ? AND s.clip_id = d.clip_id
            WHERE d.version = ? AND s.scores IS NOT NULL
            """, [scoreSet, version]) { row in
            guard let scores = row["scores"].string.flatMap(Self.decodeScores) else { return }
            try body(scores)
        }
    }

    /// Marks `version` complete with its statistics (JSON).
    public func complete(version: String, stats: String) throws(MulanError) {
        try database.run("UPDATE audio_filter_versions SET completed_at = ?, stats = ? WHERE version = ?",
                         [Timestamp.now(), stats, version])
    }

    static func decodeScores(_ json: String) -> [String: Double]? {
        try? JSONDecoder().decode([String: Double].self, from: Data(json.utf8))
    }
}
