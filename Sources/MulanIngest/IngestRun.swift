import Foundation
import MulanCatalog
import MulanCore
import MulanMedia

/// One ingest run's catalog side: the catalog and clip store, the run's report and progress, the
/// track ids seen so far. Only the job's own task uses it (the worker threads get `WorkItem`s and
/// return `TrackOutcome`s), so every catalog write happens in one place, one transaction per track.
final class IngestRun {
    let catalog: Catalog
    let store: ClipStore
    let runID: Int64
    private let settings: IngestSettings
    private let slice: WorkerSlice
    private let clipScorer: any ClipScorer
    /// `--jobs` cores, shared by the tracks and the clips they hand off.
    private let cores: CoreBudget
    private let console: Console
    private(set) var report: IngestReport
    private var progress: ProgressMeter!
    private var clipsSoFar = 0
    private var secondsSoFar = 0.0
    private var firstSeen: [String: SourceLocation] = [:]

    /// Starts the run in the catalog (its settings recorded) and the progress meter over `total` rows.
    init(job: IngestJob, catalog: Catalog, store: ClipStore, total: Int) throws {
        self.catalog = catalog
        self.store = store
        settings = { var s = job.settings; s.clipRanking = job.clipScorer.key; return s }()
        slice = job.slice
        clipScorer = job.clipScorer
        cores = CoreBudget(cores: job.jobs)
        console = job.console
        let settingsJSON = String(decoding: (try? JSONEncoder().encode(settings)) ?? Data(), as: UTF8.self)
        runID = try catalog.beginRun(stage: "ingest", settings: settingsJSON)
        report = IngestReport(workdir: job.directory, jobs: job.jobs, sampleRate: settings.sampleRate,
                              clipSeconds: settings.clipSeconds)
        report.clipPolicy = settings.clipPolicy.description
        report.loudnessMeasured = settings.loudness.rawValue
        report.fingerprints = settings.fingerprint
        if settings.clipPolicy.isBest { report.clipRanking = clipScorer.name }
        if !slice.isSingle { report.worker = slice }
        progress = ProgressMeter(total: total, unit: "tracks", console: console) { [unowned self] _, elapsed in
            String(format: "%d clips, %.2f h audio, %.1f× realtime", clipsSoFar, secondsSoFar / 3600,
                   elapsed > 0 ? secondsSoFar / elapsed : 0)
        }
    }

    /// Counts a failed input by its reason and logs it with where it came from.
    private func recordFailure(_ reason: FailureReason, _ detail: String, at location: SourceLocation) {
        report.failuresByReason[reason.rawValue, default: 0] += 1
        console.log(.warning, "\(location): \(reason.rawValue): \(detail)", event: "input_failed",
                    fields: console.format == .json ? ["reason": reason.rawValue, "file": location.file ?? "",
                                                       "line": location.line.map(String.init) ?? "",
                                                       "track_id": location.trackID ?? ""] : [:])
    }

    /// The next row to process, recording rejects and duplicates on the way.
    func nextItem(_ entries: inout AnyIterator<ManifestEntry>) throws -> WorkItem? {
        while let entry = entries.next() {
            switch entry {
            case .rejected(let reject):
                // Each rejected row is recorded by one worker: its track's, or worker 0.
                guard slice.owns(optionalTrackID: reject.origin.trackID) else { continue }
                try catalog.addReject(reject, runID: runID)
                report.rowsRejected += 1
                report.tracksFailed += 1
                recordFailure(reject.reason, reject.detail, at: reject.origin)
                progress.advance()
            case .row(let row):
                guard slice.owns(trackID: row.trackID) else { continue }
                if let first = firstSeen[row.trackID] {
                    let reject = RejectedRow(origin: row.origin, reason: .duplicateTrackID,
                                             detail: "track id \"\(row.trackID)\" was already listed at \(first); "
                                                 + "track ids must be unique, this row was not ingested",
                                             raw: "\(row.trackID)\t\(row.path)")
                    try catalog.addReject(reject, runID: runID)
                    report.rowsRejected += 1
                    report.tracksFailed += 1
                    recordFailure(.duplicateTrackID, reject.detail, at: row.origin)
                    progress.advance()
                    continue
                }
                firstSeen[row.trackID] = row.origin
                return WorkItem(row: row, previous: try catalog.previous(trackID: row.trackID),
                                settings: settings, store: store, clipScorer: clipScorer, cores: cores)
            }
        }
        return nil
    }

