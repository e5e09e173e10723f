import Foundation

/// Which share of the tracks one process handles when a stage runs on N machines: worker `index`
/// of `count` processes the tracks whose id hashes to it (`WorkerSlice.worker(of:workers:)`).
/// `count == 1` is the ordinary single-process run.
public struct WorkerSlice: Sendable, Hashable, CustomStringConvertible {
    public let index: Int
    public let count: Int
    /// Where the index came from, for the log: "--worker", "SLURM_ARRAY_TASK_ID", …
    public let origin: String

    public static let single = WorkerSlice(uncheckedIndex: 0, count: 1, origin: "default")

    init(uncheckedIndex index: Int, count: Int, origin: String) {
        self.index = index
        self.count = count
        self.origin = origin
    }

    public init(index: Int, count: Int, origin: String = "--worker") throws(MulanError) {
        guard count >= 1 else {
            throw MulanError(.usage, "the number of workers must be at least 1, got \(count)")
        }
        guard index >= 0 && index < count else {
            throw MulanError(.usage, "worker \(index) does not exist among \(count) workers (\(origin))",
                             hint: "worker indexes run from 0 to \(count - 1)")
        }
        self.index = index
        self.count = count
        self.origin = origin
    }

    public var isSingle: Bool { count == 1 }
    public var description: String { "worker \(index) of \(count)" }
    public static func == (a: WorkerSlice, b: WorkerSlice) -> Bool { a.index == b.index && a.count == b.count }
    public func hash(into h: inout Hasher) { h.combine(index); h.combine(count) }

    /// Whether this worker processes the track.
    public func owns(trackID: String) -> Bool { count == 1 || Self.worker(of: trackID, workers: count) == index }

    /// Whether this worker records a row that may lack a track id (a rejected input row): rows with
    /// a track id go to that track's worker, rows without one to worker 0, so each lands in one part.
    public func owns(optionalTrackID trackID: String?) -> Bool {
        guard let trackID else { return index == 0 }
        return owns(trackID: trackID)
    }

    // MARK: The partition

    /// The first 8 bytes of SHA-256 of the track id's UTF-8 bytes, read big-endian. The same number
    /// on every machine and in every process (Swift's `Hasher` is seeded per process and is not
    /// used). In Python: `int.from_bytes(hashlib.sha256(track_id.encode()).digest()[:8], "big")`.
    public static func trackHash(_ trackID: String) -> UInt64 {
        let hex = SHA256Digest.hex(of: Array(trackID.utf8))
        return UInt64(hex.prefix(16), radix: 16) ?? 0
    }

    /// The worker that processes a track: `trackHash(id) mod workers`.
    public static func worker(of trackID: String, workers: Int) -> Int {
        workers <= 1 ? 0 : Int(trackHash(trackID) % UInt64(workers))
    }

    // MARK: Choosing the slice

