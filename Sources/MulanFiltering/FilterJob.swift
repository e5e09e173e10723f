import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanText

/// Which half of a filter run a worker does when the work directory is split into worker parts
/// (docs/scale-out.md). A single-process run does both, in one transaction.
public enum FilterPhase: String, Sendable, CaseIterable {
    /// Decide every text of this worker's part on its own, and publish the part's summary (tag
    /// frequencies, playlist sizes, description sentence fingerprints) for the global phase.
    case local
    /// Read every part's summary, apply the corpus-wide rules to this part's decisions with the
    /// whole corpus's figures, and complete the version.
    case global
}

/// What a filter run did: the finished decisions' statistics, or (the local phase of a worker)
/// what the global phase will finish.
public enum FilterOutcome: Sendable {
    case finished(FilterReport)
    case localPhase(texts: Int, summary: String, version: String, slice: WorkerSlice)
}

/// `mulan-filter --source S`: decides, for every raw text of one source, kept or dropped with a
/// reason, and writes the normalized text and its token ids under a filter version derived from
/// the configuration. The whole run is one transaction (a killed run leaves the previous state);
/// a dry run computes everything, reports what would change, and rolls back.
///
/// On a work directory split into worker parts each worker filters its own part's texts in two
/// phases (`FilterPhase`); the decisions equal those of one process over the whole corpus because
/// the corpus-wide rules read the same figures: summed per-part tag frequencies and playlist
/// sizes, and description sentences replayed in one global order.
public struct FilterJob: Sendable {
    public var workdir: String
    public var source: TextSource
    public var config: FilterConfig
    public var vocabularyPath: String
    public var labelsPath: String?
    public var unfiltered: Bool
    public var dryRun: Bool
    public var console: Console
    /// This process's worker, when the work directory is split into parts.
    public var slice: WorkerSlice
    /// Which phase to run on a partitioned work directory (required there, refused elsewhere).
    public var phase: FilterPhase?

    /// Bumped when the filtering code changes what it decides for the same configuration.
    /// 2: description duplicates are found in a global order (file, line; container texts first)
    /// rather than in catalog row order.
    public static let codeVersion = 2

    public init(workdir: String, source: TextSource, config: FilterConfig, vocabularyPath: String, labelsPath: String?,
                unfiltered: Bool, dryRun: Bool, console: Console, slice: WorkerSlice = .single, phase: FilterPhase? = nil) {
        self.workdir = Paths.absolute(workdir)
        self.source = source
        self.config = config
        self.vocabularyPath = Paths.absolute(vocabularyPath)
        self.labelsPath = labelsPath.map(Paths.absolute)
        self.unfiltered = unfiltered
        self.dryRun = dryRun
        self.console = console
        self.slice = slice
        self.phase = phase
    }

    /// The tokenizer, models and version of a run.
    struct Resources {
        var tokenizer: BertTokenizer
        var vocabularySHA256: String
        var model: RelevanceModel?
        var labels: AudioSetLabels?
        var configText: String
        var version: String
        var writeVersion: String
    }

    /// What the local phase found that the global phase adds to (kept in the version's `stats`
    /// column until the version completes).
    struct LocalCounts: Codable {
        var phase = "local"
        var texts = 0
        var sentences = 0
        var sentenceReasons: [String: Int] = [:]
        var candidates = 0
        var wallSeconds = 0.0
    }

    /// Convenience for a single-process run: the finished report.
    public func run() throws -> FilterReport {
        switch try execute() {
        case .finished(let report): return report
        case .localPhase:
            throw MulanError(.internalError, "the local phase has no finished report", hint: "use execute()")
        }
    }

    public func execute() throws -> FilterOutcome {
        switch try WorkLayout.inspect(workdir) {
        case .empty, .single:
            if !slice.isSingle {
                throw MulanError(.usage, "\(workdir) is not split into worker parts, so it is filtered by one process",
                                 hint: "run without --worker/--workers (ingest with --workers N to split it)")
            }
            if phase != nil {
                throw MulanError(.usage, "--phase is for work directories split into worker parts",
                                 hint: "leave it out: one process runs both phases")
            }
            return .finished(try runSingle())
        case .parts(let n, let present):
            guard !slice.isSingle else {
                throw MulanError(.usage, "\(workdir) is split into \(n) worker parts",
                                 hint: "run \(n) workers (--worker I --workers \(n), or an array of \(n) tasks): "
                                     + "--phase local on every worker, then --phase global on every worker")
            }
            guard slice.count == n else {
                throw MulanError(.usage, "\(workdir) is split into \(n) worker parts, not \(slice.count)",
                                 hint: "use --workers \(n)")
            }
            guard let phase else {
                throw MulanError(.usage, "a work directory split into worker parts is filtered in two phases",
                                 hint: "run --phase local on every worker, then --phase global on every worker")
            }
            guard present.contains(slice.index) else {
                throw MulanError(.usage, "worker \(slice.index) of \(n) has no part in \(workdir)/parts",
                                 hint: "run mulan-ingest as that worker first")
            }
            switch phase {
            case .local: return try runLocalPhase()
            case .global: return .finished(try runGlobalPhase())
            }
        }
    }

