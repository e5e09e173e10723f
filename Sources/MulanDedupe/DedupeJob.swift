import Foundation
import MulanCatalog
import MulanCore

/// What happens to a duplicate group.
public enum DedupePolicy: String, Sendable, CaseIterable, Codable {
    /// Keep every member; the whole group goes to one split (the default).
    case split
    /// Keep one representative; the other members are merged into it (their kept texts go with it).
    case merge
}

/// `mulan-dedupe`: duplicate groups from content hashes and Chromaprint fingerprints, with a
/// decision and its reason for every member, written to the catalog in one transaction. A re-run
/// replaces the previous result.
public struct DedupeJob: Sendable {
    public var workdir: String
    public var policy: DedupePolicy
    public var settings: MatchSettings
    public var console: Console

    public init(workdir: String, policy: DedupePolicy, settings: MatchSettings = MatchSettings(), console: Console) {
        self.workdir = Paths.absolute(workdir)
        self.policy = policy
        self.settings = settings
        self.console = console
    }

    /// One ingested track as dedupe sees it.
    struct Track {
        var trackID: String
        var contentHash: String?
        var segment: String
        var durationSeconds: Double
        var codec: String?
        var originalSampleRate: Int
        var fingerprintStatus: String?
        var itemSeconds: Double
        var items: [UInt32]
    }

    /// A pair of duplicate tracks (indexes into the track list, a < b by track id) with its evidence.
    struct Pair {
        var a: Int
        var b: Int
        var kind: String
        var spanA: (Double, Double)?
        var spanB: (Double, Double)?
        var bitErrorRate: Double?
        var votes: Int?
    }

