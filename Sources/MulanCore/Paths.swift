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
}
