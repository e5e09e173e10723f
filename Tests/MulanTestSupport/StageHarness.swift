import Foundation
import MulanCatalog

/// Runs the real `mulan-ingest` and `mulan-filter` executables on a work directory and reads what
/// they wrote.
public struct IngestHarness: Sendable {
    public let dir = TempDir("mulan-stage")
    public var workdir: String { dir.file("work") }

    public init() {}

    public static var binary: String { TestPaths.executable("mulan-ingest") }
    public static var filterBinary: String { TestPaths.executable("mulan-filter") }
    public static var shardBinary: String { TestPaths.executable("mulan-shard") }

    /// Runs mulan-shard with the shared options after the arguments (or after `verify`'s folder).
    @discardableResult
    public func shard(_ arguments: [String]) throws -> ProcessResult {
        let args = arguments.first == "verify" ? arguments + ["--quiet"]
            : arguments + ["--workdir", workdir, "--quiet"]
        return try TestProcess.run(Self.shardBinary, args, cwd: dir.path, environment: ["MULAN_PROGRESS_INTERVAL": "0"])
    }

    /// Runs mulan-filter with the shared options after the arguments.
    @discardableResult
    public func filter(_ arguments: [String]) throws -> ProcessResult {
        try TestProcess.run(Self.filterBinary, arguments + ["--workdir", workdir, "--quiet"], cwd: dir.path,
                            environment: ["MULAN_PROGRESS_INTERVAL": "0"])
    }

    @discardableResult
    public func ingest(_ arguments: [String], workdir: String? = nil) throws -> ProcessResult {
        // Shared options go after a subcommand name, when there is one.
        let common = ["--workdir", workdir ?? self.workdir, "--quiet"]
        let args = ["text", "audio"].contains(arguments.first ?? "")
            ? [arguments[0]] + common + arguments.dropFirst() : common + arguments
        return try TestProcess.run(Self.binary, args, cwd: dir.path, environment: ["MULAN_PROGRESS_INTERVAL": "0"])
    }

    public func catalog(_ workdir: String? = nil) throws -> Catalog {
        try Catalog(path: (workdir ?? self.workdir) + "/catalog.sqlite")
    }

    public func report(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// Every regular file below `root`, relative to it.
    public static func files(below root: String) -> Set<String> {
        var result = Set<String>()
        guard let e = FileManager.default.enumerator(atPath: root) else { return result }
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                result.insert(p)
            }
        }
        return result
    }

    /// The catalog's content without run ids and timestamps, as sets of rows, for comparing runs.
    public static func snapshot(_ c: Catalog) throws -> (tracks: Set<[String]>, clips: Set<[String]>, texts: Set<[String]>,
                                                   rejects: Set<[String]>) {
        let db = try Database(path: c.path, readOnly: true)
        func set(_ sql: String) throws -> Set<[String]> {
            Set(try db.rows(sql).map { $0.map { "\($0)" } })
        }
        return (
            try set("""
                SELECT track_id, source_path, manifest_line, split, file_size, content_hash, container, codec,
                       orig_sample_rate, orig_channels, duration_s, status, reason, detail, clips_kept,
                       clips_silent, tail_dropped_s, settings_key FROM tracks
                """),
            try set("""
                SELECT t.track_id, c.clip_index, c.start_s, c.duration_s, c.rms, c.peak, c.silence_share,
                       c.status, c.flac_path, c.flac_sha256 FROM clips c JOIN tracks t ON t.id = c.track_rowid
                """),
            try set("SELECT track_id, origin, field, text FROM raw_texts"),
            try set("SELECT manifest_line, track_id, reason, detail FROM rejected_rows"))
    }
}
