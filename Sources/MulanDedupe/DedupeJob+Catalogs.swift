import Foundation
import MulanCatalog
import MulanCore

/// Where dedupe reads and writes: the work directory's catalog, or every worker part's.
extension DedupeJob {
    /// The complete result of a run, written as it is into every catalog.
    struct Outcome {
        struct Member {
            var trackID: String
            var decision: String
            var mergedInto: String?
            var reason: String
        }

        struct PairRow {
            var trackA: String
            var trackB: String
            var kind: String
            var spanA: (Double, Double)?
            var spanB: (Double, Double)?
            var bitErrorRate: Double?
            var votes: Int?
        }

        struct Group {
            var id: Int
            var key: String
            var size: Int
            var representative: String
            var kinds: String
            var totalSeconds: Double
            var removedSeconds: Double
            /// The first manifest split among the members in track id order (nil: none gave one).
            var manifestSplit: String?
            var members: [Member] = []
            var pairs: [PairRow] = []
        }

        var groups: [Group] = []
        var signature = ""
    }

    /// The catalogs of the run: the work directory's own, or all its worker parts (a missing part
    /// is a usage error, and so is policy merge: see docs/dedupe.md).
    func catalogDirectories() throws -> [String] {
        switch try WorkLayout.inspect(workdir) {
        case .single:
            return [workdir]
        case .parts(let n, let present):
            let directories = try WorkLayout.allParts(root: workdir, count: n, present: present,
                                                      hint: "run mulan-ingest for the missing workers first; dedupe reads every part")
            if policy == .merge {
                throw MulanError(.usage, "--policy merge cannot run on \(workdir), which is split into \(n) worker parts: "
                                 + "a merged member's kept texts go with its representative, which may be in another part "
                                 + "whose catalog does not hold those texts",
                                 hint: "run mulan-dedupe with --policy split (each group in one split), or run the stages "
                                     + "as one process (without --worker/--workers) for policy merge")
            }
            return directories
        case .empty:
            throw MulanError(.usage, "there is no catalog in \(workdir)", hint: "run mulan-ingest first")
        }
    }

    /// The ingested tracks of one catalog with their fingerprints.
    func readTracks(_ directory: String) throws -> [Track] {
        let catalog = try Catalog(path: directory + "/catalog.sqlite")
        var tracks: [Track] = []
        try catalog.database.forEach("""
            SELECT t.track_id, t.content_hash, t.start_s, t.end_s, t.duration_s, t.codec, t.orig_sample_rate,
                   f.status, f.item_s, f.raw, t.split
            FROM tracks t LEFT JOIN fingerprints f ON f.track_rowid = t.id
            WHERE t.status = 'ingested'
            """) { row in
            guard let id = row[0].string else { return }
            let segment = "\(row[2].double.map { "\($0)" } ?? "-")..\(row[3].double.map { "\($0)" } ?? "-")"
            tracks.append(Track(trackID: id, contentHash: row[1].string, segment: segment,
                                durationSeconds: row[4].double ?? 0, codec: row[5].string,
                                originalSampleRate: row[6].int ?? 0, fingerprintStatus: row[7].string,
                                itemSeconds: row[8].double ?? 4096.0 / 3 / 11025,
                                items: row[7].string == "ok" ? Fingerprint.items(littleEndian: row[9].bytes ?? []) : [],
                                split: row[10].string))
        }
        return tracks
    }

    /// Replaces a catalog's dedupe result with `result`, in one transaction. Every catalog of a
    /// partitioned work directory gets the whole result (all groups, whichever part their members are
    /// in) and the same `token`, which tells mulan-shard that the parts come from one run.
    func write(_ result: Outcome, to db: Database, runID: Int64, settings: String, token: String, parts: Int) throws {
        try db.transaction {
            try db.run("DELETE FROM dup_pairs")
            try db.run("DELETE FROM dup_members")
            try db.run("DELETE FROM dup_groups")
            try db.run("DELETE FROM dedupe_state")
            for g in result.groups {
                try db.run("""
                    INSERT INTO dup_groups (id, group_key, size, representative, kinds, total_s, removed_s, run_id, manifest_split)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [g.id, g.key, g.size, g.representative, g.kinds, g.totalSeconds, g.removedSeconds, runID,
                          g.manifestSplit])
                for m in g.members {
                    try db.run("INSERT INTO dup_members (track_id, group_id, decision, merged_into, reason) VALUES (?, ?, ?, ?, ?)",
                               [m.trackID, g.id, m.decision, m.mergedInto, m.reason])
                }
                for p in g.pairs {
                    try db.run("""
                        INSERT OR IGNORE INTO dup_pairs (group_id, track_a, track_b, kind, a_start_s, a_end_s, b_start_s, b_end_s,
                            bit_error_rate, votes)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, [g.id, p.trackA, p.trackB, p.kind, p.spanA?.0, p.spanA?.1, p.spanB?.0, p.spanB?.1,
                              p.bitErrorRate, p.votes])
                }
            }
            try db.run("""
                INSERT INTO dedupe_state (id, policy, run_id, settings, signature, completed_at, run_token, parts)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                """, [policy.rawValue, runID, settings, result.signature, Timestamp.now(), token, parts])
        }
    }

    /// The summary of the latest completed dedupe run of a work directory; of a partitioned one, the
    /// run whose result every part holds (parts left by an interrupted run are an error).
    public static func latestReport(workdir: String) throws -> String {
        let root = Paths.absolute(workdir)
        let notRun = MulanError(.usage, "mulan-dedupe has not run on \(root)", hint: "run mulan-dedupe --workdir \(root) first")
        switch try WorkLayout.inspect(root) {
        case .empty:
            throw MulanError(.usage, "there is no catalog in \(root)", hint: "run mulan-ingest first")
        case .single:
            let catalog = try Catalog(path: root + "/catalog.sqlite")
            guard let summary = try catalog.database.row(
                "SELECT summary FROM runs WHERE stage = 'dedupe' AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")?[0].string
            else { throw notRun }
            return summary
        case .parts(let n, let present):
            let directories = try WorkLayout.allParts(root: root, count: n, present: present,
                                                      hint: "run mulan-ingest for the missing workers, then mulan-dedupe")
            // Each part's run token ("" for a part without a result) and the first summary found.
            var tokens = Set<String>()
            var summary: String?
            for directory in directories {
                let state = try Catalog(path: directory + "/catalog.sqlite").database.row("""
                    SELECT s.run_token, r.summary FROM dedupe_state s LEFT JOIN runs r ON r.id = s.run_id WHERE s.id = 1
                    """)
                tokens.insert(state?[0].string ?? "")
                summary = summary ?? state?[1].string
            }
            if tokens == [""] { throw notRun }
            guard tokens.count == 1, let summary else {
                throw MulanError(.usage, "the parts of \(root) do not all hold the result of one mulan-dedupe run "
                                 + "(an interrupted run?)", hint: "run mulan-dedupe --workdir \(root) again")
            }
            return summary
        }
    }
}
