import Foundation

/// What every stage's crash-state test does with the outcomes: records them (MULAN_CRASH_REPORT)
/// and returns the problems, one per violating state (the test records each as an issue), or one
/// saying that fewer states than asked for were checked.
public enum CrashJudge {
    public static func problems(_ stage: String, _ outcomes: [CrashStates.Outcome], started: Date,
                                points: Int = CrashStates.points) -> [String] {
        CrashStates.record(stage: stage, outcomes, seconds: Date().timeIntervalSince(started))
        var out: [String] = []
        let asked = points * CrashStates.Variant.allCases.count
        if outcomes.count < asked { out.append("\(stage): only \(outcomes.count) of \(asked) crash states were checked") }
        for o in outcomes where !o.violations.isEmpty {
            out.append("\(stage) \(o.point) \(o.variant.rawValue): \(o.violations.joined(separator: "; "))")
        }
        return out
    }

    /// Every `.json` file directly in `folder` parses (a published report or manifest is whole).
    public static func jsonFilesParse(_ folder: String) -> [String] {
        var v: [String] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(".json") {
            let data = FileManager.default.contents(atPath: folder + "/" + name) ?? Data()
            if (try? JSONSerialization.jsonObject(with: data)) == nil { v.append("\(name) is published but does not parse") }
        }
        return v
    }
}
