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

        init?(_ stored: ShardSourceStore.DedupeState?) {
            guard let stored else { return nil }
            policy = stored.policy ?? ""
            signature = stored.signature ?? ""
            runToken = stored.runToken
        }

        /// Part of the dataset id.
        var identity: String { "\(policy):\(signature)" }
    }

    var members: [String: Member] = [:]
    var merge = false

    init(_ store: ShardSourceStore, console: Console) throws {
        let stored = try store.dedupeState()
        guard let state = State(stored), let completed = stored?.completedAt else { return }
        merge = state.policy == "merge"
        // A result with a run token stores each group's manifest split (NULL: no member gave one).
        for m in try store.duplicateMembers(storedSplits: state.runToken != nil) {
            members[m.trackID] = Member(groupKey: m.groupKey, groupSplit: m.groupSplit, mergedInto: m.mergedInto)
        }
        let changed = try store.tracksIngested(after: completed)
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
            let state = State(try part.store.dedupeState())
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
    static func groupKey(of track: String, in store: ShardSourceStore) throws(MulanError) -> String? {
        try store.groupKey(of: track)
    }

    /// The tracks merged into `track` (none unless dedupe ran with the merge policy), in track id order.
    static func mergedInto(_ track: String, in store: ShardSourceStore) throws(MulanError) -> [String] {
        try store.tracksMerged(into: track)
    }
}
