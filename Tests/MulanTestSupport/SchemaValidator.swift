import Foundation

/// Validates JSON documents against the repo's schemas with Python's `jsonschema` (the
/// reference implementation), from the venv `make test` prepares.
public enum SchemaValidator {
    public static var python: String {
        if let p = ProcessInfo.processInfo.environment["MULAN_TEST_PYTHON"], !p.isEmpty { return p }
        return TestPaths.packageRoot + "/.venv/bin/python"
    }

    /// One verdict per document: nil when valid, else the first error message.
    public static func validate(_ documents: [String], schema: String) throws -> [String?] {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestFailure("no Python with jsonschema at \(python): run `make test` (it prepares .venv)")
        }
        let dir = TempDir("schema")
        let input = try dir.write("docs.jsonl", documents.joined(separator: "\n") + "\n")
        let r = try TestProcess.run("/bin/sh", ["-c", "\"$0\" \"$1\" \"$2\" < \"$3\"", python,
                                                TestPaths.packageRoot + "/Tests/tools/validate_json.py",
                                                TestPaths.packageRoot + "/schemas/" + schema, input])
        if r.status != 0 { throw TestFailure("schema validation failed to run: \(r.stderr)") }
        let lines = r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        guard lines.count == documents.count else { throw TestFailure("validator printed \(lines.count) lines") }
        return lines.map { $0 == "ok" ? nil : String($0) }
    }
}
