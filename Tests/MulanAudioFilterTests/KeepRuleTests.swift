import MulanAudioFilter
import MulanCore
import MulanRecords
import MulanTraining
import Testing

/// `--keep` rules: what parses, what it means, and what a bad rule says.
@Suite("audio filter rules")
struct KeepRuleTests {
    @Test(arguments: [
        ("music > speech", "music > speech"),
        ("music>speech", "music > speech"),
        ("  music   >=  speech  ", "music >= speech"),
        ("music > speech + 0.05", "music > speech + 0.05"),
        ("music > speech+.05", "music > speech + 0.05"),
        ("music > speech - 0.1", "music > speech - 0.1"),
        ("piano > others", "piano > others"),
        ("piano > others + 0.02", "piano > others + 0.02"),
        ("piano >= 0.3", "piano >= 0.3"),
        ("piano >= 3e-1", "piano >= 0.3"),
        ("rms_db > -40", "rms_db > -40"),
        ("rms_db > - 40", "rms_db > -40"),
        ("silence_share < 0.5", "silence_share < 0.5"),
        ("speech <= 0.2", "speech <= 0.2"),
    ])
    func goodRulesParseToTheirCanonicalText(rule: String, canonical: String) throws {
        let parsed = try KeepRule.parse(rule)
        #expect(parsed.description == canonical)
        // The canonical text parses to the same rule.
        #expect(try KeepRule.parse(canonical) == parsed)
    }

    @Test(arguments: [
        ("", "the rule is empty"),
        ("music", "a comparison"),
        ("music speech", "expected a comparison"),
        ("music >", "nothing to compare with"),
        ("music >> speech", "expected a name or a number"),
        ("music = speech", "unexpected \"=\""),
        ("music == speech", "unexpected \"=\""),
        ("music > speech +", "a number (the margin) must follow"),
        ("music > speech + loud", "a number (the margin) must follow"),
        ("music > speech 0.1", "expected + or - and a margin"),
        ("music > speech + 0.1 extra", "unexpected \"extra\" after the margin"),
        ("0.3 < music", "starts with a prompt name or a clip measure"),
        ("others > music", "may only appear on the right"),
        ("music > music", "compared with itself"),
        ("music > 1.2.3", "is not a number"),
        ("music > 0.3 speech", "after the threshold"),
        ("music! > speech", "unexpected \"!\""),
    ])
    func badRulesSayWhatIsWrong(rule: String, message: String) {
        do {
            _ = try KeepRule.parse(rule)
            Issue.record("\"\(rule)\" parsed")
        } catch {
            #expect(error.code == .usage)
            #expect(error.message.contains("--keep \"\(rule)\""), "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.hint != nil)
        }
    }

    @Test func namesMustBePromptsOrMeasures() throws {
        let prompts = ["piano", "guitar"]
        try KeepRule.parse("piano > guitar + 0.1").check(prompts: prompts, measures: ClipMeasures.names)
        try KeepRule.parse("rms_db > -50").check(prompts: prompts, measures: ClipMeasures.names)
        func failure(_ rule: String, _ prompts: [String]) -> String {
            do {
                try KeepRule.parse(rule).check(prompts: prompts, measures: ClipMeasures.names)
                return ""
            } catch { return error.description }
        }
        let typo = failure("pianno > guitar", prompts)
        #expect(typo.contains("\"pianno\" is neither a prompt (piano, guitar) nor a clip measure (rms_db"), "\(typo)")
        #expect(failure("rms_db > others", prompts).contains("is a clip measure"))
        #expect(failure("piano > others", ["piano"]).contains("there is no other prompt"))
        // Prompt names: unique, not reserved, names.
        func promptFailure(_ list: [Prompt]) -> String {
            do { try AudioFilterJob.validate(prompts: list, rules: []); return "" } catch { return error.description }
        }
        #expect(promptFailure([Prompt(name: "a", text: "x"), Prompt(name: "a", text: "y")]).contains("given twice"))
        #expect(promptFailure([Prompt(name: "others", text: "x")]).contains("reserved"))
        #expect(promptFailure([Prompt(name: "rms_db", text: "x")]).contains("reserved"))
        #expect(promptFailure([Prompt(name: "solo-piano", text: "x")]).contains("is not a name"))
        #expect(promptFailure([Prompt(name: "p", text: " ")]).contains("has no text"))
    }

    @Test func evaluationComparesScoresMarginsOthersAndMeasures() throws {
        let values: [String: Double] = ["piano": 0.40, "guitar": 0.30, "organ": 0.38, "rms_db": -30]
        let prompts = ["piano", "guitar", "organ"]
        func holds(_ rule: String) throws -> Bool {
            try KeepRule.parse(rule).evaluate(value: { values[$0] }, prompts: prompts).holds
        }
        #expect(try holds("piano > guitar"))
        #expect(try holds("piano > guitar + 0.05"))
        #expect(try !holds("piano > guitar + 0.15"))
        #expect(try holds("guitar > piano - 0.15"))
        #expect(try holds("piano > others"))
        #expect(try !holds("piano > others + 0.05"), "organ is within 0.05")
        #expect(try !holds("guitar > others"))
        #expect(try holds("piano >= 0.4") && !holds("piano > 0.4"))
        #expect(try holds("rms_db > -40") && !holds("rms_db < -40"))
        let outcome = try KeepRule.parse("guitar > others + 0.01").evaluate(value: { values[$0] }, prompts: prompts)
        #expect(outcome.detail == "guitar 0.300 ≤ piano 0.400 + 0.01", "\(outcome.detail)")
        // A name without a value fails the rule (and says so).
        let missing = try KeepRule.parse("piano > speech").evaluate(value: { values[$0] }, prompts: prompts)
        #expect(!missing.holds && missing.detail.contains("speech has no value"))
    }
}
