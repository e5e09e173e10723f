import Foundation

/// A stage's machine-readable summary: JSON with sorted keys, written atomically.
public protocol StageReport: Encodable {}

extension StageReport {
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Writes the JSON summary to `path` (as `path.tmp`, synced, then renamed). With `syncFolder`
    /// false the caller syncs the folder itself, once for many files (`Durable`'s batched form).
    public func write(to path: String, syncFolder: Bool = true) throws(MulanError) {
        try AtomicFile.write(Data((json() + "\n").utf8), to: path, syncFolder: syncFolder)
    }
}

/// Writes a file under a temporary name (`NAME.tmp`) and renames it into place, so a reader never
/// sees a partial file; a leftover `.tmp` from a killed process is removed by the next run. The data
/// is synced before the rename and the folder after it (`Durable`), so the file survives a power cut
/// once `write` returns.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, syncFolder: Bool = true) throws(MulanError) {
        let tmp = path + ".tmp"
        do {
            try data.write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw MulanError(.io, "cannot write \(path)", hint: "check that its folder exists and is writable",
                             cause: error)
        }
        try Durable.rename(tmp, to: path, syncFolder: syncFolder)
    }
}
