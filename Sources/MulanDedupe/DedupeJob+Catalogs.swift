import Foundation
import MulanCatalog
import MulanCore

/// Where dedupe reads and writes: the work directory's catalog, or every worker part's.
extension DedupeJob {
    /// The complete result of a run, written as it is into every catalog.
    struct Outcome {
        typealias Member = DedupeStore.Member
        typealias PairRow = DedupeStore.Pair
        typealias Group = DedupeStore.Group

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
        try DedupeStore(catalog).forEachIngestedTrack { row in
            let segment = "\(row.startSeconds.map { "\($0)" } ?? "-")..\(row.endSeconds.map { "\($0)" } ?? "-")"
            tracks.append(Track(trackID: row.trackID, contentHash: row.contentHash, segment: segment,
                                durationSeconds: row.durationSeconds ?? 0, codec: row.codec,
                                originalSampleRate: row.originalSampleRate ?? 0, fingerprintStatus: row.fingerprintStatus,
                                itemSeconds: row.fingerprintItemSeconds ?? 4096.0 / 3 / 11025,
                                items: row.fingerprintStatus == "ok" ? Fingerprint.items(littleEndian: row.fingerprintRaw ?? []) : [],
                                split: row.split))
        }
        return tracks
    }

    /// Replaces a catalog's dedupe result with `result`, in one transaction. Every catalog of a
    /// partitioned work directory gets the whole result (all groups, whichever part their members are
    /// in) and the same `token`, which tells mulan-shard that the parts come from one run.
    func write(_ result: Outcome, to catalog: Catalog, runID: Int64, settings: String, token: String, parts: Int) throws {
        try DedupeStore(catalog).replaceResult(
            groups: result.groups,
            state: .init(policy: policy.rawValue, runID: runID, settings: settings, signature: result.signature, token: token,
                         parts: parts))
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
            guard let summary = try DedupeStore(catalog).latestSummary() else { throw notRun }
            return summary
        case .parts(let n, let present):
            let directories = try WorkLayout.allParts(root: root, count: n, present: present,
                                                      hint: "run mulan-ingest for the missing workers, then mulan-dedupe")
            // Each part's run token ("" for a part without a result) and the first summary found.
            var tokens = Set<String>()
            var summary: String?
            for directory in directories {
                let state = try DedupeStore(Catalog(path: directory + "/catalog.sqlite")).resultState()
                tokens.insert(state?.token ?? "")
                summary = summary ?? state?.summary
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
