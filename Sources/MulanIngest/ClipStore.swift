import Foundation
import MulanCatalog
import MulanCore

/// The content-addressed FLAC store of a work directory: `clips/ab/cd/<sha256>.flac`.
///
/// Files reach it in two steps so that a crash (even `kill -9`) never leaves partial or orphan
/// files: a worker writes a clip to `staging/<token>/<n>.flac.part`, renames it to
/// `staging/<token>/<sha256>.flac` once complete, and only after the catalog transaction that
/// references it has committed is it moved into the store. `recover` finishes or undoes whatever
/// a killed run left in `staging/` and in the catalog's `file_gc` queue.
public struct ClipStore: Sendable {
    public let workdir: String

    public init(workdir: String) {
        self.workdir = workdir
    }

    public var stagingRoot: String { workdir + "/staging" }

    /// The store path of a clip, relative to the work directory.
    public static func relativePath(sha256: String) -> String {
        let a = sha256.prefix(2)
        let b = sha256.dropFirst(2).prefix(2)
        return "clips/\(a)/\(b)/\(sha256).flac"
    }

    public func absolutePath(sha256: String) -> String { workdir + "/" + Self.relativePath(sha256: sha256) }

    /// A fresh staging folder for one track's clips.
    public func makeStagingFolder() throws -> String {
        let path = stagingRoot + "/" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Moves committed staged files into the store and removes the staging folder.
    public func publish(stagingFolder: String) throws {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: stagingFolder)) ?? [] {
            let staged = stagingFolder + "/" + name
            guard name.hasSuffix(".flac"), !name.hasSuffix(".part") else {
                try? fm.removeItem(atPath: staged)
                continue
            }
            let sha = String(name.dropLast(5))
            try moveIntoStore(staged, sha256: sha)
        }
        try? fm.removeItem(atPath: stagingFolder)
    }

    private func moveIntoStore(_ staged: String, sha256: String) throws {
        let target = absolutePath(sha256: sha256)
        let fm = FileManager.default
        if fm.fileExists(atPath: target) {
            try? fm.removeItem(atPath: staged)  // same content already stored
            return
        }
        try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                               withIntermediateDirectories: true)
        if rename(staged, target) != 0 {
            throw MulanError(.io, "cannot move \(staged) into the clip store",
                             hint: "check free space and permissions of \(workdir)", cause: SystemCallError.current())
        }
    }

    /// Deletes store files queued in `file_gc` that no clip references any more.
    public func collectGarbage(catalog: Catalog) throws {
        for sha in try catalog.pendingGarbage() {
            if try !catalog.isReferenced(sha256: sha) {
                let path = absolutePath(sha256: sha)
                if unlink(path) != 0 && errno != ENOENT {
                    throw MulanError(.io, "cannot delete unreferenced clip \(path)", cause: SystemCallError.current())
                }
            }
            try catalog.forgetGarbage(sha256: sha)
        }
    }

    /// Finishes what a killed run left: staged files the catalog references are published, the
    /// rest (partial or uncommitted) deleted; then queued garbage is collected.
    /// Returns the number of staged files published and deleted.
    @discardableResult
    public func recover(catalog: Catalog) throws -> (published: Int, deleted: Int) {
        let fm = FileManager.default
        var published = 0
        var deleted = 0
        for folder in (try? fm.contentsOfDirectory(atPath: stagingRoot)) ?? [] {
            let path = stagingRoot + "/" + folder
            for name in (try? fm.contentsOfDirectory(atPath: path)) ?? [] {
                let staged = path + "/" + name
                if name.hasSuffix(".flac") && !name.hasSuffix(".part"),
                   try catalog.isReferenced(sha256: String(name.dropLast(5))) {
                    try moveIntoStore(staged, sha256: String(name.dropLast(5)))
                    published += 1
                } else {
                    try? fm.removeItem(atPath: staged)
                    deleted += 1
                }
            }
            try? fm.removeItem(atPath: path)
        }
        try collectGarbage(catalog: catalog)
        return (published, deleted)
    }
}
