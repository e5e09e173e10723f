import Foundation
import MulanCatalog
import MulanCore

/// The duplicate groups mulan-dedupe recorded in a catalog: each member's group key (its smallest
/// track id, which chooses the group's split), the group's manifest split (the first one given among
/// its members in track id order: as dedupe stored it, or for a result from before it stored it,
/// computed here from the catalog's own tracks), and under the merge policy the representative it was
/// merged into.
struct DuplicateGroups {
    struct Member {
        var groupKey: String
        var groupSplit: String?
        var mergedInto: String?
    }

    /// A catalog's `dedupe_state`: which run wrote its result.
    struct State: Equatable {
        var policy: String
        var signature: String
        /// Shared by every part one run wrote (nil: written before dedupe read parts).
        var runToken: String?

        init?(_ db: Database) throws(MulanError) {
            guard let row = try db.row("SELECT policy, signature, run_token FROM dedupe_state WHERE id = 1") else { return nil }
            policy = row[0].string ?? ""
            signature = row[1].string ?? ""
            runToken = row[2].string
        }

        /// Part of the dataset id.
        var identity: String { "\(policy):\(signature)" }
    }

    var members: [String: Member] = [:]
    var merge = false

    init(_ db: Database, console: Console) throws {
        guard let state = try State(db),
              let completed = try db.row("SELECT completed_at FROM dedupe_state WHERE id = 1")?[0].string else { return }
        merge = state.policy == "merge"
        // A result with a run token stores each group's manifest split (NULL: no member gave one).
        let split = state.runToken != nil ? "g.manifest_split" : """
            (SELECT t.split FROM dup_members m2 JOIN tracks t ON t.track_id = m2.track_id
             WHERE m2.group_id = g.id AND t.split IS NOT NULL AND t.split != '' ORDER BY t.track_id LIMIT 1)
            """
        for row in try db.rows("""
            SELECT m.track_id, g.group_key, m.merged_into, \(split)
            FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            """) {
            guard let track = row[0].string, let key = row[1].string else { continue }
            members[track] = Member(groupKey: key, groupSplit: row[3].string, mergedInto: row[2].string)
        }
        let changed = try db.row("SELECT COUNT(*) FROM tracks WHERE status = 'ingested' AND updated_at > ?",
                                 [completed])?[0].int ?? 0
        if changed > 0 {
            console.log(.warning, "\(changed) tracks were ingested after mulan-dedupe ran: they are not in any duplicate "
                        + "group yet; run mulan-dedupe again before sharding", event: "dedupe_stale")
        }
    }

    /// The dedupe identities that go into the dataset id: one per work directory read (its parts
    /// share one result), none for a work directory never deduplicated. Parts of one work directory
    /// whose results differ (an interrupted mulan-dedupe, or one run before another ingest) are refused.
    static func signatures(_ parts: [ShardJob.Part]) throws -> [String] {
        var byRoot: [(root: String, states: [(directory: String, state: State?)])] = []
        for part in parts {
            let state = try State(part.db)
            if let i = byRoot.firstIndex(where: { $0.root == part.root }) {
                byRoot[i].states.append((part.directory, state))
            } else {
                byRoot.append((part.root, [(part.directory, state)]))
            }
        }
        var out: [String] = []
        for (root, states) in byRoot {
            let first = states[0]
            if let other = states.first(where: { $0.state != first.state }) {
                func describe(_ s: State?) -> String {
                    s.map { "policy \($0.policy), signature \($0.signature), run \($0.runToken ?? "?")" } ?? "no dedupe result"
                }
                throw MulanError(.usage, "the worker parts of \(root) hold different mulan-dedupe results: \(first.directory) has "
                                 + "\(describe(first.state)), \(other.directory) has \(describe(other.state))",
                                 hint: "run mulan-dedupe --workdir \(root) again (after every ingest worker has finished), "
                                     + "then mulan-shard")
            }
            if let state = first.state { out.append(state.identity) }
        }
        return out
    }

    /// The key of `track`'s duplicate group in a completed mulan-dedupe result (nil: in no group, or
    /// no completed result), as `DuplicateGroups` reads it for the split.
    static func groupKey(of track: String, in db: Database) throws(MulanError) -> String? {
        try db.row("""
            SELECT g.group_key FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            WHERE m.track_id = ? AND EXISTS (SELECT 1 FROM dedupe_state WHERE id = 1 AND completed_at IS NOT NULL)
            """, [track])?[0].string
    }

    /// The tracks merged into `track` (none unless dedupe ran with the merge policy), in track id order.
    static func mergedInto(_ track: String, in db: Database) throws(MulanError) -> [String] {
        try db.rows("SELECT track_id FROM dup_members WHERE merged_into = ? ORDER BY track_id", [track]).compactMap { $0[0].string }
    }
}

extension ShardJob {
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
}
