import Foundation
import MulanCore

/// A parsed TOML value. Dates and times are not supported (mulan's configuration has none).
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table([String: TOMLValue])

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var int: Int? { if case .integer(let i) = self { i } else { nil } }
    public var double: Double? {
        switch self {
        case .float(let d): d
        case .integer(let i): Double(i)
        default: nil
        }
    }
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var array: [TOMLValue]? { if case .array(let a) = self { a } else { nil } }
    public var table: [String: TOMLValue]? { if case .table(let t) = self { t } else { nil } }
    public subscript(key: String) -> TOMLValue? { table?[key] }

    /// The value as JSON text with sorted keys (for hashing configurations and for tests).
    public var json: String {
        switch self {
        case .string(let s): JSONText.quote(s)
        case .integer(let i): String(i)
        case .float(let d): d.isFinite ? "\(d)" : (d.isNaN ? "\"nan\"" : (d > 0 ? "\"inf\"" : "\"-inf\""))
        case .bool(let b): b ? "true" : "false"
        case .array(let a): "[" + a.map(\.json).joined(separator: ",") + "]"
        case .table(let t): "{" + t.keys.sorted().map { JSONText.quote($0) + ":" + t[$0]!.json }.joined(separator: ",") + "}"
        }
    }
}


/// Minimal JSON string quoting.
public enum JSONText {
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// A TOML parser for configuration files: tables, arrays of tables (with sub-tables per element),
/// bare, quoted and dotted keys, basic and literal strings (single- and multi-line), integers
/// (decimal, hex, octal, binary, underscores), floats (including inf and nan), booleans, arrays and
/// inline tables; a table is defined once (by a header, or implicitly by dotted keys), and inline
/// tables and arrays are complete as written (no header or dotted key extends them). Dates and times
/// are refused with a clear error. Errors name the line. What this covers is tested against
/// Python's `tomllib` document by document (Tests/MulanCoreTests/TOMLTests.swift); it is not a
/// full TOML 1.0 implementation (no dates, times or offsets).
public struct TOMLParser {
    private var s: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    private let source: String
    /// Arrays and inline tables open around the value being parsed.
    private var depth = 0
    /// Nesting of arrays and inline tables, and parts of a dotted key, allowed: the parser and the
    /// table walk recurse once per level, so a hostile file (`a = [[[[…`) must not reach the stack's end.
    public static let maxDepth = 128

    public static func parse(_ text: String, source: String = "TOML") throws(MulanError) -> [String: TOMLValue] {
        var p = TOMLParser(s: Array(text.unicodeScalars), source: source)
        return try p.document()
    }

    private init(s: [Unicode.Scalar], source: String) {
        self.s = s
        self.source = source
    }

    private func error(_ message: String) -> MulanError {
        MulanError(.usage, message, location: SourceLocation(file: source, line: line),
                   hint: "fix the TOML (see https://toml.io) and run again")
    }

    private var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }
    private func peek(_ k: Int) -> Unicode.Scalar? { i + k < s.count ? s[i + k] : nil }

    private mutating func advance() -> Unicode.Scalar? {
        guard i < s.count else { return nil }
        let c = s[i]
        i += 1
        if c == "\n" { line += 1 }
        return c
    }

