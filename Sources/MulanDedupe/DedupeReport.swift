import Foundation
import MulanCore

/// The summary of a dedupe run (`--report FILE`, `mulan-dedupe report`, the run's row in the catalog).
public struct DedupeReport: Codable, Sendable, StageReport {
    public var schemaVersion = 1
    public var stage = "dedupe"
    public var workdir: String
    public var policy: String
    /// Catalogs read and written: 1, or the number of worker parts.
    public var parts = 1
    /// Ingested tracks considered.
    public var tracks = 0
    /// Their fingerprints by status (`missing`: ingested before fingerprints existed).
    public var fingerprintsByStatus: [String: Int] = [:]
    public var pairsByKind: [String: Int] = [:]
    public var groups = 0
    /// Group size → number of groups.
    public var groupSizes: [String: Int] = [:]
    public var tracksInGroups = 0
    public var hoursInGroups = 0.0
    /// Hours of merged members (policy merge; 0 under split, which removes nothing).
    public var hoursRemoved = 0.0
    public var tracksMerged = 0
    public var topGroups: [TopGroup] = []
    public var matching = MatchStatistics()
    public var wallSeconds = 0.0

    public struct TopGroup: Codable, Sendable {
        public var groupKey: String
        public var size: Int
        public var representative: String
        public var kinds: [String]
        public var hours: Double
        public var members: [String]

        enum CodingKeys: String, CodingKey {
            case groupKey = "group_key", size, representative, kinds, hours, members
        }
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", stage, workdir, policy, parts, tracks
        case fingerprintsByStatus = "fingerprints_by_status", pairsByKind = "pairs_by_kind", groups
        case groupSizes = "group_sizes", tracksInGroups = "tracks_in_groups", hoursInGroups = "hours_in_groups"
        case hoursRemoved = "hours_removed", tracksMerged = "tracks_merged", topGroups = "top_groups", matching
        case wallSeconds = "wall_seconds"
    }

    public init(workdir: String, policy: String) {
        self.workdir = workdir
        self.policy = policy
    }

    /// How many groups `topGroups` lists.
    static let topCount = 10

    mutating func add(group key: String, members: [String], kinds: [String], totalSeconds: Double, removedSeconds: Double,
                      representative: String) {
        groups += 1
        groupSizes[String(members.count), default: 0] += 1
        tracksInGroups += members.count
        hoursInGroups += totalSeconds / 3600
        hoursRemoved += removedSeconds / 3600
        if removedSeconds > 0 { tracksMerged += members.count - 1 }
        topGroups.append(TopGroup(groupKey: key, size: members.count, representative: representative, kinds: kinds,
                                  hours: totalSeconds / 3600, members: Array(members.prefix(20))))
    }

    mutating func finish(wallSeconds: Double) {
        self.wallSeconds = wallSeconds
        topGroups.sort { ($0.size, $0.hours) != ($1.size, $1.hours) ? ($0.size, $0.hours) > ($1.size, $1.hours)
            : $0.groupKey.utf8.lexicographicallyPrecedes($1.groupKey.utf8) }
        topGroups = Array(topGroups.prefix(Self.topCount))
    }

    /// A short human summary for standard output.
    public func text() -> String {
        var lines = [
            "dedupe (policy \(policy)): \(tracks) tracks" + (parts > 1 ? " in \(parts) worker parts" : "")
                + ", \(groups) duplicate groups holding \(tracksInGroups) tracks " + String(format: "(%.3f h)", hoursInGroups),
            "  fingerprints: " + fingerprintsByStatus.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "),
            "  pairs: " + (pairsByKind.isEmpty ? "none" : pairsByKind.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
                .joined(separator: ", ")),
            "  group sizes: " + (groupSizes.isEmpty ? "none" : groupSizes.sorted { Int($0.key)! < Int($1.key)! }
                .map { "\($0.value)×\($0.key)" }.joined(separator: ", ")),
            String(format: "  merged: %d tracks, %.3f h removed", tracksMerged, hoursRemoved),
            String(format: "  matching: %d fingerprints, %d postings in %d pass(es), %d candidate pairs, %d verified; %.2f s index, %.2f s verify",
                   matching.fingerprints, matching.postings, matching.passes, matching.candidatePairs, matching.verifiedPairs,
                   matching.indexSeconds, matching.verifySeconds),
        ]
        if !topGroups.isEmpty {
            lines.append("  top groups:")
            for g in topGroups {
                lines.append(String(format: "    %@: %d tracks, %.3f h, %@; representative %@", g.groupKey, g.size, g.hours,
                                    g.kinds.joined(separator: "+"), g.representative))
            }
        }
        return lines.joined(separator: "\n")
    }
}
