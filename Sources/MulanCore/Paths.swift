import Foundation

/// Small path helpers shared by the stages.
public enum Paths {
    /// `path` made absolute against the current directory, with `.` and `..` resolved.
    public static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path
            : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (joined as NSString).standardizingPath
    }
}

extension Paths {
    /// Opens `path` for writing, created empty (or truncated), with open(2). Foundation's
    /// `FileManager.createFile` writes through a hidden temporary that a killed process leaves behind.
    public static func createForWriting(_ path: String) -> FileHandle? {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        return fd < 0 ? nil : FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Creates a folder and its parents (`mkdir -p`). Safe when other processes create the same
    /// folders at the same time: a folder that appears meanwhile is fine. Each folder created is
    /// synced into its parent (`Durable`), so files published in it survive a power cut.
    public static func makeDirectory(_ path: String) throws(MulanError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path && parent != "/" { try makeDirectory(parent) }
        if mkdir(path, 0o755) != 0 {
            if errno == EEXIST { return }
            throw MulanError(.io, "cannot create the folder \(path)", hint: "check that its parent is writable",
                             cause: SystemCallError.current())
        }
        try Durable.syncFolder(parent.isEmpty ? "." : parent)
    }
}
