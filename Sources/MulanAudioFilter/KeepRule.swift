import Foundation
import MulanCore

/// One `--keep` rule of `mulan-filter audio`: a clip is kept when every rule holds.
///
/// Grammar: `NAME OP RIGHT`, where `NAME` is a prompt name or a clip measure (`ClipMeasures`),
/// `OP` one of `>`, `>=`, `<`, `<=`, and `RIGHT` a number (a threshold: `piano >= 0.3`), or a
/// name with an optional margin (`piano > guitar`, `music > speech + 0.05`), or `others`: the
/// highest score of every other prompt (`piano > others`: piano is the best-matching prompt).
/// Names are letters, digits and `_` (not starting with a digit), so `-` is always a minus.
public struct KeepRule: Sendable, Hashable, CustomStringConvertible {
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case greater = ">", greaterOrEqual = ">=", less = "<", lessOrEqual = "<="

        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .greater: a > b
            case .greaterOrEqual: a >= b
            case .less: a < b
            case .lessOrEqual: a <= b
            }
        }

        /// The comparison that failed, for a reason's detail ("0.21 ≤ 0.30").
        var negated: String {
            switch self {
            case .greater: "≤"
            case .greaterOrEqual: "<"
            case .less: "≥"
            case .lessOrEqual: ">"
            }
        }
    }

    public enum Right: Sendable, Hashable {
        case number(Double)
        case name(String, margin: Double)
        case others(margin: Double)
    }

    /// The name `others` stands for on the right of a rule.
    public static let othersName = "others"

    public var left: String
    public var comparison: Comparison
    public var right: Right

    public init(left: String, comparison: Comparison, right: Right) {
        self.left = left
        self.comparison = comparison
        self.right = right
    }

    /// The canonical text: the version hash and the decisions' reasons use it, so spacing and
    /// number spelling do not make a new version.
    public var description: String {
        func margin(_ m: Double) -> String {
            m == 0 ? "" : (m > 0 ? " + " : " - ") + Self.number(abs(m))
        }
        let rhs: String
        switch right {
        case .number(let v): rhs = Self.number(v)
        case .name(let n, let m): rhs = n + margin(m)
        case .others(let m): rhs = Self.othersName + margin(m)
        }
        return "\(left) \(comparison.rawValue) \(rhs)"
    }

    /// The names a rule reads (`others` excluded).
    public var names: [String] {
        if case .name(let n, _) = right { return [left, n] }
        return [left]
    }

    static func number(_ v: Double) -> String {
        var s = String(format: "%.6g", v)
        if s == "-0" { s = "0" }
        return s
    }
}

// MARK: Parsing

extension KeepRule {
    private enum Token: Equatable {
        case name(String)
        case number(Double)
        case comparison(Comparison)
        case plus, minus
    }

    /// Parses one rule; the error names the rule, what is wrong, where, and what to write instead.
    public static func parse(_ text: String) throws(MulanError) -> KeepRule {
        let tokens = try tokenize(text)
        func fail(_ what: String) -> MulanError {
            MulanError(.usage, "--keep \"\(text)\": \(what)",
                       hint: "write NAME OP NAME [+|- MARGIN] or NAME OP NUMBER, e.g. \"music > speech\", "
                           + "\"music > speech + 0.05\", \"piano > others\", \"piano >= 0.3\", \"rms_db > -40\"")
        }
        guard !tokens.isEmpty else { throw fail("the rule is empty") }
        guard case .name(let left) = tokens[0] else {
            throw fail("a rule starts with a prompt name or a clip measure, not \(describe(tokens[0]))")
        }
        if left == othersName { throw fail("\"others\" stands for the other prompts and may only appear on the right") }
        guard tokens.count > 1 else { throw fail("a comparison (>, >=, <, <=) must follow \"\(left)\"") }
        guard case .comparison(let comparison) = tokens[1] else {
            throw fail("expected a comparison (>, >=, <, <=) after \"\(left)\", found \(describe(tokens[1]))")
        }
        guard tokens.count > 2 else { throw fail("nothing to compare with after \"\(comparison.rawValue)\"") }
        var rest = Array(tokens[2...])
        // A leading sign belongs to a number: "rms_db > -40".
        if rest.count == 2, rest[0] == .minus || rest[0] == .plus, case .number(let v) = rest[1] {
            rest = [.number(rest[0] == .minus ? -v : v)]
        }
        switch rest[0] {
        case .number(let v):
            guard rest.count == 1 else { throw fail("unexpected \(describe(rest[1])) after the threshold \(number(v))") }
            return KeepRule(left: left, comparison: comparison, right: .number(v))
        case .name(let name):
            var margin = 0.0
            if rest.count > 1 {
                guard rest[1] == .plus || rest[1] == .minus else {
                    throw fail("expected + or - and a margin after \"\(name)\", found \(describe(rest[1]))")
                }
                guard rest.count > 2, case .number(let m) = rest[2] else {
                    throw fail("a number (the margin) must follow \"\(rest[1] == .plus ? "+" : "-")\"")
                }
                guard rest.count == 3 else { throw fail("unexpected \(describe(rest[3])) after the margin") }
                margin = rest[1] == .plus ? m : -m
            }
            if name == left { throw fail("\"\(left)\" is compared with itself") }
            return KeepRule(left: left, comparison: comparison,
                            right: name == othersName ? .others(margin: margin) : .name(name, margin: margin))
        default:
            throw fail("expected a name or a number after \"\(comparison.rawValue)\", found \(describe(rest[0]))")
        }
    }

