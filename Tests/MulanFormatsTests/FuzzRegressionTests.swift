import Foundation
import MulanCore
import MulanFormats
import Testing

/// Inputs that crash the TOML reader of `mulan-filter --config` (docs/reliability.md, libFuzzer
/// harness fuzz/Sources/fuzz-toml), each with the outcome the fix gives.
@Suite("FuzzRegression: TOML nesting")
struct TOMLFuzzRegressionTests {
    /// The error message of parsing `text` (nil when it parses).
    static func failure(_ text: String) -> String? {
        do {
            _ = try TOMLParser.parse(text, source: "hostile.toml")
            return nil
        } catch {
            return error.message
        }
    }

    /// `a = [[[[…]]]]` 200,000 deep: the parser recursed once per bracket and overflowed the stack
    /// (AddressSanitizer: stack-overflow in TOMLParser.value, fuzz-toml on a 400 KB input). Now a
    /// clear error at 129 levels.
    @Test func deeplyNestedArraysAreAnError() {
        let n = 200_000
        let text = "a = " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + "\n"
        #expect(Self.failure(text) == "arrays and inline tables nest more than 128 deep")
    }

    /// The same with inline tables (`a = {b={b={…}}}`), which also overflowed the stack.
    @Test func deeplyNestedInlineTablesAreAnError() {
        let n = 100_000
        let text = "a = " + String(repeating: "{b=", count: n) + "1" + String(repeating: "}", count: n) + "\n"
        #expect(Self.failure(text) == "arrays and inline tables nest more than 128 deep")
    }

    /// Dotted keys nest tables as well: a key of 100,000 parts (the table walk recursed once per
    /// part), and dotted keys inside nested inline tables (which multiplied the depth).
    @Test func longDottedKeysAreAnError() {
        let parts = Array(repeating: "k", count: 100_000).joined(separator: ".")
        #expect(Self.failure(parts + " = 1\n") == "a key has more than 128 dotted parts")
        #expect(Self.failure("[" + parts + "]\n") == "a key has more than 128 dotted parts")
        let dotted = Array(repeating: "k", count: 100).joined(separator: ".")
        let inline = "a = " + String(repeating: "{\(dotted) = ", count: 100) + "1" + String(repeating: "}", count: 100)
        #expect(Self.failure(inline + "\n") == "arrays and inline tables nest more than 128 deep")
    }

    /// Up to the limit, nesting parses as before.
    @Test func nestingUpToTheLimitParses() throws {
        let n = TOMLParser.maxDepth
        let arrays = "a = " + String(repeating: "[", count: n) + "1" + String(repeating: "]", count: n) + "\n"
        var value = try #require(try TOMLParser.parse(arrays)["a"])
        for _ in 0..<(n - 1) { value = try #require(value.array?.first) }
        #expect(value.array == [.integer(1)])
        let key = Array(repeating: "k", count: n).joined(separator: ".")
        #expect(try TOMLParser.parse(key + " = 2\n").count == 1)
    }
}