    public func run() throws -> DedupeReport {
        let started = Date()
        switch try WorkLayout.inspect(workdir) {
        case .single: break
        case .parts:
            throw MulanError(.usage, "\(workdir) is split into worker parts; mulan-dedupe reads a single catalog for now",
                             hint: "run the stages as one process for a corpus to deduplicate (docs/dedupe.md)")
        case .empty:
            throw MulanError(.usage, "there is no catalog in \(workdir)", hint: "run mulan-ingest first")
        }
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-dedupe")
        defer { withExtendedLifetime(lock) {} }
        let catalog = try Catalog(path: workdir + "/catalog.sqlite")
        let db = catalog.database
        let settingsJSON = String(decoding: (try? JSONEncoder().encode(RunSettings(policy: policy, match: settings))) ?? Data(),
                                  as: UTF8.self)
        let runID = try catalog.beginRun(stage: "dedupe", settings: settingsJSON)

        // 1. Tracks and fingerprints, in track id order (row order does not matter).
        var tracks: [Track] = []
        try db.forEach("""
            SELECT t.track_id, t.content_hash, t.start_s, t.end_s, t.duration_s, t.codec, t.orig_sample_rate,
                   f.status, f.item_s, f.raw
            FROM tracks t LEFT JOIN fingerprints f ON f.track_rowid = t.id
            WHERE t.status = 'ingested'
            """) { row in
            guard let id = row[0].string else { return }
            let segment = "\(row[2].double.map { "\($0)" } ?? "-")..\(row[3].double.map { "\($0)" } ?? "-")"
            tracks.append(Track(trackID: id, contentHash: row[1].string, segment: segment,
                                durationSeconds: row[4].double ?? 0, codec: row[5].string,
                                originalSampleRate: row[6].int ?? 0, fingerprintStatus: row[7].string,
                                itemSeconds: row[8].double ?? 4096.0 / 3 / 11025,
                                items: row[7].string == "ok" ? Fingerprint.items(littleEndian: row[9].bytes ?? []) : []))
        }
        tracks.sort { $0.trackID.utf8.lexicographicallyPrecedes($1.trackID.utf8) }
        var report = DedupeReport(workdir: workdir, policy: policy.rawValue)
        report.tracks = tracks.count
        for t in tracks { report.fingerprintsByStatus[t.fingerprintStatus ?? "missing", default: 0] += 1 }
        if let missing = report.fingerprintsByStatus["missing"] {
            console.log(.warning, "\(missing) ingested tracks have no fingerprint (ingested before fingerprints existed): "
                        + "run mulan-ingest again on the same inputs to add them; they are matched by content hash only",
                        event: "fingerprints_missing")
        }

        // 2. Exact copies: same file content and segment. Each copy pairs with the first of its kind;
        // only that one is fingerprint-matched.
        var pairs: [Pair] = []
        var firstOfContent: [String: Int] = [:]
        var matchable: [Int] = []
        for (i, t) in tracks.enumerated() {
            if let hash = t.contentHash {
                let key = hash + "|" + t.segment
                if let first = firstOfContent[key] {
                    let whole = (0.0, t.durationSeconds)
                    pairs.append(Pair(a: first, b: i, kind: "exact", spanA: whole, spanB: whole, bitErrorRate: 0, votes: nil))
                    continue
                }
                firstOfContent[key] = i
            }
            if !t.items.isEmpty { matchable.append(i) }
        }

        // 3. Fingerprint matches.
        var statistics = MatchStatistics()
        let matches = Matcher(settings: settings).match(matchable.map { tracks[$0].items }, statistics: &statistics)
        for m in matches {
            let a = matchable[m.a], b = matchable[m.b]
            let ta = tracks[a], tb = tracks[b]
            let coverA = Double(m.length) / Double(max(1, ta.items.count))
            let coverB = Double(m.length) / Double(max(1, tb.items.count))
            let kind = coverA >= Self.sameCoverage && coverB >= Self.sameCoverage ? "same-recording"
                : (max(coverA, coverB) >= Self.sameCoverage ? "contained" : "overlap")
            pairs.append(Pair(a: a, b: b, kind: kind,
                              spanA: (Double(m.aStart) * ta.itemSeconds, Double(m.aEnd) * ta.itemSeconds),
                              spanB: (Double(m.bStart) * tb.itemSeconds, Double(m.bEnd) * tb.itemSeconds),
                              bitErrorRate: m.bitErrorRate, votes: m.votes))
        }
        report.matching = statistics
        for p in pairs { report.pairsByKind[p.kind, default: 0] += 1 }

        // 4. Groups: connected components of the pairs.
        var uf = UnionFind(tracks.count)
        var inPair = Set<Int>()
        for p in pairs {
            uf.union(p.a, p.b)
            inPair.formUnion([p.a, p.b])
        }
        var components: [Int: [Int]] = [:]
        for x in inPair.sorted() { components[uf.find(x), default: []].append(x) }
        var groups = Array(components.values)
        groups.sort { tracks[$0[0]].trackID.utf8.lexicographicallyPrecedes(tracks[$1[0]].trackID.utf8) }
        var pairsByGroup: [Int: [Pair]] = [:]
        for p in pairs { pairsByGroup[uf.find(p.a), default: []].append(p) }

        // 5. Decisions, written in one transaction.
        var signature = SHA256Digest.hex(of: Array("dedupe-v1;\(policy.rawValue)".utf8))
        try db.transaction {
            try db.run("DELETE FROM dup_pairs")
            try db.run("DELETE FROM dup_members")
            try db.run("DELETE FROM dup_groups")
            try db.run("DELETE FROM dedupe_state")
            for (n, members) in groups.enumerated() {
                let groupID = n + 1
                let groupPairs = pairsByGroup[uf.find(members[0])] ?? []
                let representative = members.min { Self.better(tracks[$0], than: tracks[$1]) }!
                let key = tracks[members[0]].trackID
                let total = members.reduce(0.0) { $0 + tracks[$1].durationSeconds }
                let removed = policy == .merge ? total - tracks[representative].durationSeconds : 0
                let kinds = Set(groupPairs.map(\.kind)).sorted()
                try db.run("""
                    INSERT INTO dup_groups (id, group_key, size, representative, kinds, total_s, removed_s, run_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, [groupID, key, members.count, tracks[representative].trackID, kinds.joined(separator: ","),
                          total, removed, runID])
                for m in members {
                    let (decision, mergedInto, reason) = decide(m, representative: representative, key: key,
                                                                tracks: tracks, pairs: groupPairs)
                    try db.run("INSERT INTO dup_members (track_id, group_id, decision, merged_into, reason) VALUES (?, ?, ?, ?, ?)",
                               [tracks[m].trackID, groupID, decision, mergedInto, reason])
                }
                for p in groupPairs {
                    try db.run("""
                        INSERT OR IGNORE INTO dup_pairs (group_id, track_a, track_b, kind, a_start_s, a_end_s, b_start_s, b_end_s,
                            bit_error_rate, votes)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, [groupID, tracks[p.a].trackID, tracks[p.b].trackID, p.kind, p.spanA?.0, p.spanA?.1,
                              p.spanB?.0, p.spanB?.1, p.bitErrorRate, p.votes])
                }
                signature = SHA256Digest.hex(of: Array((signature + ";" + members.map { tracks[$0].trackID }.joined(separator: "\u{0}")
                    + "→" + tracks[representative].trackID).utf8))
                report.add(group: key, members: members.map { tracks[$0].trackID }, kinds: kinds, totalSeconds: total,
                           removedSeconds: removed, representative: tracks[representative].trackID)
            }
            try db.run("""
                INSERT INTO dedupe_state (id, policy, run_id, settings, signature, completed_at) VALUES (1, ?, ?, ?, ?, ?)
                """, [policy.rawValue, runID, settingsJSON, String(signature.prefix(16)), Timestamp.now()])
        }
        report.finish(wallSeconds: Date().timeIntervalSince(started))
        try catalog.finishRun(runID, summary: report.json())
        return report
    }

    /// Pairs whose span covers at least this share of both fingerprints are the same recording;
    /// of only the shorter one, one contains the other.
    static let sameCoverage = 0.8

    struct RunSettings: Codable {
        var policy: DedupePolicy
        var match: MatchSettings
    }

    static let losslessCodecs: Set<String> = ["flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd"]

    /// The representative order: longest (whole seconds), then lossless before lossy, then the
    /// higher original sample rate, then the smaller track id.
    static func better(_ x: Track, than y: Track) -> Bool {
        let dx = x.durationSeconds.rounded(), dy = y.durationSeconds.rounded()
        if dx != dy { return dx > dy }
        let lx = isLossless(x.codec), ly = isLossless(y.codec)
        if lx != ly { return lx }
        if x.originalSampleRate != y.originalSampleRate { return x.originalSampleRate > y.originalSampleRate }
        return x.trackID.utf8.lexicographicallyPrecedes(y.trackID.utf8)
    }

    static func isLossless(_ codec: String?) -> Bool {
        guard let codec else { return false }
        return codec.hasPrefix("pcm_") || losslessCodecs.contains(codec)
    }

    /// A member's decision, the track it is merged into, and why.
    func decide(_ m: Int, representative: Int, key: String, tracks: [Track], pairs: [Pair])
        -> (String, String?, String) {
        let t = tracks[m]
        let rep = tracks[representative]
        // The member's strongest direct evidence: a pair with the representative, else its best pair.
        let own = pairs.filter { $0.a == m || $0.b == m }
        let evidence = own.first { $0.a == representative || $0.b == representative }
            ?? own.min { ($0.bitErrorRate ?? 0) < ($1.bitErrorRate ?? 0) }
        var why = ""
        if let e = evidence {
            let other = tracks[e.a == m ? e.b : e.a].trackID
            why = e.kind == "exact" ? "an exact copy of \(other) (same content hash)"
                : String(format: "%@ %@ (bit error rate %.3f over %.1f s)", e.kind == "same-recording" ? "the same recording as"
                         : (e.kind == "contained" ? "shares a contained span with" : "overlaps"), other,
                         e.bitErrorRate ?? 0, (e.spanA.map { $0.1 - $0.0 } ?? 0))
        }
        let order = String(format: "%.1f s, %@, %d Hz", rep.durationSeconds, rep.codec ?? "?", rep.originalSampleRate)
        switch policy {
        case .split:
            if m == representative {
                return ("representative", nil, "representative of group \(key) (longest, then best quality: \(order)); "
                        + "policy split keeps every member, all in the split of group key \(key)")
            }
            return ("kept", nil, "kept (policy split): \(why); the whole group goes to the split of group key \(key)")
        case .merge:
            if m == representative {
                return ("representative", nil, "representative of group \(key) (longest, then best quality: \(order)); "
                        + "the other members' kept texts are attached to it")
            }
            return ("merged", rep.trackID, String(format: "merged into %@ (policy merge): %@; %.1f s against the representative's %.1f s",
                                                  rep.trackID, why, t.durationSeconds, rep.durationSeconds))
        }
    }

    /// The summary of the latest completed dedupe run of a work directory.
    public static func latestReport(workdir: String) throws -> String {
        let catalog = try Catalog(path: Paths.absolute(workdir) + "/catalog.sqlite")
        guard let summary = try catalog.database.row(
            "SELECT summary FROM runs WHERE stage = 'dedupe' AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1")?[0].string
        else {
            throw MulanError(.usage, "mulan-dedupe has not run on \(workdir)", hint: "run mulan-dedupe --workdir \(workdir) first")
        }
        return summary
    }
}
