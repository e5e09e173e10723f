import Foundation
import MulanCatalog
import MulanCore
import MulanFormats
import MulanMedia

/// Where the tracks of a run come from.
public enum IngestInput: Sendable {
    case manifest(path: String, format: ManifestReader.Format?)
    case scan(directory: String, globs: [String])
}

/// The ingest stage: reads the input rows, decodes tracks on `jobs` worker threads, and writes
/// the catalog from one place (this job's task), one transaction per track.
public struct IngestJob: Sendable {
    public var workdir: String
    public var inputs: [IngestInput]
    public var settings: IngestSettings
    public var jobs: Int
    public var console: Console
    /// The share of the tracks this process ingests (see WorkerSlice); single: all of them.
    public var slice: WorkerSlice
    /// Ranks the candidates of `best:N`; every worker thread calls the same instance.
    public let clipScorer: any ClipScorer

    /// `clipScorer` (default: loudness) ranks `best:N`; its key becomes `settings.clipRanking`, so
    /// the settings key names the model that chose the clips.
    public init(workdir: String, inputs: [IngestInput], settings: IngestSettings, jobs: Int, console: Console,
                slice: WorkerSlice = .single, clipScorer: any ClipScorer = LoudnessScorer()) {
        self.workdir = Paths.absolute(workdir)
        self.inputs = inputs
        self.settings = settings
        self.settings.clipRanking = clipScorer.key
        self.jobs = max(1, jobs)
        self.console = console
        self.slice = slice
        self.clipScorer = clipScorer
    }

    /// Where this process writes: the work directory, or its part `parts/I-of-N` for a worker.
    public var directory: String {
        slice.isSingle ? workdir : WorkLayout.partDirectory(root: workdir, slice: slice)
    }

    public var catalogPath: String { directory + "/catalog.sqlite" }

    /// Runs the stage and returns its summary. Throws only for fatal problems (the work
    /// directory, the catalog, an unreadable manifest); bad inputs are recorded and counted.
    public func run() async throws -> IngestReport {
        let started = Date()
        try Paths.makeDirectory(workdir)
        try WorkLayout.checkWritable(root: workdir, slice: slice)
        let directory = self.directory
        try Paths.makeDirectory(directory)
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-ingest")
        defer { withExtendedLifetime(lock) {} }
        FFmpegVersions.quietLibraryLogs()
        if !slice.isSingle {
            console.log(.info, "\(slice) (from \(slice.origin)): ingesting the tracks whose id hashes to it into \(directory)",
                        event: "worker")
        }

        let catalog = try Catalog(path: catalogPath)
        let store = ClipStore(workdir: directory)
        let recovered = try store.recover(catalog: catalog)
        if recovered.published + recovered.deleted > 0 {
            console.log(.info, "recovered from an interrupted run: \(recovered.published) staged clips published, "
                        + "\(recovered.deleted) partial or uncommitted files removed", event: "recovered")
        }
        let settings = { var s = self.settings; s.clipRanking = self.clipScorer.key; return s }()
        let settingsJSON = String(decoding: (try? JSONEncoder().encode(settings)) ?? Data(), as: UTF8.self)
        let runID = try catalog.beginRun(stage: "ingest", settings: settingsJSON)

        var report = IngestReport(workdir: directory, jobs: jobs, sampleRate: settings.sampleRate,
                                  clipSeconds: settings.clipSeconds)
        report.clipPolicy = settings.clipPolicy.description
        report.loudnessMeasured = settings.loudness.rawValue
        report.fingerprints = settings.fingerprint
        if settings.clipPolicy.isBest { report.clipRanking = clipScorer.name }
        if !slice.isSingle { report.worker = slice }
        let total = try countRows()
        var clipsSoFar = 0
        var secondsSoFar = 0.0
        let progress = ProgressMeter(total: total, unit: "tracks", console: console) { _, elapsed in
            String(format: "%d clips, %.2f h audio, %.1f× realtime", clipsSoFar, secondsSoFar / 3600,
                   elapsed > 0 ? secondsSoFar / elapsed : 0)
        }

        var firstSeen: [String: SourceLocation] = [:]
        let slice = self.slice
        let clipScorer = self.clipScorer

        func recordFailure(_ reason: FailureReason, _ detail: String, at location: SourceLocation) {
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
                                    settings: settings, store: store, clipScorer: clipScorer)
                }
            }
            return nil
        }

        for input in inputs {
            let opened = try openInput(input, catalog: catalog)
            var entries = opened.entries
            try await withThrowingTaskGroup(of: TrackOutcome.self) { group in
                var running = 0
                while running < jobs, let item = try nextItem(&entries) {
                    group.addTask { await Self.runOnWorkerThread(item) }
                    running += 1
                }
                while let outcome = try await group.next() {
                    running -= 1
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
                    if let item = try nextItem(&entries) {
                        group.addTask { await Self.runOnWorkerThread(item) }
                        running += 1
                    }
                }
            }
            if let error = opened.reader?.readError { throw error }
        }
        progress.finish()

        report.tracksTotal = report.tracksIngested + report.tracksSkipped + report.tracksFailed
        report.wallSeconds = Date().timeIntervalSince(started)
        report.realtimeFactor = report.wallSeconds > 0 ? report.hoursIn * 3600 / report.wallSeconds : 0
        report.peakRSSBytes = PeakMemory.residentBytes()
        report.exitCode = report.tracksFailed > 0 ? ExitStatus.completedWithFailures.rawValue : ExitStatus.success.rawValue
        try catalog.finishRun(runID, summary: report.json())
        return report
    }

    // MARK: Inputs

    /// The rows of one input, and the manifest reader behind them (to check for a read error
    /// once they are consumed).
    private func openInput(_ input: IngestInput, catalog: Catalog) throws
        -> (entries: AnyIterator<ManifestEntry>, reader: ManifestReader?) {
        switch input {
        case .manifest(let path, let format):
            let absolute = Paths.absolute(path)
            let reader = try ManifestReader(path: absolute, format: format)
            try catalog.clearRejects(manifest: absolute)
            return (AnyIterator(reader), reader)
        case .scan(let directory, let globs):
            return (AnyIterator(try DirectoryScan(root: directory, globs: globs).rows().makeIterator()), nil)
        }
    }

    /// Counts this worker's rows of all inputs (a quick pass) so progress can show a total and an ETA.
    private func countRows() throws -> Int {
        var total = 0
        func count(_ entry: ManifestEntry) {
            switch entry {
            case .row(let row): if slice.owns(trackID: row.trackID) { total += 1 }
            case .rejected(let reject): if slice.owns(optionalTrackID: reject.origin.trackID) { total += 1 }
            }
        }
        for input in inputs {
            switch input {
            case .manifest(let path, let format):
                let reader = try ManifestReader(path: Paths.absolute(path), format: format)
                while let entry = reader.next() { count(entry) }
                if let error = reader.readError { throw error }
            case .scan(let directory, let globs):
                for entry in try DirectoryScan(root: directory, globs: globs).rows() { count(entry) }
            }
        }
        return total
    }

    /// Runs the blocking decode work on a GCD thread, keeping Swift's cooperative pool free.
    private static func runOnWorkerThread(_ item: WorkItem) async -> TrackOutcome {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(returning: TrackProcessor.process(item))
            }
        }
    }
}