    // MARK: Layouts

    func runSingle() throws -> FilterReport {
        let started = Date()
        let lock = try WorkdirLock(workdir: workdir, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        let store = TextFilterStore(try Catalog(path: workdir + "/catalog.sqlite"))
        let resources = try prepare()
        let previous = try previousVersion(store, resources)
        return try store.transaction(rollBack: dryRun) {
            let counts = try decideTexts(store, resources)
            var report = try applyCorpusRules(store, resources, summaries: [store.ownSummary], own: 0, counts: counts)
            report.changes = try changes(store, resources, previous: previous)
            report.wallSeconds = Date().timeIntervalSince(started)
            try complete(store, resources, report: report)
            return report
        }
    }

    var partDirectory: String { WorkLayout.partDirectory(root: workdir, slice: slice) }

    func summaryPath(worker: Int, writeVersion: String) -> String {
        WorkLayout.partDirectory(root: workdir, index: worker, count: slice.count) + "/filter/\(writeVersion).summary.sqlite"
    }

    /// The local phase of a worker: tentative decisions in its part's catalog (an incomplete
    /// version), then its summary file, written under a temporary name and renamed into place.
    func runLocalPhase() throws -> FilterOutcome {
        let started = Date()
        let directory = partDirectory
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): filtering \(source.rawValue) of \(directory), phase local",
                    event: "worker")
        let store = TextFilterStore(try Catalog(path: directory + "/catalog.sqlite"))
        let resources = try prepare()
        let path = summaryPath(worker: slice.index, writeVersion: resources.writeVersion)
        // An older summary of this version no longer describes the part once it is decided again.
        unlink(path)
        let counts = try store.transaction {
            var counts = try decideTexts(store, resources)
            counts.wallSeconds = Date().timeIntervalSince(started)
            try store.setStats(version: resources.writeVersion,
                               stats: String(decoding: try JSONEncoder().encode(counts), as: UTF8.self))
            return counts
        }
        try Paths.makeDirectory((path as NSString).deletingLastPathComponent)
        try exportSummary(store, to: path, writeVersion: resources.writeVersion)
        return .localPhase(texts: counts.texts, summary: path, version: resources.writeVersion, slice: slice)
    }

    /// The global phase of a worker: every part's summary (read-only, immutable), the corpus-wide
    /// rules on this part's decisions, statistics; the version completes in this part.
    func runGlobalPhase() throws -> FilterReport {
        let started = Date()
        let directory = partDirectory
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-filter")
        defer { withExtendedLifetime(lock) {} }
        console.log(.info, "\(slice) (from \(slice.origin)): filtering \(source.rawValue) of \(directory), phase global",
                    event: "worker")
        let store = TextFilterStore(try Catalog(path: directory + "/catalog.sqlite"))
        let resources = try prepare()
        guard let state = try store.versionState(resources.writeVersion) else {
            throw MulanError(.usage, "filter version \(resources.writeVersion) has no local phase in \(directory)",
                             hint: "run --phase local on every worker first (with the same options)")
        }
        if state.completedAt != nil, !dryRun {
            // Completed by an earlier run of this phase: nothing to redo (the local phase starts over).
            if let data = state.stats?.data(using: .utf8), let report = try? JSONDecoder().decode(FilterReport.self, from: data) {
                console.log(.info, "version \(resources.version) is already complete in this part", event: "unchanged")
                return report
            }
        }
        guard let data = state.stats?.data(using: .utf8),
              let counts = try? JSONDecoder().decode(LocalCounts.self, from: data), counts.phase == "local" else {
            throw MulanError(.usage, "filter version \(resources.writeVersion) in \(directory) is not waiting for its global phase",
                             hint: "run --phase local on every worker again, then --phase global")
        }
        var summaries: [TextFilterSummary] = []
        for worker in 0..<slice.count {
            let path = summaryPath(worker: worker, writeVersion: resources.writeVersion)
            guard FileManager.default.fileExists(atPath: path) else {
                throw MulanError(.usage, "worker \(worker) has not finished the local phase of \(resources.writeVersion)",
                                 location: SourceLocation(file: path),
                                 hint: "run mulan-filter --phase local as worker \(worker) first")
            }
            let summary = try TextFilterSummary(publishedAt: path)
            let meta = try summary.meta()
            guard meta?.version == resources.writeVersion, meta?.worker == worker, meta?.workers == slice.count else {
                throw MulanError(.data, "\(path) is not the summary of worker \(worker) of \(slice.count) for \(resources.writeVersion)",
                                 hint: "run --phase local on every worker again")
            }
            summaries.append(summary)
        }
        let previous = try previousVersion(store, resources)
        return try store.transaction {
            var report = try applyCorpusRules(store, resources, summaries: summaries, own: slice.index, counts: counts)
            report.changes = try changes(store, resources, previous: previous)
            report.wallSeconds = counts.wallSeconds + Date().timeIntervalSince(started)
            try complete(store, resources, report: report)
            if dryRun {
                // The local phase had to write the dry run's decisions; they go now.
                try store.deleteVersion(resources.writeVersion)
            }
            return report
        }
    }
}
