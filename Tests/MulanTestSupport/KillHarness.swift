import Foundation

/// Crash-and-resume testing: start a stage, `kill -9` it at a seeded moment, re-run it, and compare
/// with an uninterrupted run. Every stage's test draws its kill points here, so that one variable
/// sets how hard they all try: `MULAN_KILL_POINTS` (3 by default, as in `make test`;
/// `bench/kill-resume.sh` asks for 20 or more) and `MULAN_KILL_SEED`. With `MULAN_KILL_REPORT` set
/// to a file, each kill point appends one JSON line to it (stage, delay, whether the kill landed
/// mid-run, whether the resumed result was identical, leftover temporary files).
public enum KillHarness {
    public static var points: Int {
        max(1, Int(ProcessInfo.processInfo.environment["MULAN_KILL_POINTS"] ?? "") ?? 3)
    }

    public static var seed: UInt64 {
        UInt64(ProcessInfo.processInfo.environment["MULAN_KILL_SEED"] ?? "") ?? 20_261_125
    }

    /// `points` delays spread over `(0, wall)`: one in each of `points` equal strata, at a seeded
    /// position inside it, so that early, middle and late kills are all tried whatever the count.
    public static func delays(wall: Double, stage: String, points: Int = KillHarness.points,
                              seed: UInt64 = KillHarness.seed) -> [Double] {
        var state = seed ^ stage.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        return (0..<points).map { k in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(state >> 11) / Double(1 << 53)
            // Strata over 3 %…97 % of the reference run: the very first and last instants only test
            // process start-up and exit.
            let fraction = 0.03 + 0.94 * (Double(k) + u) / Double(points)
            return wall * fraction
        }
    }

    /// Starts `program`, sends SIGKILL after `delay` seconds and waits for it. True when the signal
    /// ended the process, that is when the kill really landed mid-run.
    @discardableResult
    public static func runAndKill(_ program: String, _ arguments: [String], cwd: String? = nil,
                                  environment: [String: String] = [:], after delay: Double) throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        usleep(useconds_t(max(0, delay) * 1_000_000))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal
    }

    /// Kills a run `delay` seconds in. When the run finished first (the machine was less busy than
    /// during the reference run), `prepare` resets its output and the kill is tried again at 60 % of
    /// the delay, up to `attempts` times, so that a kill point is a kill that landed. `prepare` also
    /// runs before the first attempt. Returns the delay of the last attempt and whether it landed.
    public static func killMidRun(_ program: String, _ arguments: [String], cwd: String? = nil,
                                  environment: [String: String] = [:], after delay: Double, attempts: Int = 4,
                                  prepare: () throws -> Void) throws -> (delay: Double, landed: Bool) {
        var wait = delay
        for attempt in 1...attempts {
            try prepare()
            if try runAndKill(program, arguments, cwd: cwd, environment: environment, after: wait) {
                return (wait, true)
            }
            if attempt < attempts { wait *= 0.6 }
        }
        return (wait, false)
    }

    /// Removes `path` (a file or a folder) if it exists.
    public static func remove(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }

    /// Files a crash must never leave behind: temporary and partial outputs, SQLite rollback
    /// journals of a finished run, ingest's staging area.
    public static func leftovers(below root: String) -> [String] {
        IngestHarness.files(below: root).filter { path in
            let name = (path as NSString).lastPathComponent
            return name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.contains(".tmp-")
                || name.hasSuffix("-journal") || path.hasPrefix("staging/")
        }.sorted()
    }

    /// Appends one kill point's outcome to `MULAN_KILL_REPORT`, when set.
    /// `progress` is what the killed run had committed before the kill (clips, shards, checkpoints,
    /// completed filter versions), to show where in the run the kill landed.
    public static func record(stage: String, point: Int, delay: Double, interrupted: Bool, progress: Int,
                              identical: Bool, leftovers: [String]) {
        guard let path = ProcessInfo.processInfo.environment["MULAN_KILL_REPORT"], !path.isEmpty else { return }
        let line: [String: Any] = ["stage": stage, "point": point, "delay_s": (delay * 1000).rounded() / 1000,
                                   "interrupted": interrupted, "progress": progress, "identical": identical, "leftovers": leftovers,
                                   "seed": seed]
        guard var data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