    /// Commits one finished track (or what an unchanged track needed) and counts it in the report.
    func commit(_ outcome: TrackOutcome) throws {
        switch outcome {
        case .unchanged(let row, let previous):
            try catalog.touch(row, runID: runID)
            if previous.status == TrackRecord.Status.failed.rawValue {
                // Still failed for the same reason: say so again rather than hide it.
                report.tracksFailed += 1
                recordFailure(FailureReason(rawValue: previous.reason ?? "") ?? .decodeFailed,
                              "(unchanged since an earlier run) \(previous.detail ?? "")", at: row.origin)
            } else {
                report.tracksSkipped += 1
            }
        case .fingerprinted(let row, let previous, let fingerprint, let decoded):
            try catalog.touch(row, runID: runID)
            try catalog.putFingerprint(fingerprint, trackID: row.trackID, contentHash: previous.contentHash)
            report.tracksSkipped += 1
            report.tracksFingerprinted += 1
            report.fingerprintsByStatus[fingerprint.status.rawValue, default: 0] += 1
            report.hoursIn += decoded / 3600
            secondsSoFar += decoded
        case .loudnessMeasured(let row, let previous, let loudness, let fingerprint, let decoded):
            try catalog.touch(row, runID: runID)
            try catalog.putLoudness(loudness, trackID: row.trackID)
            if let fingerprint {
                try catalog.putFingerprint(fingerprint, trackID: row.trackID, contentHash: previous.contentHash)
                report.tracksFingerprinted += 1
                report.fingerprintsByStatus[fingerprint.status.rawValue, default: 0] += 1
            }
            report.tracksSkipped += 1
            report.clipsLoudnessBackfilled += loudness.count
            for l in loudness.values { report.loudnessByStatus[l.status.rawValue, default: 0] += 1 }
            if let failed = loudness.values.compactMap(\.detail).first {
                console.log(.warning, "\(row.origin): loudness of a stored clip not measured: \(failed)",
                            event: "loudness_failed")
            }
            report.hoursIn += decoded / 3600
            secondsSoFar += decoded
        case .record(let record, let staging, let decoded, let seek):
            switch seek {
            case .notUsed: break
            case .seeked: report.tracksSeeked += 1
            case .fellBack(let fallback):
                report.seekFallbacks += 1
                report.seekFallbacksByReason[fallback.reason.rawValue, default: 0] += 1
            }
            try catalog.replace(record, runID: runID)
            if let staging { try store.publish(stagingFolder: staging) }
            try store.collectGarbage(catalog: catalog)
            if let fingerprint = record.fingerprint {
                report.fingerprintsByStatus[fingerprint.status.rawValue, default: 0] += 1
            }
            report.hoursIn += decoded / 3600
            secondsSoFar += decoded
            if record.status == .ingested {
                report.tracksIngested += 1
            } else {
                report.tracksFailed += 1
                recordFailure(record.reason ?? .decodeFailed, record.detail ?? "",
                              at: record.row.origin)
            }
            let kept = record.clips.filter { $0.status == .kept }
            report.clipsWritten += kept.count
            clipsSoFar += kept.count
            report.hoursKept += kept.reduce(0) { $0 + $1.durationSeconds } / 3600
            report.clipsSilent += record.silentClips
            for clip in kept {
                if let l = clip.loudness { report.loudnessByStatus[l.status.rawValue, default: 0] += 1 }
                if let n = clip.normalization, n.gainDB != 0 { report.clipsNormalized += 1 }
                if clip.normalization?.limitedByTruePeak == true { report.clipsGainLimited += 1 }
            }
            // A too-short track's whole audio is not a "dropped tail": it failed.
            if record.status == .ingested && record.tailDroppedSeconds > 0 { report.tailsDropped += 1 }
        case .storageFailed(let error):
            // What is committed stays; clips the other workers staged are recovered or
            // removed by the next run, which redoes this track.
            throw error
        }
        progress.advance()
    }

    /// Ends the run: the report's totals, the run's row in the catalog.
    func finish(started: Date) throws -> IngestReport {
        progress.finish()
        report.tracksTotal = report.tracksIngested + report.tracksSkipped + report.tracksFailed
        report.wallSeconds = Date().timeIntervalSince(started)
        report.realtimeFactor = report.wallSeconds > 0 ? report.hoursIn * 3600 / report.wallSeconds : 0
        report.peakRSSBytes = PeakMemory.residentBytes()
        report.exitCode = report.tracksFailed > 0 ? ExitStatus.completedWithFailures.rawValue : ExitStatus.success.rawValue
        try catalog.finishRun(runID, summary: report.json())
        return report
    }
}
