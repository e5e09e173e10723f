import Foundation

/// Scores a candidate window for `--clip-policy best:N`; higher is better.
///
/// The seam for a model-based score: a scorer that embeds the clip and rates it (the zero-shot
/// scorer of `mulan-ingest --clip-model`, in MulanAudioFilter) replaces `LoudnessScorer` without
/// touching the cutting or the ranking. Scores must be deterministic, since the settings key
/// promises the same clips for the same file and settings. `score` is called from every ingest
/// worker thread at once: a scorer with state must guard it itself.
public protocol ClipScorer: Sendable {
    /// A short name shown in the report and in each best:N track's detail (`loudness`).
    var name: String { get }
    /// What makes this scorer's scores what they are (model content, prompts, rule), for the
    /// settings key (ingest's `IngestSettings.clipRanking`): nil for the built-in loudness ranking, whose
    /// rule is the pipeline version's.
    var key: String? { get }
    /// The score of a candidate window as decoded (mono samples at ingest's rate, before the
    /// downmix gain) with its levels. Ingest asks only for windows it does not call silent: a silent
    /// window scores −∞ whatever the scorer (`BestClips`), so it is kept only when there are not N
    /// audible candidates.
    func score(_ samples: [Float], stats: ClipStats) -> Double
}

extension ClipScorer {
    public var key: String? { nil }
}