    private mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { i += 1 } }

    private mutating func skipComment() {
        if peek == "#" { while let c = peek, c != "\n" { i += 1 } }
    }

    /// Spaces, comments and newlines (inside arrays).
    private mutating func skipBlank() {
        while let c = peek {
            if c == " " || c == "\t" || c == "\r" { i += 1 } else if c == "\n" { _ = advance() } else if c == "#" { skipComment() } else { break }
        }
    }

    private mutating func endOfLine() throws(MulanError) {
        skipSpaces()
        skipComment()
        if peek == "\r" { i += 1 }
        if let c = peek {
            guard c == "\n" else { throw error("unexpected \"\(c)\" after a value") }
            _ = advance()
        }
    }

    // MARK: Document

    private mutating func document() throws(MulanError) -> [String: TOMLValue] {
        var root: [String: TOMLValue] = [:]
        var current: [String] = []
        // Tables defined by a header or by dotted keys, and keys given a value (inline tables and
        // arrays included), as paths joined by NUL; a new element of an array of tables starts
        // afresh below its path.
        var defined: Set<String> = []
        var values: Set<String> = []
        func joined(_ path: some Collection<String>) -> String { path.joined(separator: "\u{0}") }
        func valuePrefix(_ path: [String], includingFull: Bool) -> [String]? {
            let end = includingFull ? path.count : path.count - 1
            guard end >= 1 else { return nil }
            return (1...end).lazy.map { Array(path[..<$0]) }.first { values.contains(joined($0)) }
        }
        while true {
            skipBlank()
            guard let c = peek else { break }
            if c == "[" {
                let isArray = peek(1) == "["
                i += isArray ? 2 : 1
                skipSpaces()
                let path = try key()
                skipSpaces()
                guard advance() == "]", !isArray || advance() == "]" else {
                    throw error("a table header must end with \(isArray ? "]]" : "]")")
                }
                try endOfLine()
                let name = joined(path)
                if let owner = valuePrefix(path, includingFull: true) {
                    throw error("[\(isArray ? "[" : "")\(path.joined(separator: "."))\(isArray ? "]" : "")] would extend "
                                + "\(owner.joined(separator: ".")), which is given as a value (an inline table or array is complete as written)")
                }
                if isArray {
                    try appendTable(&root, path)
                    defined = defined.filter { !$0.hasPrefix(name + "\u{0}") }
                    values = values.filter { !$0.hasPrefix(name + "\u{0}") }
                } else {
                    if defined.contains(name) { throw error("table [\(path.joined(separator: "."))] is defined twice") }
                    defined.insert(name)
                    try ensureTable(&root, path)
                }
                current = path
                continue
            }
            let path = try key()
            skipSpaces()
            guard advance() == "=" else { throw error("expected = after key \(path.joined(separator: "."))") }
            skipSpaces()
            let v = try value()
            try endOfLine()
            let full = current + path
            if let owner = valuePrefix(full, includingFull: false) {
                throw error("key \(full.joined(separator: ".")) would extend \(owner.joined(separator: ".")), which is given as a value "
                            + "(an inline table or array is complete as written)")
            }
            // Dotted keys define their tables: a later [header] may not define them again.
            for j in stride(from: current.count + 1, to: full.count, by: 1) {
                if defined.contains(joined(full[..<j])) == false, values.contains(joined(full[..<j])) == false {
                    defined.insert(joined(full[..<j]))
                }
            }
            try insert(&root, current, path, v)
            values.insert(joined(full))
        }
        return root
    }

    /// Resolves `path` to a table for [header], creating tables on the way (the last element of an
    /// array of tables when the path passes one).
    private func ensureTable(_ root: inout [String: TOMLValue], _ path: [String]) throws(MulanError) {
        try modify(&root, path[...]) { (v: inout TOMLValue?) throws(MulanError) in
            if v == nil { v = .table([:]) }
            guard case .table = v! else { throw error("\(path.joined(separator: ".")) is already a value, not a table") }
        }
    }

    private func appendTable(_ root: inout [String: TOMLValue], _ path: [String]) throws(MulanError) {
        try modify(&root, path[...]) { (v: inout TOMLValue?) throws(MulanError) in
            if v == nil { v = .array([]) }
            guard case .array(var a) = v! else { throw error("\(path.joined(separator: ".")) is not an array of tables") }
            a.append(.table([:]))
            v = .array(a)
        }
    }

    private func insert(_ root: inout [String: TOMLValue], _ table: [String], _ key: [String], _ value: TOMLValue) throws(MulanError) {
        let full = table + key
        try modify(&root, full[...]) { (v: inout TOMLValue?) throws(MulanError) in
            if v != nil { throw error("key \(full.joined(separator: ".")) is defined twice") }
            v = value
        }
    }

    /// Walks `path` through nested tables (entering the last table of arrays of tables) and lets
    /// `body` change the value at its end.
    private func modify(_ table: inout [String: TOMLValue], _ path: ArraySlice<String>,
                        _ body: (inout TOMLValue?) throws(MulanError) -> Void) throws(MulanError) {
        guard let head = path.first else { return }
        if path.count == 1 {
            var v = table[head]
            try body(&v)
            table[head] = v
            return
        }
        var child = table[head] ?? .table([:])
        switch child {
        case .table(var t):
            try modify(&t, path.dropFirst(), body)
            child = .table(t)
        case .array(var a):
            guard case .table(var t)? = a.last else { throw error("\(head) is not a table") }
            try modify(&t, path.dropFirst(), body)
            a[a.count - 1] = .table(t)
            child = .array(a)
        default:
            throw error("\(head) is a value, not a table")
        }
        table[head] = child
    }

    // MARK: Keys

    private mutating func key() throws(MulanError) -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = peek else { throw error("expected a key") }
            if c == "\"" {
                _ = advance()
                parts.append(try basicString())
            } else if c == "'" {
                _ = advance()
                parts.append(try literalString())
            } else {
                var k = String.UnicodeScalarView()
                while let c = peek, c.properties.isASCIIHexDigit || ("a"..."z").contains(c) || ("A"..."Z").contains(c)
                        || c == "_" || c == "-" {
                    k.append(c)
                    i += 1
                }
                if k.isEmpty { throw error("expected a key, found \"\(c)\"") }
                parts.append(String(k))
            }
            if parts.count > Self.maxDepth { throw error("a key has more than \(Self.maxDepth) dotted parts") }
            skipSpaces()
            if peek == "." { i += 1; continue }
            return parts
        }
    }

    // MARK: Values

    private mutating func value() throws(MulanError) -> TOMLValue {
        guard let c = peek else { throw error("expected a value") }
        if c == "[" || c == "{" {
            if depth >= Self.maxDepth {
                throw error("arrays and inline tables nest more than \(Self.maxDepth) deep")
            }
            depth += 1
        }
        defer { if c == "[" || c == "{" { depth -= 1 } }
        switch c {
        case "\"":
            if peek(1) == "\"" && peek(2) == "\"" { i += 3; return .string(try multilineBasic()) }
            i += 1
            return .string(try basicString())
        case "'":
            if peek(1) == "'" && peek(2) == "'" { i += 3; return .string(try multilineLiteral()) }
            i += 1
            return .string(try literalString())
        case "[":
            i += 1
            var items: [TOMLValue] = []
            while true {
                skipBlank()
                if peek == "]" { i += 1; return .array(items) }
                items.append(try value())
                skipBlank()
                if peek == "," { i += 1; continue }
                guard advance() == "]" else { throw error("expected , or ] in an array") }
                return .array(items)
            }
        case "{":
            i += 1
            var t: [String: TOMLValue] = [:]
            skipSpaces()
            if peek == "}" { i += 1; return .table(t) }
            while true {
                let k = try key()
                skipSpaces()
                guard advance() == "=" else { throw error("expected = in an inline table") }
                skipSpaces()
                // A dotted key nests tables too: count its parts against the same limit.
                if depth + k.count - 1 > Self.maxDepth {
                    throw error("arrays and inline tables nest more than \(Self.maxDepth) deep")
                }
                depth += k.count - 1
                let v = try value()
                depth -= k.count - 1
                try modify(&t, k[...]) { (slot: inout TOMLValue?) throws(MulanError) in
                    if slot != nil { throw error("key \(k.joined(separator: ".")) is defined twice") }
                    slot = v
                }
                skipSpaces()
                if peek == "," { i += 1; skipSpaces(); continue }
                guard advance() == "}" else { throw error("expected , or } in an inline table") }
                return .table(t)
            }
        case "t", "f":
            if match("true") { return .bool(true) }
            if match("false") { return .bool(false) }
            throw error("unknown value")
        default:
            return try number()
        }
    }

    private mutating func match(_ word: String) -> Bool {
        let w = Array(word.unicodeScalars)
        guard i + w.count <= s.count, Array(s[i..<(i + w.count)]) == w else { return false }
        i += w.count
        return true
    }

    private mutating func number() throws(MulanError) -> TOMLValue {
        var text = String.UnicodeScalarView()
        while let c = peek, !(c == "," || c == "]" || c == "}" || c == " " || c == "\t" || c == "\n" || c == "\r" || c == "#") {
            text.append(c)
            i += 1
        }
        let raw = String(text)
        if raw.isEmpty { throw error("expected a value") }
        if raw.contains(":") || (raw.count >= 10 && raw.dropFirst(4).first == "-" && raw.first?.isNumber == true) {
            throw error("dates and times are not supported in this file: quote \(raw) as a string")
        }
        let clean = raw.replacingOccurrences(of: "_", with: "")
        if raw.contains("__") || raw.hasPrefix("_") || raw.hasSuffix("_") { throw error("bad number \(raw)") }
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where clean.hasPrefix(prefix) {
            guard let v = Int(clean.dropFirst(2), radix: radix) else { throw error("bad number \(raw)") }
            return .integer(v)
        }
        let body = clean.hasPrefix("+") || clean.hasPrefix("-") ? clean.dropFirst() : Substring(clean)
        let negative = clean.hasPrefix("-")
        if body == "inf" { return .float(negative ? -.infinity : .infinity) }
        if body == "nan" { return .float(.nan) }
        if body.count > 1 && body.first == "0" && body.dropFirst().first?.isNumber == true {
            throw error("leading zeros are not allowed: \(raw)")
        }
        if !clean.contains(".") && !clean.lowercased().contains("e"), let v = Int(clean) { return .integer(v) }
        if let v = Double(clean), body.first?.isNumber == true, !body.hasSuffix("."), !body.contains(".e"),
           !body.hasPrefix(".") { return .float(v) }
        throw error("bad value \(raw)")
    }

    private mutating func escape() throws(MulanError) -> Unicode.Scalar {
        guard let e = advance() else { throw error("unfinished escape") }
        switch e {
        case "b": return "\u{8}"
        case "t": return "\t"
        case "n": return "\n"
        case "f": return "\u{C}"
        case "r": return "\r"
        case "\"": return "\""
        case "\\": return "\\"
        case "u", "U":
            let n = e == "u" ? 4 : 8
            var hex = ""
            for _ in 0..<n { guard let h = advance() else { throw error("unfinished \\\(e) escape") }; hex.unicodeScalars.append(h) }
            guard let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) else { throw error("bad escape \\\(e)\(hex)") }
            return scalar
        default:
            throw error("unknown escape \\\(e)")
        }
    }

    private mutating func basicString() throws(MulanError) -> String {
        var out = String.UnicodeScalarView()
        while true {
            guard let c = advance() else { throw error("unterminated string") }
            if c == "\"" { return String(out) }
            if c == "\n" { throw error("newline in a single-line string") }
            out.append(c == "\\" ? try escape() : c)
        }
    }

    private mutating func literalString() throws(MulanError) -> String {
        var out = String.UnicodeScalarView()
        while true {
            guard let c = advance() else { throw error("unterminated string") }
            if c == "'" { return String(out) }
            if c == "\n" { throw error("newline in a single-line string") }
            out.append(c)
        }
    }

    private mutating func multilineBasic() throws(MulanError) -> String {
        if peek == "\n" { _ = advance() } else if peek == "\r" && peek(1) == "\n" { i += 1; _ = advance() }
        var out = String.UnicodeScalarView()
        while true {
            guard let c = advance() else { throw error("unterminated multi-line string") }
            if c == "\"" && peek == "\"" && peek(1) == "\"" {
                i += 2
                // Up to two more quotes may belong to the content.
                while peek == "\"" && out.count >= 0 { out.append("\""); i += 1 }
                return String(out)
            }
            if c == "\\" {
                // A backslash at the end of a line trims the newline and following whitespace.
                var j = i
                while j < s.count && (s[j] == " " || s[j] == "\t") { j += 1 }
                if j < s.count && (s[j] == "\n" || s[j] == "\r") {
                    i = j
                    while let w = peek, w == " " || w == "\t" || w == "\n" || w == "\r" { _ = advance() }
                    continue
                }
                out.append(try escape())
            } else {
                out.append(c)
            }
        }
    }

    private mutating func multilineLiteral() throws(MulanError) -> String {
        if peek == "\n" { _ = advance() } else if peek == "\r" && peek(1) == "\n" { i += 1; _ = advance() }
        var out = String.UnicodeScalarView()
        while true {
            guard let c = advance() else { throw error("unterminated multi-line string") }
            if c == "'" && peek == "'" && peek(1) == "'" {
                i += 2
                while peek == "'" { out.append("'"); i += 1 }
                return String(out)
            }
            out.append(c)
        }
    }
}
