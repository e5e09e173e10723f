import Foundation
import MulanCatalog
import MulanCore

/// Invariants the crash-state tests check on a work directory, as a power cut left it and after
/// the re-run (CrashStates.swift).
public enum CrashChecks {
    /// The catalog of `workdir` (if there is one) passes `PRAGMA integrity_check`, and no clip row
    /// names a missing or short file: the file at `flac_path` has the row's SHA-256. As the power cut
    /// left it (`staged`), a committed clip may still be staged (`staging/*/SHA.flac`), which the
    /// re-run's recovery publishes. Checked on a copy, so the state itself is left as it is.
    public static func catalog(_ workdir: String, staged: Bool) throws -> [String] {
        let path = workdir + "/catalog.sqlite"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let scratch = FileManager.default.temporaryDirectory.path + "/mulan-crash-check-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: scratch + "/catalog.sqlite" + suffix)
        }
        var violations: [String] = []
        let db: Database
        do {
            db = try Database(path: scratch + "/catalog.sqlite")
        } catch {
            return ["the catalog does not open: \(error)"]
        }
        do {
            let check = try db.rows("PRAGMA integrity_check").map { $0.first?.string ?? "" }
            if check != ["ok"] { violations.append("PRAGMA integrity_check: " + check.prefix(3).joined(separator: "; ")) }
        } catch {
            return ["PRAGMA integrity_check fails: \(error)"]
        }
        let hasClips = (try? db.rows("SELECT name FROM sqlite_master WHERE name = 'clips'"))?.isEmpty == false
        guard hasClips else { return violations }
        let staging = (try? FileManager.default.contentsOfDirectory(atPath: workdir + "/staging")) ?? []
        for row in try db.rows("SELECT flac_path, flac_sha256 FROM clips WHERE flac_path IS NOT NULL") {
            guard let rel = row[0].string, let sha = row[1].string else { continue }
            var candidates = [workdir + "/" + rel]
            if staged { candidates += staging.map { workdir + "/staging/" + $0 + "/" + sha + ".flac" } }
            let whole = candidates.contains { (try? SHA256Digest.hex(ofFile: $0))?.digest == sha }
            if !whole {
                let exists = candidates.contains { FileManager.default.fileExists(atPath: $0) }
                violations.append("clip row names \(rel), which is \(exists ? "short or damaged" : "missing")")
            }
        }
        return violations
    }

    /// The rows a query returns, sorted, one per line: for comparing catalogs as sets. The folder
    /// holding the work directory is written as ROOT (each state runs in a copy of its own).
    public static func rows(_ workdir: String, _ sql: String) throws -> Data {
        let db = try Database(path: workdir + "/catalog.sqlite")
        let root = CrashStates.real(Durable.folder(of: workdir))
        let lines = try db.rows(sql).map {
            $0.map { "\($0)".replacingOccurrences(of: root, with: "ROOT") }.joined(separator: "\t")
        }.sorted()
        return Data(lines.joined(separator: "\n").utf8)
    }

    /// Every file below `root` (relative path → bytes), skipping names that `skip` accepts.
    public static func files(_ root: String, skip: (String) -> Bool = { _ in false }) -> [String: Data] {
        var out: [String: Data] = [:]
        guard let e = FileManager.default.enumerator(atPath: root) else { return out }
        while let p = e.nextObject() as? String {
            if skip(p) { continue }
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                out[p] = FileManager.default.contents(atPath: root + "/" + p)
            }
        }
        return out
    }
}