    /// The slice from the command line and the environment. Explicit flags win. Otherwise the index
    /// comes from `MULAN_WORKER`, a Slurm array or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`),
    /// and the count from `--workers`, `MULAN_WORKERS` or `SLURM_ARRAY_TASK_COUNT`.
    ///
    /// A Slurm array is either all the workers or some of them. All of them: no count is given, or
    /// the given count equals `SLURM_ARRAY_TASK_COUNT`; task i is worker `SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN` (`--array=0-63` and `--array=1-64` both work). Some of them: a count is
    /// given and the array has fewer tasks, as when one failed task is resubmitted
    /// (`sbatch --array=7` with `MULAN_WORKERS=64`); then the task id is the worker index itself.
    /// Usage errors: a count without an index, an index without a count, I ≥ N.
    /// Nothing given: the single-process run.
    public static func resolve(worker: Int?, workers: Int?,
                               environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(MulanError) -> WorkerSlice {
        func number(_ name: String) throws(MulanError) -> Int? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            guard let value = Int(text) else {
                throw MulanError(.usage, "\(name)=\(text) is not a whole number")
            }
            return value
        }
        let slurmID = try number("SLURM_ARRAY_TASK_ID")
        let slurmCount = try number("SLURM_ARRAY_TASK_COUNT")
        let slurmMin = try number("SLURM_ARRAY_TASK_MIN") ?? 0
        let mulanWorker = try number("MULAN_WORKER")
        let mulanWorkers = try number("MULAN_WORKERS")
        let k8sIndex = try number("JOB_COMPLETION_INDEX")

        if let workers, workers < 1 { throw MulanError(.usage, "--workers must be at least 1, got \(workers)") }
        if let worker, worker < 0 { throw MulanError(.usage, "--worker must be at least 0, got \(worker)") }

        // Explicit flags win over the environment.
        if let worker, let workers { return try WorkerSlice(index: worker, count: workers, origin: "--worker") }

        let index: Int?
        let indexOrigin: String
        if let worker {
            index = worker
            indexOrigin = "--worker"
        } else if let mulanWorker {
            index = mulanWorker
            indexOrigin = "MULAN_WORKER"
        } else if let slurmID {
            // The given count, if any; with fewer array tasks than workers, the tasks are named by
            // worker index (a resubmitted task keeps its number), so the minimum is not subtracted.
            let given = workers ?? mulanWorkers
            if let given, let slurmCount, slurmCount < given {
                index = slurmID
                indexOrigin = "SLURM_ARRAY_TASK_ID; the array runs \(slurmCount) of the \(given) workers"
            } else {
                index = slurmID - slurmMin
                indexOrigin = slurmMin == 0 ? "SLURM_ARRAY_TASK_ID" : "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN"
            }
        } else if let k8sIndex {
            index = k8sIndex
            indexOrigin = "JOB_COMPLETION_INDEX"
        } else {
            index = nil
            indexOrigin = ""
        }

        let usesSlurm = indexOrigin.hasPrefix("SLURM")
        if usesSlurm, let given = workers ?? mulanWorkers, let slurmCount, slurmCount > given {
            let name = workers != nil ? "--workers \(given)" : "MULAN_WORKERS=\(given)"
            throw MulanError(.usage, "\(name) but this Slurm array has \(slurmCount) tasks, more than the workers",
                             hint: "give the array at most as many tasks as workers: sbatch --array=0-\(given - 1), "
                                 + "or --array=I,J,… for some of them")
        }
        if usesSlurm, workers == nil, mulanWorkers == nil, let slurmID, slurmMin > 0, slurmCount == 1 {
            throw MulanError(.usage, "this Slurm array has one task, \(slurmID), and no number of workers was given",
                             hint: "to run worker \(slurmID) again (sbatch --array=\(slurmID)), set MULAN_WORKERS=N "
                                 + "(or pass --workers N) with the N of the other workers")
        }
        let count: Int?
        if let workers {
            count = workers
        } else if let mulanWorkers {
            count = mulanWorkers
        } else if usesSlurm {
            count = slurmCount
        } else {
            count = nil
        }

        switch (index, count) {
        case (nil, nil):
            return .single
        case (nil, let n?):
            if n == 1 { return .single }
            throw MulanError(.usage, "--workers \(n) needs to know which worker this is",
                             hint: "pass --worker I (0…\(n - 1)), or run as a Slurm array task or a Kubernetes Indexed Job")
        case (let i?, nil):
            throw MulanError(.usage, "worker \(i) (from \(indexOrigin)) needs the number of workers",
                             hint: "pass --workers N or set MULAN_WORKERS=N")
        case (let i?, let n?):
            return try WorkerSlice(index: i, count: n, origin: indexOrigin)
        }
    }
}

/// Where the workers of a partitioned work directory keep their state: `WORKDIR/parts/I-of-N/`,
/// each an ordinary work directory (its own `catalog.sqlite`, `clips/`, `staging/`, `.lock`)
/// written by exactly one worker.
public enum WorkLayout {
    public enum Kind: Sendable, Equatable {
        /// Nothing yet (a fresh work directory).
        case empty
        /// `WORKDIR/catalog.sqlite`: written by single-process runs.
        case single
        /// `WORKDIR/parts/I-of-N/`: `present` lists the parts that exist.
        case parts(count: Int, present: [Int])
    }

