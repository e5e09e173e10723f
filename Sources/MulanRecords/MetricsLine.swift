import Foundation

/// One line of a run's `metrics.jsonl`, the one type its writer (`Trainer`) and its readers
/// (`mulan-report`; `mulan_torch.train` writes the same keys) share. A training step's line has no
/// `split` and carries the step's loss, temperature, batch size, rate, learning rate, gradient norm
/// and examples per source; an evaluation's line names its split (`valid`, `test`) and carries the
/// evaluation's loss (null with fewer than 3 clips), retrieval figures both ways and, when the split
/// has tags to score, zero-shot tagging.
public struct MetricsLine: Codable, Sendable, Equatable {
    public var step: Int
    public var split: String?
    public var loss: Double?
    public var temperature: Double?
    public var batchSize: Int?
    public var examplesPerSecond: Double?
    // A training step's.
    public var learningRate: Double?
    public var gradientNorm: Double?
    public var sources: [String: Int]?
    // An evaluation's.
    public var clips: Int?
    public var t2aRecallAt1: Double?
    public var t2aRecallAt5: Double?
    public var t2aRecallAt10: Double?
    public var t2aMedianRank: Double?
    public var a2tRecallAt1: Double?
    public var a2tRecallAt5: Double?
    public var a2tRecallAt10: Double?
    public var a2tMedianRank: Double?
    public var taggingROCAUC: Double?
    public var taggingMAP: Double?
    public var taggingTags: Int?

    enum CodingKeys: String, CodingKey {
        case step, split, loss, temperature, batchSize = "batch_size", examplesPerSecond = "examples_per_second"
        case learningRate = "learning_rate", gradientNorm = "gradient_norm", sources, clips
        case t2aRecallAt1 = "t2a_recall_at_1", t2aRecallAt5 = "t2a_recall_at_5", t2aRecallAt10 = "t2a_recall_at_10"
        case t2aMedianRank = "t2a_median_rank"
        case a2tRecallAt1 = "a2t_recall_at_1", a2tRecallAt5 = "a2t_recall_at_5", a2tRecallAt10 = "a2t_recall_at_10"
        case a2tMedianRank = "a2t_median_rank"
        case taggingROCAUC = "tagging_roc_auc", taggingMAP = "tagging_map", taggingTags = "tagging_tags"
    }

    public init(step: Int, split: String? = nil) {
        self.step = step
        self.split = split
    }

    /// A training step's line.
    public static func training(step: Int, loss: Double, temperature: Double, batchSize: Int, examplesPerSecond: Double,
                                learningRate: Double, gradientNorm: Double, sources: [String: Int]) -> MetricsLine {
        var line = MetricsLine(step: step)
        line.loss = loss
        line.temperature = temperature
        line.batchSize = batchSize
        line.examplesPerSecond = examplesPerSecond
        line.learningRate = learningRate
        line.gradientNorm = gradientNorm
        line.sources = sources
        return line
    }

    /// An evaluation's line.
    public static func evaluation(_ r: EvaluationResult, step: Int, temperature: Double, batchSize: Int,
                                  examplesPerSecond: Double) -> MetricsLine {
        var line = MetricsLine(step: step, split: r.split)
        line.loss = r.loss
        line.temperature = temperature
        line.batchSize = batchSize
        line.clips = r.clips
        line.t2aRecallAt1 = r.textToAudio.recallAt1
        line.t2aRecallAt5 = r.textToAudio.recallAt5
        line.t2aRecallAt10 = r.textToAudio.recallAt10
        line.t2aMedianRank = r.textToAudio.medianRank
        line.a2tRecallAt1 = r.audioToText.recallAt1
        line.a2tRecallAt5 = r.audioToText.recallAt5
        line.a2tRecallAt10 = r.audioToText.recallAt10
        line.a2tMedianRank = r.audioToText.medianRank
        line.examplesPerSecond = examplesPerSecond
        line.taggingROCAUC = r.tagging?.rocAUC
        line.taggingMAP = r.tagging?.meanAveragePrecision
        line.taggingTags = r.tagging?.tags
        return line
    }

    /// Absent values are left out, except an evaluation's loss, written as null (as it always was).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(step, forKey: .step)
        try c.encodeIfPresent(split, forKey: .split)
        if split != nil && loss == nil { try c.encodeNil(forKey: .loss) } else { try c.encodeIfPresent(loss, forKey: .loss) }
        try c.encodeIfPresent(temperature, forKey: .temperature)
        try c.encodeIfPresent(batchSize, forKey: .batchSize)
        try c.encodeIfPresent(examplesPerSecond, forKey: .examplesPerSecond)
        try c.encodeIfPresent(learningRate, forKey: .learningRate)
        try c.encodeIfPresent(gradientNorm, forKey: .gradientNorm)
        try c.encodeIfPresent(sources, forKey: .sources)
        try c.encodeIfPresent(clips, forKey: .clips)
        try c.encodeIfPresent(t2aRecallAt1, forKey: .t2aRecallAt1)
        try c.encodeIfPresent(t2aRecallAt5, forKey: .t2aRecallAt5)
        try c.encodeIfPresent(t2aRecallAt10, forKey: .t2aRecallAt10)
        try c.encodeIfPresent(t2aMedianRank, forKey: .t2aMedianRank)
        try c.encodeIfPresent(a2tRecallAt1, forKey: .a2tRecallAt1)
        try c.encodeIfPresent(a2tRecallAt5, forKey: .a2tRecallAt5)
        try c.encodeIfPresent(a2tRecallAt10, forKey: .a2tRecallAt10)
        try c.encodeIfPresent(a2tMedianRank, forKey: .a2tMedianRank)
        try c.encodeIfPresent(taggingROCAUC, forKey: .taggingROCAUC)
        try c.encodeIfPresent(taggingMAP, forKey: .taggingMAP)
        try c.encodeIfPresent(taggingTags, forKey: .taggingTags)
    }

    /// One line of text (sorted keys, no newline).
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    /// A line read back; nil for text that is not such an object (e.g. a line cut short by a kill).
    public static func parse(_ bytes: some Sequence<UInt8>) -> MetricsLine? {
        try? JSONDecoder().decode(MetricsLine.self, from: Data(bytes))
    }
}
