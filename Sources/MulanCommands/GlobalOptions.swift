import ArgumentParser
import Foundation
import MulanCore

extension LogFormat: ExpressibleByArgument {}

/// Options every mulan stage takes.
public struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Work directory holding the catalog, clip store and outputs.", valueName: "dir"))
    public var workdir: String = "./mulan-work"

    @Option(help: ArgumentHelp("Parallel jobs (default: the number of cores).", valueName: "n"))
    public var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print only warnings, errors and the final summary; no progress.")
    public var quiet = false

    @Option(help: ArgumentHelp("Log format on standard error: text or json (one object per line).", valueName: "format"))
    public var logFormat: LogFormat = .text

    public init() {}

    public func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
        if workdir.isEmpty { throw ValidationError("--workdir must not be empty") }
    }

    public var console: Console { Console(format: logFormat, quiet: quiet) }
}

/// Which worker this process is when a data stage runs on N machines (docs/scale-out.md).
/// Explicit flags win; otherwise `MULAN_WORKER`, a Slurm array (`SLURM_ARRAY_TASK_ID`,
/// `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` with `--workers N`
/// or `MULAN_WORKERS`) tells. Neither: one process does everything, as without these options.
public struct WorkerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This process's worker index, 0…N-1 (default: from the scheduler's environment).",
                               valueName: "i"))
    public var worker: Int?

    @Option(help: ArgumentHelp("The number of workers N; each processes the tracks whose id hashes to it "
                               + "(first 8 bytes of SHA-256 mod N).", valueName: "n"))
    public var workers: Int?

    public init() {}

    /// The slice, from the options and the environment.
    public func slice() throws(MulanError) -> WorkerSlice {
        try WorkerSlice.resolve(worker: worker, workers: workers)
    }

    public func validate() throws {
        do {
            _ = try slice()
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// Runs a stage body, turning project errors into a clear message and the documented exit codes.
func runStage(console: Console, _ body: () async throws -> ExitStatus) async throws {
    // Past a file-size limit (`ulimit -f`), a write fails with EFBIG and is reported like a full
    // disk, instead of the default SIGXFSZ killing the process without a word.
    signal(SIGXFSZ, SIG_IGN)
    let status: ExitStatus
    do {
        status = try await body()
    } catch let error as MulanError {
        console.log(.error, error.description, event: "fatal", fields: console.format == .json ? ["code": error.code.rawValue] : [:])
        throw ArgumentParser.ExitCode(error.code == .usage ? ExitStatus.usage.rawValue : ExitStatus.fatal.rawValue)
    }
    if status != .success { throw ArgumentParser.ExitCode(status.rawValue) }
}
