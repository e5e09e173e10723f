import Foundation

/// The process's peak resident memory, for run summaries and benchmarks.
///
/// Read from `VmHWM` in `/proc/self/status`, the high-water mark of this process's own address
/// space. `getrusage`'s `ru_maxrss` is not used on Linux: a process started by `posix_spawn` (glibc
/// spawns with a shared address space until `exec`) or by `fork` inherits its parent's high-water
/// mark at `exec`, so a stage started from a 450 MB test runner or notebook would report 450 MB
/// however little it used itself. `ru_maxrss` is the fallback where `/proc` is missing.
public enum PeakMemory {
    public static func residentBytes() -> Int {
        if let kib = highWaterMarkKiB() { return kib * 1024 }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }

    /// `VmHWM` in KiB, or nil when /proc/self/status cannot be read or has no such line.
    static func highWaterMarkKiB() -> Int? {
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("VmHWM:") else { continue }
            let digits = text.dropFirst(6).filter(\.isNumber)
            return Int(digits)
        }
        return nil
    }
}
