import Foundation
import MulanCatalog
import MulanCore

/// The duplicate groups mulan-dedupe recorded in a catalog: each member's group key (its smallest
/// track id, which chooses the group's split), the group's manifest split (the first one given among
/// its members in track id order), and under the merge policy the representative it was merged into.
struct DuplicateGroups {
    struct Member {
        var groupKey: String
        var groupSplit: String?
        var mergedInto: String?
    }

    var members: [String: Member] = [:]
    var merge = false
    /// Identifies the grouping and policy (part of the dataset id); nil when dedupe never ran.
    var signature: String?

    init(_ db: Database, console: Console) throws {
        guard let state = try db.row("SELECT policy, signature, completed_at FROM dedupe_state WHERE id = 1") else { return }
        merge = state[0].string == "merge"
        signature = "\(state[0].string ?? ""):\(state[1].string ?? "")"
        for row in try db.rows("""
            SELECT m.track_id, g.group_key, m.merged_into,
                   (SELECT t.split FROM dup_members m2 JOIN tracks t ON t.track_id = m2.track_id
                    WHERE m2.group_id = g.id AND t.split IS NOT NULL AND t.split != '' ORDER BY t.track_id LIMIT 1)
            FROM dup_members m JOIN dup_groups g ON g.id = m.group_id
            """) {
            guard let track = row[0].string, let key = row[1].string else { continue }
            members[track] = Member(groupKey: key, groupSplit: row[3].string, mergedInto: row[2].string)
        }
        let changed = try db.row("SELECT COUNT(*) FROM tracks WHERE status = 'ingested' AND updated_at > ?",
                                 [state[2].string ?? ""])?[0].int ?? 0
        if changed > 0 {
            console.log(.warning, "\(changed) tracks were ingested after mulan-dedupe ran: they are not in any duplicate "
                        + "group yet; run mulan-dedupe again before sharding", event: "dedupe_stale")
        }
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
