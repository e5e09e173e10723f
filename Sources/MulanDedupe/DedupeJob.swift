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
/// replaces the previous result. On a work directory split into worker parts it reads every part,
/// matches across all of them as over one catalog, and writes the whole result into each part (one
/// transaction per part, all with the same run token; an interrupted run is redone by a re-run).
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
        /// The manifest's split, if it gave one.
        var split: String?
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
        let directories = try catalogDirectories()
        // Every catalog's lock for the whole run: no stage writes a part while it is read or rewritten.
        let locks = try directories.map { try WorkdirLock(workdir: $0, stage: "mulan-dedupe") }
        defer { withExtendedLifetime(locks) {} }
        // Sorted keys: every part of one run records the same text.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let settingsJSON = String(decoding: (try? encoder.encode(RunSettings(policy: policy, match: settings))) ?? Data(),
                                  as: UTF8.self)

        // 1. Tracks and fingerprints of every catalog, in track id order (row order does not matter).
        var tracks: [Track] = []
        for directory in directories { tracks += try readTracks(directory) }
        if directories.count > 1 {
            console.log(.info, "read \(tracks.count) ingested tracks from \(directories.count) worker parts of \(workdir); "
                        + "matching them as one catalog", event: "parts_read")
        }
        tracks.sort { $0.trackID.utf8.lexicographicallyPrecedes($1.trackID.utf8) }
        var report = DedupeReport(workdir: workdir, policy: policy.rawValue)
        report.parts = directories.count
        report.tracks = tracks.count
        for t in tracks { report.fingerprintsByStatus[t.fingerprintStatus ?? "missing", default: 0] += 1 }
        if let missing = report.fingerprintsByStatus["missing"] {
            console.log(.warning, "\(missing) ingested tracks have no fingerprint (ingested before fingerprints existed): "
                        + "run mulan-ingest again on the same inputs to add them; they are matched by content hash only",
                        event: "fingerprints_missing")
        }

        // 2.–4. Pairs and groups.
        let (pairs, statistics) = findPairs(tracks)
        report.matching = statistics
        for p in pairs { report.pairsByKind[p.kind, default: 0] += 1 }
        let result = decideGroups(tracks: tracks, pairs: pairs, report: &report)

        // 5. The result, written into every catalog, each in one transaction.
        let runToken = UUID().uuidString.lowercased()
        var runs: [(directory: String, id: Int64)] = []
        for directory in directories {
            let catalog = try Catalog(path: directory + "/catalog.sqlite")
            let runID = try catalog.beginRun(stage: "dedupe", settings: settingsJSON)
            try write(result, to: catalog, runID: runID, settings: settingsJSON, token: runToken,
                      parts: directories.count)
            runs.append((directory, runID))
            if directories.count > 1 {
                console.log(.info, "wrote the result into \(directory) (\(runs.count) of \(directories.count))",
                            event: "part_written")
            }
        }
        report.finish(wallSeconds: Date().timeIntervalSince(started))
        let summary = report.json()
        for run in runs { try Catalog(path: run.directory + "/catalog.sqlite").finishRun(run.id, summary: summary) }
        return report
    }

    /// Exact copies (same file content and segment: each copy pairs with the first of its kind, and
    /// only that one is fingerprint-matched), then fingerprint matches.
    func findPairs(_ tracks: [Track]) -> (pairs: [Pair], statistics: MatchStatistics) {
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
        return (pairs, statistics)
    }

    /// Groups (connected components of the pairs, in order of their smallest track id), each
    /// member's decision, and the signature; adds each group to the report.
    func decideGroups(tracks: [Track], pairs: [Pair], report: inout DedupeReport) -> Outcome {
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

        var result = Outcome()
        var signature = SHA256Digest.hex(of: Array("dedupe-v1;\(policy.rawValue)".utf8))
        for (n, members) in groups.enumerated() {
            let groupPairs = pairsByGroup[uf.find(members[0])] ?? []
            let representative = members.min { Self.better(tracks[$0], than: tracks[$1]) }!
            let key = tracks[members[0]].trackID
            let total = members.reduce(0.0) { $0 + tracks[$1].durationSeconds }
            let removed = policy == .merge ? total - tracks[representative].durationSeconds : 0
            let kinds = Set(groupPairs.map(\.kind)).sorted()
            // Members are in track id order: the first manifest split given among them.
            let manifestSplit = members.lazy.compactMap { tracks[$0].split }.first { !$0.isEmpty }
            var group = Outcome.Group(id: n + 1, key: key, size: members.count, representative: tracks[representative].trackID,
                                     kinds: kinds.joined(separator: ","), totalSeconds: total, removedSeconds: removed,
                                     manifestSplit: manifestSplit)
            for m in members {
                let (decision, mergedInto, reason) = decide(m, representative: representative, key: key,
                                                            tracks: tracks, pairs: groupPairs)
                group.members.append(.init(trackID: tracks[m].trackID, decision: decision, mergedInto: mergedInto, reason: reason))
            }
            group.pairs = groupPairs.map { p in
                .init(trackA: tracks[p.a].trackID, trackB: tracks[p.b].trackID, kind: p.kind, spanA: p.spanA, spanB: p.spanB,
                      bitErrorRate: p.bitErrorRate, votes: p.votes)
            }
            result.groups.append(group)
            signature = SHA256Digest.hex(of: Array((signature + ";" + members.map { tracks[$0].trackID }.joined(separator: "\u{0}")
                + "→" + tracks[representative].trackID).utf8))
            report.add(group: key, members: members.map { tracks[$0].trackID }, kinds: kinds, totalSeconds: total,
                       removedSeconds: removed, representative: tracks[representative].trackID)
        }
        result.signature = String(signature.prefix(16))
        return result
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
}