    public static func partName(_ index: Int, of count: Int) -> String { "\(index)-of-\(count)" }

    public static func partDirectory(root: String, index: Int, count: Int) -> String {
        root + "/parts/" + partName(index, of: count)
    }

    public static func partDirectory(root: String, slice: WorkerSlice) -> String {
        partDirectory(root: root, index: slice.index, count: slice.count)
    }

    /// What the work directory holds. Parts of different worker counts, or parts next to a
    /// single-process catalog, are errors: the two layouts are never mixed.
    public static func inspect(_ root: String) throws(MulanError) -> Kind {
        let fm = FileManager.default
        let hasSingle = fm.fileExists(atPath: root + "/catalog.sqlite")
        var counts = Set<Int>()
        var present: [Int] = []
        for name in (try? fm.contentsOfDirectory(atPath: root + "/parts")) ?? [] {
            let pieces = name.split(separator: "-")
            guard pieces.count == 3, pieces[1] == "of", let i = Int(pieces[0]), let n = Int(pieces[2]), n >= 1,
                  i >= 0, i < n, name == partName(i, of: n) else { continue }
            guard fm.fileExists(atPath: root + "/parts/" + name + "/catalog.sqlite") else { continue }
            counts.insert(n)
            present.append(i)
        }
        if counts.count > 1 {
            throw MulanError(.usage, "\(root)/parts holds parts of \(counts.sorted().map(String.init).joined(separator: " and ")) workers",
                             hint: "a work directory is split one way only; use another --workdir for another worker count")
        }
        if let n = counts.first {
            if hasSingle {
                throw MulanError(.usage, "\(root) holds both a single-process catalog.sqlite and worker parts",
                                 hint: "use one layout per work directory: move one of them to another --workdir")
            }
            return .parts(count: n, present: present.sorted())
        }
        return hasSingle ? .single : .empty
    }

    /// The folders of all `count` parts of a partitioned work directory, in worker order, given the
    /// ones `inspect` found; a usage error naming the missing ones (`hint`: what to run for them).
    public static func allParts(root: String, count n: Int, present: [Int], hint: String) throws(MulanError) -> [String] {
        let missing = (0..<n).filter { !present.contains($0) }
        if !missing.isEmpty {
            throw MulanError(.usage, "\(root) is split into \(n) worker parts but "
                             + missing.map { "parts/\(partName($0, of: n))" }.joined(separator: ", ")
                             + " \(missing.count == 1 ? "is" : "are") missing", hint: hint)
        }
        return (0..<n).map { partDirectory(root: root, index: $0, count: n) }
    }

    /// Checks that a stage may write as `slice` in `root`: a single-process run never writes into a
    /// partitioned work directory, workers never into a single-process one, and all workers agree on N.
    public static func checkWritable(root: String, slice: WorkerSlice) throws(MulanError) {
        switch try inspect(root) {
        case .empty:
            return
        case .single:
            if !slice.isSingle {
                throw MulanError(.usage, "\(root) holds a single-process catalog (catalog.sqlite); it cannot be "
                                 + "split into worker parts afterwards",
                                 hint: "run without --worker/--workers, or use a fresh --workdir for \(slice.count) workers")
            }
        case .parts(let n, _):
            if slice.isSingle {
                throw MulanError(.usage, "\(root) is split into \(n) worker parts (parts/I-of-\(n))",
                                 hint: "pass --worker I --workers \(n) (or run as an array of \(n) tasks)")
            }
            if n != slice.count {
                throw MulanError(.usage, "\(root) is split into \(n) worker parts, not \(slice.count)",
                                 hint: "use --workers \(n), or a fresh --workdir for \(slice.count) workers")
            }
        }
    }
}
