import Foundation
import MulanTestSupport
import Testing

/// Issue 20, point 1: the catalog owns its schema. Every SQL statement lives in MulanCatalog (its
/// stores); the other modules call typed methods. This scans Sources/ for SQL in any other module.
@Suite("Schema ownership")
struct SchemaOwnershipTests {
    /// SQL as the modules write it: statements' opening words (upper case, as the project writes SQL).
    static let sql = try! NSRegularExpression(pattern: #"""
        \b(SELECT\b|INSERT (OR \w+ )?INTO\b|UPDATE \w+ SET\b|DELETE FROM\b|CREATE (TABLE|INDEX|UNIQUE INDEX|VIEW|TRIGGER|VIRTUAL TABLE)\b|DROP (TABLE|INDEX|VIEW|TRIGGER)\b|ALTER TABLE\b|PRAGMA\b|ATTACH DATABASE\b|DETACH DATABASE\b|BEGIN( IMMEDIATE| EXCLUSIVE| DEFERRED)?"|COMMIT"|ROLLBACK\b|SAVEPOINT\b)
        """#)

    /// `file:line: text` of each line with SQL in `module`'s sources (comment lines left out).
    static func sqlLines(module: String) throws -> [String] {
        let root = TestPaths.packageRoot + "/Sources/" + module
        var found: [String] = []
        let files = try FileManager.default.subpathsOfDirectory(atPath: root).filter { $0.hasSuffix(".swift") }.sorted()
        for file in files {
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let s = String(line)
                if s.trimmingCharacters(in: .whitespaces).hasPrefix("//") { continue }
                if sql.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil {
                    found.append("Sources/\(module)/\(file):\(n + 1): \(s.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        return found
    }

    static var modules: [String] {
        get throws {
            try FileManager.default.contentsOfDirectory(atPath: TestPaths.packageRoot + "/Sources").sorted()
        }
    }

    @Test func noModuleButTheCatalogContainsSQL() throws {
        for module in try Self.modules where module != "MulanCatalog" {
            let lines = try Self.sqlLines(module: module)
            #expect(lines.isEmpty, """
                \(module) contains SQL; move it into a store of MulanCatalog (Sources/MulanCatalog) and call the store:
                \(lines.prefix(10).joined(separator: "\n"))
                """)
        }
    }

    /// The scan finds what it is meant to: the catalog's own statements.
    @Test func theScanFindsSQL() throws {
        let lines = try Self.sqlLines(module: "MulanCatalog")
        #expect(lines.contains { $0.contains("INSERT INTO tracks") })
        #expect(lines.contains { $0.contains("SELECT") && $0.contains("FROM audio_decisions") })
    }
}
