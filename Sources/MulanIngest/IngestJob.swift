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
        let (lock, catalog, store) = try openWorkDirectory()
        defer { withExtendedLifetime(lock) {} }
        let run = try IngestRun(job: self, catalog: catalog, store: store, total: try countRows())
        for input in inputs {
            try await ingest(input, into: run)
        }
        return try run.finish(started: started)
    }

    /// Creates and checks the work directory (or this worker's part), takes its lock, opens the
    /// catalog and recovers what an interrupted run left staged.
    private func openWorkDirectory() throws -> (WorkdirLock, Catalog, ClipStore) {
        try Paths.makeDirectory(workdir)
        try WorkLayout.checkWritable(root: workdir, slice: slice)
        try Paths.makeDirectory(directory)
        let lock = try WorkdirLock(workdir: directory, stage: "mulan-ingest")
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
        return (lock, catalog, store)
    }

    /// Ingests one input's rows: `jobs` tracks decode at a time on worker threads while this task
    /// commits each finished one.
    private func ingest(_ input: IngestInput, into run: IngestRun) async throws {
        let opened = try openInput(input, catalog: run.catalog)
        var entries = opened.entries
        let jobs = self.jobs
        try await withThrowingTaskGroup(of: TrackOutcome.self) { group in
            var running = 0
            while running < jobs, let item = try run.nextItem(&entries) {
                group.addTask { await Self.runOnWorkerThread(item) }
                running += 1
            }
            while let outcome = try await group.next() {
                running -= 1
                try run.commit(outcome)
                if let item = try run.nextItem(&entries) {
                    group.addTask { await Self.runOnWorkerThread(item) }
                    running += 1
                }
            }
        }
        if let error = opened.reader?.readError { throw error }
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
                item.cores.trackStarted()
                let outcome = TrackProcessor.process(item)
                item.cores.trackEnded()
                continuation.resume(returning: outcome)
            }
        }
    }
}
