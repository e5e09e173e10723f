import Foundation


/// An exclusive advisory lock (`flock`) on `<workdir>/.lock` for the lifetime of the value, so
/// two writers never run on one work directory. The kernel releases it if the process dies.
public final class WorkdirLock {
    private let fd: Int32

    public convenience init(workdir: String, stage: String) throws(MulanError) {
        try self.init(lockFile: workdir + "/.lock", stage: stage, what: "the work directory \(workdir)",
                      hint: "wait for it to finish, or use another --workdir")
    }

    /// Holds an exclusive lock on `lockFile` (created if needed). `what` names what the lock guards
    /// and `hint` says what to do when another process holds it.
    public init(lockFile path: String, stage: String, what: String, hint: String) throws(MulanError) {
        let workdir = (path as NSString).deletingLastPathComponent
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw MulanError(.io, "cannot create the lock file \(path)", hint: "check that \(workdir) is writable",
                             cause: SystemCallError.current())
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            // The holder writes its note right after taking the lock: a process that lost a race
            // by microseconds may read the file before the note is there, so it waits a little.
            var holder = [UInt8](repeating: 0, count: 128)
            var n = pread(fd, &holder, 127, 0)
            for _ in 0..<50 where n <= 0 {
                usleep(10_000)
                n = pread(fd, &holder, 127, 0)
            }
            close(fd)
            let who = n > 0 ? String(decoding: holder[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "another process"
            throw MulanError(.locked, "\(what) is in use by \(who)", hint: hint)
        }
        let note = "\(stage) pid \(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