    private static func describe(_ t: Token) -> String {
        switch t {
        case .name(let n): "\"\(n)\""
        case .number(let v): "the number \(number(v))"
        case .comparison(let c): "\"\(c.rawValue)\""
        case .plus: "\"+\""
        case .minus: "\"-\""
        }
    }

    private static func tokenize(_ text: String) throws(MulanError) -> [Token] {
        let chars = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        func isNameStart(_ c: Unicode.Scalar) -> Bool { c == "_" || c.properties.isAlphabetic }
        func isNamePart(_ c: Unicode.Scalar) -> Bool { isNameStart(c) || ("0"..."9").contains(c) }
        func isNumberPart(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) || c == "." }
        while i < chars.count {
            let c = chars[i]
            if c.properties.isWhitespace { i += 1; continue }
            if isNameStart(c) {
                var j = i
                while j < chars.count, isNamePart(chars[j]) { j += 1 }
                tokens.append(.name(String(String.UnicodeScalarView(chars[i..<j]))))
                i = j
            } else if isNumberPart(c) {
                var j = i
                while j < chars.count, isNumberPart(chars[j]) { j += 1 }
                // An exponent: 1e-3.
                if j < chars.count, chars[j] == "e" || chars[j] == "E" {
                    var k = j + 1
                    if k < chars.count, chars[k] == "-" || chars[k] == "+" { k += 1 }
                    if k < chars.count, ("0"..."9").contains(chars[k]) {
                        while k < chars.count, ("0"..."9").contains(chars[k]) { k += 1 }
                        j = k
                    }
                }
                let literal = String(String.UnicodeScalarView(chars[i..<j]))
                guard let v = Double(literal), v.isFinite else {
                    throw MulanError(.usage, "--keep \"\(text)\": \"\(literal)\" at character \(i + 1) is not a number",
                                     hint: "write numbers as 0.05, -40 or 1e-3")
                }
                tokens.append(.number(v))
                i = j
            } else if c == ">" || c == "<" {
                let orEqual = i + 1 < chars.count && chars[i + 1] == "="
                tokens.append(.comparison(c == ">" ? (orEqual ? .greaterOrEqual : .greater) : (orEqual ? .lessOrEqual : .less)))
                i += orEqual ? 2 : 1
            } else if c == "+" || c == "-" {
                tokens.append(c == "+" ? .plus : .minus)
                i += 1
            } else {
                let what = c == "=" ? "\"=\" (write >= or <=; equality of scores is not a useful rule)" : "\"\(c)\""
                throw MulanError(.usage, "--keep \"\(text)\": unexpected \(what) at character \(i + 1)",
                                 hint: "names are letters, digits and _; comparisons are >, >=, <, <=")
            }
        }
        return tokens
    }
}

// MARK: Checking and evaluating

extension KeepRule {
    /// Checks that every name is a prompt or a measure, and that `others` has prompts to compare
    /// with; the error lists what the names may be.
    public func check(prompts: [String], measures: [String]) throws(MulanError) {
        for name in names where !prompts.contains(name) && !measures.contains(name) {
            throw MulanError(.usage, "--keep \"\(self)\": \"\(name)\" is neither a prompt (\(prompts.joined(separator: ", "))) "
                             + "nor a clip measure (\(measures.joined(separator: ", ")))",
                             hint: "add --prompt \(name)=TEXT, or fix the name")
        }
        if case .others = right {
            guard prompts.contains(left) else {
                throw MulanError(.usage, "--keep \"\(self)\": \"others\" compares a prompt with the other prompts, "
                                 + "but \"\(left)\" is a clip measure", hint: "put a prompt name on the left")
            }
            guard prompts.count > 1 else {
                throw MulanError(.usage, "--keep \"\(self)\": there is no other prompt", hint: "add another --prompt NAME=TEXT")
            }
        }
    }

    /// The outcome of a rule on one clip: whether it holds and, when not, why in numbers.
    public struct Outcome: Sendable {
        public var holds: Bool
        /// "piano 0.212 ≤ guitar 0.301 + 0.05"
        public var detail: String
    }

    /// Evaluates the rule; `value` gives a name's value (a prompt's score or a clip measure),
    /// `prompts` the prompt names for `others`. A name without a value fails the rule.
    public func evaluate(value: (String) -> Double?, prompts: [String]) -> Outcome {
        func fmt(_ v: Double) -> String { String(format: "%.3f", v) }
        guard let a = value(left) else { return Outcome(holds: false, detail: "\(left) has no value") }
        let b: Double, label: String
        switch right {
        case .number(let v):
            b = v
            label = Self.number(v)
        case .name(let n, let m):
            guard let v = value(n) else { return Outcome(holds: false, detail: "\(n) has no value") }
            b = v + m
            label = "\(n) \(fmt(v))" + (m == 0 ? "" : (m > 0 ? " + " : " - ") + Self.number(abs(m)))
        case .others(let m):
            var best: (name: String, value: Double)?
            for p in prompts where p != left {
                if let v = value(p), best == nil || v > best!.value { best = (p, v) }
            }
            guard let best else { return Outcome(holds: false, detail: "no other prompt has a value") }
            b = best.value + m
            label = "\(best.name) \(fmt(best.value))" + (m == 0 ? "" : (m > 0 ? " + " : " - ") + Self.number(abs(m)))
        }
        let holds = comparison.holds(a, b)
        return Outcome(holds: holds, detail: "\(left) \(fmt(a)) \(holds ? comparison.rawValue : comparison.negated) \(label)")
    }
}
