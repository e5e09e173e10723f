import Foundation
@testable import MulanTestSupport
import Testing

/// The crash-state checker's power-loss model (Tests/MulanTestSupport/CrashStates.swift) on a
/// hand-written trace, laid out as `CrashStates.run` lays it out: the trace names `ROOT`, the run's
/// files have been moved to `killed`, and `ROOT` itself no longer exists.
@Suite("Crash-state model")
struct CrashModelTests {
    /// SQLite creates `-wal` in a folder that existed before the run and syncs that folder by opening
    /// it without O_DIRECTORY and calling `fdatasync` on it (its DIRSYNC); a file created after that
    /// sync is not covered by it.
    static let walThenTemporary = """
        7 openat(AT_FDCWD</ROOT>, "/ROOT/work/db-wal", O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0644) = 8</ROOT/work/db-wal>
        7 pwrite64(8</ROOT/work/db-wal>, ""..., 100, 0) = 100
        7 fdatasync(8</ROOT/work/db-wal>) = 0
        7 openat(AT_FDCWD</ROOT>, "/ROOT/work", O_RDONLY|O_CLOEXEC) = 11</ROOT/work>
        7 fdatasync(11</ROOT/work>) = 0
        7 openat(AT_FDCWD</ROOT>, "/ROOT/work/x.tmp", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 6</ROOT/work/x.tmp>
        7 write(6</ROOT/work/x.tmp>, ""..., 50) = 50

        """

    /// initial/work/db; killed/work/{db, db-wal (100 bytes), x.tmp (50 bytes)}; the trace with ROOT
    /// replaced by the run's (absent) path.
    func layout(_ dir: TempDir, trace: String) throws -> (root: String, initial: String, killed: String, events: [CrashStates.Event]) {
        let root = dir.file("run"), initial = dir.file("initial"), killed = dir.file("killed")
        try dir.write("initial/work/db", "0123456789")
        try dir.write("killed/work/db", "0123456789")
        try dir.write("killed/work/db-wal", String(repeating: "w", count: 100))
        try dir.write("killed/work/x.tmp", String(repeating: "x", count: 50))
        let events = CrashStates.parse(trace.replacingOccurrences(of: "/ROOT", with: root))
        return (root, initial, killed, events)
    }

    func state(_ variant: CrashStates.Variant, trace: String) throws -> (wal: Int?, temporary: Int?, undone: Int) {
        let dir = TempDir("mulan-crash-model")
        let (root, initial, killed, events) = try layout(dir, trace: trace)
        #expect(!FileManager.default.fileExists(atPath: root))
        let model = CrashStates.Model(trace: events, root: root, initial: initial, now: killed)
        let target = dir.file("state")
        try FileManager.default.copyItem(atPath: killed, toPath: target)
        let (_, undone) = try model.apply(variant, to: target)
        func size(_ p: String) -> Int? { (try? FileManager.default.attributesOfItem(atPath: target + p))?[.size] as? Int }
        return (size("/work/db-wal"), size("/work/x.tmp"), undone)
    }

    @Test func aFolderSyncedBeforeTheMoveKeepsItsNames() throws {
        let s = try state(.namesUndone, trace: Self.walThenTemporary)
        #expect(s.wal == 100)        // created, synced, its folder synced: survives whole
        #expect(s.temporary == nil)  // created after the folder sync: undone
        #expect(s.undone == 1)
    }

    @Test func withoutTheFolderSyncTheCreateIsUndone() throws {
        let trace = Self.walThenTemporary.split(separator: "\n").filter { !$0.contains("</ROOT/work>") }
            .joined(separator: "\n") + "\n"
        let s = try state(.namesUndone, trace: trace)
        #expect(s.wal == nil)
        #expect(s.temporary == nil)
        #expect(s.undone == 2)
    }

    @Test func dataDroppedCutsOnlyUnsyncedData() throws {
        let s = try state(.dataDropped, trace: Self.walThenTemporary)
        #expect(s.wal == 100)
        #expect(s.temporary == 0)
        #expect(s.undone == 0)
    }
}
