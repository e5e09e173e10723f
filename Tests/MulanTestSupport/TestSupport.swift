import Foundation

/// A temporary folder removed when the value goes away.
public final class TempDir: @unchecked Sendable {
    // Immutable after init; the folder is only written by the test that owns it.
    public let path: String

    public init(_ label: String = "mulan-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/\(label)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// MULAN_KEEP_TEST_FILES=1 keeps the folders (to debug a failing test).
    deinit {
        if ProcessInfo.processInfo.environment["MULAN_KEEP_TEST_FILES"] == "1" { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let p = file(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// Runs a closure on its own thread; `wait()` returns its result once it has finished. The
/// semaphore orders the two threads' memory (ThreadSanitizer checks that it is so).
public final class Background<T>: @unchecked Sendable {
    // Written once by the worker thread before `done` is signalled; read after waiting on it.
    private var result: T?
    private let done = DispatchSemaphore(value: 0)

    public init(_ body: @escaping @Sendable () -> T) {
        Thread { [self] in
            result = body()
            done.signal()
        }.start()
    }

    public func wait() -> T {
        done.wait()
        done.signal()  // a second wait() returns at once
        return result!
    }
}

/// The result of a child process.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

public enum TestProcess {
    /// Runs a program (found on PATH unless absolute) and collects its output.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], cwd: String? = nil,
                           environment: [String: String]? = nil, unsetting: [String] = []) throws -> ProcessResult {
        let process = Process()
        if program.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [program] + arguments
        }
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        if environment != nil || !unsetting.isEmpty {
            var merged = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }
            for name in unsetting { merged[name] = nil }
            process.environment = merged
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a chatty child never blocks.
        let errReader = Background { err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(status: process.terminationStatus, stdout: outData,
                             stderr: String(decoding: errReader.wait(), as: UTF8.self))
    }

    /// Runs the ffmpeg CLI quietly; throws with its message when it fails.
    public static func ffmpeg(_ arguments: [String]) throws {
        let r = try run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + arguments)
        if r.status != 0 { throw TestFailure("ffmpeg \(arguments.joined(separator: " ")) failed: \(r.stderr)") }
    }

    /// Decodes with the ffmpeg CLI to mono float at `rate`: the reference for parity tests.
    public static func ffmpegDecode(_ path: String, rate: Int, extra: [String] = []) throws -> [Float] {
        let r = try run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-i", path] + extra
                        + ["-ac", "1", "-ar", "\(rate)", "-f", "f32le", "-"])
        if r.status != 0 { throw TestFailure("ffmpeg decode of \(path) failed: \(r.stderr)") }
        return r.stdout.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}

extension TestProcess {
    /// What the ffmpeg CLI writes as 16-bit mono at `rate` (its integer downmix), as floats.
    public static func ffmpegDecode16(_ path: String, rate: Int) throws -> [Float] {
        let r = try run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-i", path,
                                   "-ac", "1", "-ar", "\(rate)", "-sample_fmt", "s16", "-f", "s16le", "-"])
        if r.status != 0 { throw TestFailure("ffmpeg decode of \(path) failed: \(r.stderr)") }
        return r.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)).map { Float($0) / 32768 } }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Which sanitizer, if any, the suite runs under.
public enum TestSanitizer {
    /// Whether the suite runs under `make test-asan` or `make test-tsan` (their options are set):
    /// shadow memory and quarantine multiply resident memory, so absolute memory bounds scale.
    public static var active: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["ASAN_OPTIONS"] != nil || env["TSAN_OPTIONS"] != nil
    }

    /// Whether the suite runs under `make test-tsan`.
    public static var thread: Bool { ProcessInfo.processInfo.environment["TSAN_OPTIONS"] != nil }

    /// How much more resident memory the same work takes under the active sanitizer.
    public static var memoryFactor: Int { active ? 8 : 1 }
}

public enum TestPaths {
    /// The folder holding the test bundle, where SwiftPM also puts the executables.
    public static var productsDirectory: String {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // On Linux the runner is `<products>/mulanPackageTests.xctest`; on macOS a bundle inside it.
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.path + "/mulan-ingest") {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }

    public static func executable(_ name: String) -> String { productsDirectory + "/" + name }

    /// The package root (two levels above this file's folder).
    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// The AudioSet ontology the tests map label ids with (a copy in Tests/tools, CC BY-SA 4.0).
    public static var audioSetOntology: String { packageRoot + "/Tests/tools/audioset-ontology.json" }
}
