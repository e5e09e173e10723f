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
    /// settings key (`IngestSettings.clipRanking`): nil for the built-in loudness ranking, whose
    /// rule is the pipeline version's.
    var key: String? { get }
    /// The score of a candidate window as decoded (mono at ingest's rate, before the downmix gain).
    func score(_ clip: ClipAudio, settings: IngestSettings) -> Double
}

extension ClipScorer {
    public var key: String? { nil }
}
