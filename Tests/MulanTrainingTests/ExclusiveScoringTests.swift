import Foundation
import MulanCore
import MulanTraining
import Testing

/// `mulan-eval --exclusive`: tags of a group scored among the group (a softmax over the group's
/// similarities at the model's temperature).
@Suite struct ExclusiveScoringTests {
    /// Each item's scores over a group are log-probabilities: their exponentials sum to 1, and a
    /// score is the similarity over τ less the log of the group's sum.
    @Test func groupScoresAreLogSoftmaxAtTheTemperature() {
        let scores: [[Float]] = [[0.30, -0.10, 0.05], [0.10, 0.20, 0.05], [0.90, 0.90, 0.90]]
        let tau: Float = 0.07
        let grouped = ZeroShotEvaluation.exclusiveScores(scores, groups: [[0, 1]], temperature: tau)
        #expect(grouped[2] == nil)
        let a = grouped[0]!, b = grouped[1]!
        for i in 0..<3 {
            #expect(abs(Foundation.exp(Double(a[i])) + Foundation.exp(Double(b[i])) - 1) < 1e-5)
            let expected = Double(scores[0][i]) / Double(tau)
                - Foundation.log(Foundation.exp(Double(scores[0][i]) / Double(tau)) + Foundation.exp(Double(scores[1][i]) / Double(tau)))
            #expect(abs(Double(a[i]) - expected) < 1e-4)
        }
    }

    /// What an item shares with every prompt of the group cancels: items whose similarities are all
    /// shifted by their own offset (their recording) rank by which prompt they are nearest.
    @Test func anItemsOwnOffsetCancelsAmongTheGroup() {
        // Items 0 and 1 are "major", 2 and 3 "minor"; items 1 and 3 sit 0.4 and 0.6 higher on both prompts,
        // so "major" alone ranks a minor item first.
        let major: [Float] = [0.20, 0.60, 0.10, 0.70]
        let minor: [Float] = [0.10, 0.50, 0.20, 0.80]
        let tags = ["major", "minor"]
        let labels: [Set<String>] = [["major"], ["major"], ["minor"], ["minor"]]
        let dim = 2
        // Audio rows are unit vectors; tag rows are chosen so the dot products are the scores above.
        var audio: [Float] = [], text: [Float] = [1, 0, 0, 1]
        for i in 0..<4 { audio += [major[i], minor[i]] }
        let plain = ZeroShotEvaluation.tagging(tags: tags, tagEmbeddings: text, audio: audio, dim: dim, labels: labels)
        #expect(plain.perTag[0].rocAUC == 0.5 && plain.perTag[0].exclusiveROCAUC == nil && plain.exclusiveGroups == nil)
        let grouped = ZeroShotEvaluation.tagging(tags: tags, tagEmbeddings: text, audio: audio, dim: dim, labels: labels,
                                                 exclusive: [[0, 1]], temperature: 0.1)
        #expect(grouped.perTag[0].rocAUC == 0.5, "the plain figures stay as they are")
        #expect(grouped.perTag[0].exclusiveROCAUC == 1 && grouped.perTag[1].exclusiveROCAUC == 1)
        #expect(grouped.perTag[0].exclusiveAveragePrecision == 1)
        #expect(grouped.exclusiveGroups == [["major", "minor"]] && grouped.exclusiveTemperature.map { abs($0 - 0.1) < 1e-6 } == true)
        #expect(grouped.macroROCAUC == plain.macroROCAUC)
    }

    @Test func groupsNameKnownTagsOnceEach() throws {
        let tags = ["piano", "guitar", "major", "minor"]
        #expect(try ZeroShotEvaluation.exclusiveGroups([["major", "minor"], ["piano", "guitar"]], tags: tags) == [[2, 3], [0, 1]])
        #expect(try ZeroShotEvaluation.exclusiveGroups([["major", "minor", "minor"]], tags: tags) == [[2, 3]])
        do {
            _ = try ZeroShotEvaluation.exclusiveGroups([["major", "happy"]], tags: tags)
            Issue.record("an unknown tag was accepted")
        } catch {
            #expect(error.message.contains("\"happy\"") && error.message.contains("not a tag"), "\(error)")
        }
        do {
            _ = try ZeroShotEvaluation.exclusiveGroups([["major", "minor"], ["minor", "piano"]], tags: tags)
            Issue.record("a tag in two groups was accepted")
        } catch {
            #expect(error.message.contains("two --exclusive groups"), "\(error)")
        }
        do {
            _ = try ZeroShotEvaluation.exclusiveGroups([["major", "major"]], tags: tags)
            Issue.record("a group of one tag was accepted")
        } catch {
            #expect(error.message.contains("fewer than two"), "\(error)")
        }
    }
}
