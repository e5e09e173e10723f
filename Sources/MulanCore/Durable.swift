import Foundation

/// The one place mulan makes a published file survive a power cut, not only the process dying.
///
/// The order, for every file a stage publishes: write it under a temporary name, `fsync` the file
/// (its data and size reach the disk), `rename` it into place, then `fsync` the folder (the new
/// name reaches the disk). A catalog commit that names a file comes after all of that. Where many
/// files land in one folder, `rename(_:to:syncFolder: false)` for each and one `syncFolder` after
/// them is the batched form (one folder flush instead of one per file).
///
/// `MULAN_UNSAFE_SKIP_FSYNC` is a test-only switch that breaks this order on purpose, so that the
/// crash-state checker (Tests/MulanTestSupport/CrashStates.swift) is shown to catch a missing sync,
/// and so that bench/fsync-cost.sh can measure what the syncs cost: `data` skips the file syncs,
/// `folder` the folder syncs, `all` both; with `data` or `all` the catalog also goes back to
/// `synchronous = NORMAL` (what mulan did before). Never set it on real data.
public enum Durable {
    /// What the test-only switch turns off.
    public struct Skip: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let data = Skip(rawValue: 1)
        public static let folder = Skip(rawValue: 2)
    }

    public static let skip: Skip = {
        switch ProcessInfo.processInfo.environment["MULAN_UNSAFE_SKIP_FSYNC"] ?? "" {
        case "data": return .data
        case "folder": return .folder
        case "all": return [.data, .folder]
        default: return []
        }
    }()

    /// Flushes an open file's data to the disk (`fsync`).
    public static func sync(descriptor fd: Int32, path: String) throws(MulanError) {
        if skip.contains(.data) { return }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw MulanError(.io, "cannot flush \(path) to the disk (fsync)",
                             hint: "check the disk and free space; the file may not survive a power cut",
                             cause: SystemCallError.current())
        }
    }

    /// Flushes a written, closed file's data to the disk (opens it by path; for files another
    /// library wrote, such as FLAC clips written through FFmpeg's avio).
    public static func syncFile(_ path: String) throws(MulanError) {
        if skip.contains(.data) { return }
        try syncPath(path, flags: O_RDONLY | O_CLOEXEC, what: path)
    }

    /// Flushes a folder's entries (names created, renamed or removed in it) to the disk.
    public static func syncFolder(_ path: String) throws(MulanError) {
        if skip.contains(.folder) { return }
        try syncPath(path.isEmpty ? "." : path, flags: O_RDONLY | O_DIRECTORY | O_CLOEXEC, what: "the folder \(path)")
    }

    /// The folder that holds `path` ("." for a bare name).
    public static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Publishes `temporary` as `path`: syncs its data, renames it, and (unless the caller batches
    /// folder syncs) syncs the folder.
    public static func rename(_ temporary: String, to path: String, syncFolder sync: Bool = true) throws(MulanError) {
        try syncFile(temporary)
        if Foundation.rename(temporary, path) != 0 {
            throw MulanError(.io, "cannot rename \(temporary) to \(path)", cause: SystemCallError.current())
        }
        if sync { try syncFolder(folder(of: path)) }
    }

    /// Creates a folder (and its parents) so that it survives a power cut: each folder created is
    /// synced into its parent.
    public static func createFolder(_ path: String) throws(MulanError) {
        try Paths.makeDirectory(path)
    }

    /// Opens `path` with `flags`, fsyncs it and closes it.
    private static func syncPath(_ path: String, flags: Int32, what: String) throws(MulanError) {
        let fd = open(path, flags)
        guard fd >= 0 else {
            throw MulanError(.io, "cannot open \(what) to flush it to the disk", cause: SystemCallError.current())
        }
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw MulanError(.io, "cannot flush \(what) to the disk (fsync)",
                             hint: "check the disk and free space; the file may not survive a power cut",
                             cause: SystemCallError.current())
        }
    }
}
