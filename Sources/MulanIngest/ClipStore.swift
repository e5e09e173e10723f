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
        try Durable.createFolder(path)
        return path
    }

    /// Moves committed staged files into the store and removes the staging folder. The store
    /// folders that received a clip are synced before the staging folder goes, so a power cut leaves
    /// each clip either in the store or still staged (where `recover` publishes it).
    public func publish(stagingFolder: String) throws {
        let fm = FileManager.default
        var touched = Set<String>()
        for name in (try? fm.contentsOfDirectory(atPath: stagingFolder)) ?? [] {
            let staged = stagingFolder + "/" + name
            guard name.hasSuffix(".flac"), !name.hasSuffix(".part") else {
                try? fm.removeItem(atPath: staged)
                continue
            }
            let sha = String(name.dropLast(5))
            if let folder = try moveIntoStore(staged, sha256: sha) { touched.insert(folder) }
        }
        for folder in touched.sorted() { try Durable.syncFolder(folder) }
        try? fm.removeItem(atPath: stagingFolder)
    }

    /// Renames a staged clip into the store; returns the store folder it landed in (to be synced by
    /// the caller), or nil when the store already held that content.
    private func moveIntoStore(_ staged: String, sha256: String) throws -> String? {
        let target = absolutePath(sha256: sha256)
        let fm = FileManager.default
        if fm.fileExists(atPath: target) {
            try? fm.removeItem(atPath: staged)  // same content already stored
            return nil
        }
        let folder = Durable.folder(of: target)
        try Durable.createFolder(folder)
        if rename(staged, target) != 0 {
            throw MulanError(.io, "cannot move \(staged) into the clip store",
                             hint: "check free space and permissions of \(workdir)", cause: SystemCallError.current())
        }
        return folder
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
                    if let folder = try moveIntoStore(staged, sha256: String(name.dropLast(5))) {
                        try Durable.syncFolder(folder)
                    }
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
