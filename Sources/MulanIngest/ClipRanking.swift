import Foundation
import MulanCore

/// Ranks windows without a model: by loudness and non-silence.
///
/// score = level of the clip without its DC offset in dBFS (floored at −120) − 60 dB × its share of
/// digital silence (a clip ingest would call silent scores −∞ before any scorer is asked: see
/// `BestClips.offer`). So a loud window beats a quiet one, and a window that is half
/// digital silence loses 30 dB against one that is not.
public struct LoudnessScorer: ClipScorer {
    public init() {}
    public var name: String { "loudness" }

    public func score(_ samples: [Float], stats: ClipStats) -> Double {
        let ac = stats.acRMS
        let level = ac > 0 ? max(20 * log10(ac), -120) : -120
        return level - 60 * stats.silenceShare
    }
}

/// Keeps the N best-scoring clips offered, holding at most N clips (plus the one offered), and
/// gives them back in time order. Ties go to the earlier clip.
public struct BestClips {
    public let count: Int
    private let scorer: any ClipScorer
    private let settings: IngestSettings
    private var kept: [(score: Double, clip: ClipAudio)] = []

    public init(count: Int, scorer: any ClipScorer = LoudnessScorer(), settings: IngestSettings) {
        self.count = count
        self.scorer = scorer
        self.settings = settings
    }

    /// Scores `clip` and keeps it if it ranks among the best N so far. A clip ingest calls silent
    /// scores −∞ without asking the scorer (a model is not run on silence): it is kept only when
    /// there are not N audible candidates.
    public mutating func offer(_ clip: ClipAudio) {
        offered += 1
        let score = clip.stats.isSilent(settings) ? -.infinity : scorer.score(clip.samples, stats: clip.stats)
        // Clips arrive in time order, so a later clip displaces a kept one only when strictly better.
        if kept.count == count {
            guard let worst = kept.indices.min(by: { Self.worse(kept[$0], than: kept[$1]) }),
                  score > kept[worst].score else { return }
            kept.remove(at: worst)
        }
        kept.append((score, clip))
    }

    /// Whether `a` ranks below `b`: a lower score, or the same score and later.
    private static func worse(_ a: (score: Double, clip: ClipAudio), than b: (score: Double, clip: ClipAudio)) -> Bool {
        a.score != b.score ? a.score < b.score : a.clip.startSample > b.clip.startSample
    }

    /// Candidates offered so far.
    public private(set) var offered = 0

    /// The kept clips in time order.
    public var clips: [ClipAudio] { ranked.map(\.clip) }

    /// The kept clips with their scores, in time order.
    public var ranked: [(score: Double, clip: ClipAudio)] { kept.sorted { $0.clip.startSample < $1.clip.startSample } }

    /// What the track's detail says about the choice, the kept clips in time order with their
    /// scores (4 decimals): "best:2 by loudness of 6 candidates: clip 1 (-8.0618), clip 5 (-4.4370)".
    public func summary(scorer: any ClipScorer) -> String {
        let picks = ranked.map { "clip \($0.clip.index) (\(Self.format($0.score)))" }
        return "best:\(count) by \(scorer.name) of \(offered) candidate\(offered == 1 ? "" : "s"): "
            + (picks.isEmpty ? "none" : picks.joined(separator: ", "))
    }

    static func format(_ score: Double) -> String {
        score.isFinite ? String(format: "%.4f", score) : (score < 0 ? "-inf" : "+inf")
    }
}
