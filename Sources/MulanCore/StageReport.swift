import Foundation

/// A stage's machine-readable summary: JSON with sorted keys, written atomically.
public protocol StageReport: Encodable {}

extension StageReport {
    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Writes the JSON summary to `path` (a temporary name, then a rename).
    public func write(to path: String) throws(MulanError) {
        do {
            try Data((json() + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw MulanError(.io, "cannot write the report \(path)", hint: "check that its folder exists and is writable",
                             cause: error.localizedDescription)
        }
    }
}
