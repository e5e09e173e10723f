import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A scratch file per fuzzing process for readers that only take a path (fuzz inputs are written to
/// it before each run). Under /dev/shm when it exists, so no disk I/O.
public enum FuzzScratch {
    public static let directory: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = base + "/mulan-fuzz-\(getpid())"
        mkdir(dir, 0o700)
        atexit { _ = try? FileManager.default.removeItem(atPath: "/dev/shm/mulan-fuzz-\(getpid())") }
        return dir
    }()

    /// Writes `bytes` to `directory/name` (truncating) and returns the path.
    public static func write(_ bytes: UnsafeBufferPointer<UInt8>, name: String) -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }
}

/// Splits a fuzz input into a leading selector byte and the rest.
public struct FuzzInput {
    public let selector: UInt8
    public let rest: UnsafeBufferPointer<UInt8>

    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        if size == 0 || data == nil {
            selector = 0
            rest = UnsafeBufferPointer(start: nil, count: 0)
        } else {
            selector = data![0]
            rest = UnsafeBufferPointer(start: data! + 1, count: size - 1)
        }
    }

    public var bytes: [UInt8] { Array(rest) }
    public var data: Data { Data(buffer: rest) }
}

/// libFuzzer's entry for programs with their own `main` (compiler-rt's FuzzerInterface.h).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// Runs libFuzzer with the process's arguments over `harness` and exits with its status.
/// (SwiftPM gives each executable its own `main`, so libFuzzer's `main` is not used; this is the
/// documented alternative.)
public func runFuzzer(_ harness: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, harness))
}
