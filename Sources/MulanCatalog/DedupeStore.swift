import Foundation
import MulanCore

/// What `mulan-dedupe` reads (ingested tracks with their fingerprints) and writes (its groups,
/// members, pairs and state).
public struct DedupeStore {
    let database: Database

    public init(_ catalog: Catalog) { database = catalog.database }

    /// An ingested track as dedupe reads it.
    public struct TrackRow: Sendable {
        public var trackID: String
        public var contentHash: String?
        public var startSeconds: Double?
        public var endSeconds: Double?
        public var durationSeconds: Double?
        public var codec: String?
        public var originalSampleRate: Int?
        /// The fingerprint's status, item length and raw little-endian items (nil: no fingerprint).
        public var fingerprintStatus: String?
        public var fingerprintItemSeconds: Double?
        public var fingerprintRaw: [UInt8]?
        public var split: String?
    }

    /// Calls `body` for each ingested track with its fingerprint, one row in memory at a time.
    public func forEachIngestedTrack(_ body: (TrackRow) throws -> Void) throws {
        try database.forEachRow("""
            SELECT t.track_id, t.content_hash, t.start_s, t.end_s, t.duration_s, t.codec, t.orig_sample_rate,
                   f.status AS fingerprint_status, f.item_s, f.raw, t.split
            FROM tracks t LEFT JOIN fingerprints f ON f.track_rowid = t.id
            WHERE t.status = 'ingested'
            """) { row in
            guard let id = row["track_id"].string else { return }
            try body(TrackRow(trackID: id, contentHash: row["content_hash"].string, startSeconds: row["start_s"].double,
                              endSeconds: row["end_s"].double, durationSeconds: row["duration_s"].double,
                              codec: row["codec"].string, originalSampleRate: row["orig_sample_rate"].int,
                              fingerprintStatus: row["fingerprint_status"].string, fingerprintItemSeconds: row["item_s"].double,
                              fingerprintRaw: row["raw"].bytes, split: row["split"].string))
        }
    }

    /// One member of a duplicate group and what dedupe decided for it.
    public struct Member: Sendable {
        public var trackID: String
        public var decision: String
        public var mergedInto: String?
        public var reason: String

        public init(trackID: String, decision: String, mergedInto: String?, reason: String) {
            self.trackID = trackID
            self.decision = decision
            self.mergedInto = mergedInto
            self.reason = reason
        }
    }

    /// One matched pair of a group (spans in seconds).
    public struct Pair: Sendable {
        public var trackA: String
        public var trackB: String
        public var kind: String
        public var spanA: (Double, Double)?
        public var spanB: (Double, Double)?
        public var bitErrorRate: Double?
        public var votes: Int?

        public init(trackA: String, trackB: String, kind: String, spanA: (Double, Double)?, spanB: (Double, Double)?,
                    bitErrorRate: Double?, votes: Int?) {
            self.trackA = trackA
            self.trackB = trackB
            self.kind = kind
            self.spanA = spanA
            self.spanB = spanB
            self.bitErrorRate = bitErrorRate
            self.votes = votes
        }
    }

    /// One duplicate group with its members and pairs.
    public struct Group: Sendable {
        public var id: Int
        public var key: String
        public var size: Int
        public var representative: String
        public var kinds: String
        public var totalSeconds: Double
        public var removedSeconds: Double
        /// The first manifest split among the members in track id order (nil: none gave one).
        public var manifestSplit: String?
        public var members: [Member] = []
        public var pairs: [Pair] = []

        public init(id: Int, key: String, size: Int, representative: String, kinds: String, totalSeconds: Double,
                    removedSeconds: Double, manifestSplit: String?, members: [Member] = [], pairs: [Pair] = []) {
            self.id = id
            self.key = key
            self.size = size
            self.representative = representative
            self.kinds = kinds
            self.totalSeconds = totalSeconds
            self.removedSeconds = removedSeconds
            self.manifestSplit = manifestSplit
            self.members = members
            self.pairs = pairs
        }
    }

    /// The run a result came from (`dedupe_state`).
    public struct RunState: Sendable {
        public var policy: String
        public var runID: Int64
        public var settings: String
        public var signature: String
        public var token: String
        public var parts: Int

        public init(policy: String, runID: Int64, settings: String, signature: String, token: String, parts: Int) {
            self.policy = policy
            self.runID = runID
            self.settings = settings
            self.signature = signature
            self.token = token
            self.parts = parts
        }
    }

    /// Replaces the catalog's dedupe result with `groups` and `state`, in one transaction.
    public func replaceResult(groups: [Group], state: RunState) throws {
        try database.transaction {
            try database.run("DELETE FROM dup_pairs")
            try database.run("DELETE FROM dup_members")
            try database.run("DELETE FROM dup_groups")
            try database.run("DELETE FROM dedupe_state")
            for g in groups {
                try database.run("""
                    INSERT INTO dup_groups (id, group_key, size, representative, kinds, total_s, removed_s, run_id, manifest_split)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [g.id, g.key, g.size, g.representative, g.kinds, g.totalSeconds, g.removedSeconds, state.runID,
                          g.manifestSplit])
                for m in g.members {
                    try database.run("INSERT INTO dup_members (track_id, group_id, decision, merged_into, reason) VALUES (?, ?, ?, ?, ?)",
                                     [m.trackID, g.id, m.decision, m.mergedInto, m.reason])
                }
                for p in g.pairs {
                    try database.run("""
                        INSERT OR IGNORE INTO dup_pairs (group_id, track_a, track_b, kind, a_start_s, a_end_s, b_start_s, b_end_s,
                            bit_error_rate, votes)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, [g.id, p.trackA, p.trackB, p.kind, p.spanA?.0, p.spanA?.1, p.spanB?.0, p.spanB?.1,
                              p.bitErrorRate, p.votes])
                }
            }
            try database.run("""
                INSERT INTO dedupe_state (id, policy, run_id, settings, signature, completed_at, run_token, parts)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                """, [state.policy, state.runID, state.settings, state.signature, Timestamp.now(), state.token, state.parts])
        }
    }

    /// The summary of the latest finished dedupe run (nil: none finished).
    public func latestSummary() throws(MulanError) -> String? {
        try database.selectFirst(
            "SELECT summary FROM runs WHERE stage = 'dedupe' AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")?["summary"].string
    }

    /// The run token and summary of the result the catalog holds (nil: no result).
    public func resultState() throws(MulanError) -> (token: String?, summary: String?)? {
        try database.selectFirst("""
            SELECT s.run_token, r.summary FROM dedupe_state s LEFT JOIN runs r ON r.id = s.run_id WHERE s.id = 1
            """).map { ($0["run_token"].string, $0["summary"].string) }
    }
}
