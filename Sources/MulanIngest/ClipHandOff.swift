import Foundation

/// The cores `--jobs` grants, shared by the tracks being decoded and the clips they hand off.
/// Every running track counts as one busy core; a track may hand a clip's storing (loudness, FLAC,
/// SHA-256) to another thread only while fewer than `cores` are busy. So `--jobs 1` never runs two
/// threads at once, and with `--jobs 2` the last track of a run (or of a slow stretch) uses the core
/// the finished track left: its decoder goes on while the previous clip is stored.
final class CoreBudget: @unchecked Sendable {   // guarded by its lock
    let cores: Int
    private let lock = NSLock()
    private var busy = 0

    init(cores: Int) { self.cores = max(1, cores) }

    /// A track starts (always allowed: the job never runs more tracks than `cores`).
    func trackStarted() { lock.withLock { busy += 1 } }
    func trackEnded() { lock.withLock { busy -= 1 } }

    /// Takes an idle core for a handed-off clip, if one is idle.
    func takeIdle() -> Bool {
        lock.withLock {
            guard busy < cores else { return false }
            busy += 1
            return true
        }
    }

    func giveBack() { lock.withLock { busy -= 1 } }
}

/// One track's clips stored on idle cores (`CoreBudget`), in any order; the track waits for them
/// (`finish`) before its record is built, and before it leaves on an error or restarts its decode.
final class ClipHandOff: @unchecked Sendable {   // guarded by its lock
    private let budget: CoreBudget
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var failure: (any Error)?
    /// How many clips were stored on another thread (for tests and the benchmark's notes).
    private(set) var handedOff = 0

    init(budget: CoreBudget) { self.budget = budget }

    /// Runs `work` on another thread when a core is idle and returns true; false when none is
    /// (the caller stores the clip itself).
    func run(_ work: @escaping @Sendable () throws -> Void) -> Bool {
        guard budget.takeIdle() else { return false }
        lock.withLock { handedOff += 1 }
        group.enter()
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            defer {
                budget.giveBack()
                group.leave()
            }
            do {
                try work()
            } catch {
                lock.withLock { if failure == nil { failure = error } }
            }
        }
        return true
    }

    /// Throws the first failure of a handed-off clip so far (the decoder stops at the next clip).
    func check() throws {
        if let failure = lock.withLock({ failure }) { throw failure }
    }

    /// Waits for every handed-off clip, then throws the first failure.
    func finish() throws {
        group.wait()
        try check()
    }

    /// Waits for every handed-off clip and forgets their failures (the track starts again, or has
    /// already failed).
    func abandon() {
        group.wait()
        lock.withLock { failure = nil }
    }
}

/// A value handed to another thread that the sender no longer touches meanwhile (the hand-off's
/// clip work reads the track's settings and staging folder, which change only after `finish`).
struct HandedOver<Value>: @unchecked Sendable {
    let value: Value
}
