import Foundation

/// Accumulates thread-seconds spent in a few kinds of work (GEMM, log-mel, data loading), for the
/// trainer's time-share report. Thread-safe; cheap enough for per-call use.
public enum Profiler {
    public enum Kind: String, CaseIterable, Sendable { case gemm, logmel, data }

    nonisolated(unsafe) private static var totals = [Double](repeating: 0, count: Kind.allCases.count)
    private static let lock = NSLock()

    @inline(__always) public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public static func add(_ kind: Kind, since start: UInt64) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9
        let index = Kind.allCases.firstIndex(of: kind)!
        lock.lock()
        totals[index] += seconds
        lock.unlock()
    }

    /// Thread-seconds per kind since the last reset.
    public static func snapshot() -> [Kind: Double] {
        lock.lock()
        defer { lock.unlock() }
        return Dictionary(uniqueKeysWithValues: zip(Kind.allCases, totals))
    }

    public static func reset() {
        lock.lock()
        for i in totals.indices { totals[i] = 0 }
        lock.unlock()
    }
}
