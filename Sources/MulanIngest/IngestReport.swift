import Foundation
import MulanCore

/// The machine-readable summary of an ingest run (`--report FILE`; schemas/ingest-report.schema.json).
public struct IngestReport: Codable, Sendable, StageReport {
    public var schemaVersion = 1
    public var stage = "ingest"
    public var workdir: String
    public var tracksTotal = 0
    public var tracksIngested = 0
    public var tracksSkipped = 0
    public var tracksFailed = 0
    public var rowsRejected = 0
    public var tracksFingerprinted = 0
    public var fingerprintsByStatus: [String: Int] = [:]
    public var clipsWritten = 0
    public var clipsSilent = 0
    public var tailsDropped = 0
    /// Clips measured in this run (new and backfilled) by loudness status (measured, below-gate, failed).
    public var loudnessByStatus: [String: Int] = [:]
    /// Stored clips of unchanged tracks measured in this run (ingested before loudness existed).
    public var clipsLoudnessBackfilled = 0
    /// With --loudness-target: clips given a gain, and those whose gain the true-peak ceiling lowered.
    public var clipsNormalized = 0
    public var clipsGainLimited = 0
    public var failuresByReason: [String: Int] = [:]
    public var hoursIn = 0.0
    public var hoursKept = 0.0
    public var wallSeconds = 0.0
    public var realtimeFactor = 0.0
    public var jobs: Int
    public var sampleRate: Int
    public var clipSeconds: Double
    /// `--clip-policy` (ClipPolicy's canonical text).
    public var clipPolicy = "all"
    /// What this run measured on each clip (`--loudness`) and whether it fingerprinted (`--fingerprint`).
    public var loudnessMeasured = "full"
    public var fingerprints = true
    /// Tracks whose windows were decoded by seeking (center, random, evenly:N).
    /// What ranked `best:N`'s candidates (`loudness`, or the zero-shot model's rule); nil for
    /// other policies.
    public var clipRanking: String? = nil
    public var tracksSeeked = 0
    /// Tracks whose policy could seek but that were decoded in full, and why (SeekFallback.Reason).
    public var seekFallbacks = 0
    public var seekFallbacksByReason: [String: Int] = [:]
    public var exitCode: Int32 = 0
    /// The process's peak resident memory (PeakMemory), taken when the summary is made.
    public var peakRSSBytes = 0
    /// The worker that wrote this summary, when the stage runs as several workers (shown in the
    /// text summary; the JSON's `workdir` names the worker's part).
    public var worker: WorkerSlice? = nil

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", stage, workdir
        case tracksTotal = "tracks_total", tracksIngested = "tracks_ingested", tracksSkipped = "tracks_skipped"
        case tracksFailed = "tracks_failed", rowsRejected = "rows_rejected", clipsWritten = "clips_written"
        case tracksFingerprinted = "tracks_fingerprinted", fingerprintsByStatus = "fingerprints_by_status"
        case clipsSilent = "clips_silent", tailsDropped = "tails_dropped"
        case failuresByReason = "failures_by_reason", hoursIn = "hours_in", hoursKept = "hours_kept"
        case wallSeconds = "wall_seconds", realtimeFactor = "realtime_factor", jobs
        case sampleRate = "sample_rate", clipSeconds = "clip_seconds", exitCode = "exit_code"
        case peakRSSBytes = "peak_rss_bytes"
        case loudnessByStatus = "loudness_by_status", clipsLoudnessBackfilled = "clips_loudness_backfilled"
        case clipsNormalized = "clips_normalized", clipsGainLimited = "clips_gain_limited"
        case loudnessMeasured = "loudness_measured", fingerprints
        case clipPolicy = "clip_policy", clipRanking = "clip_ranking", tracksSeeked = "tracks_seeked", seekFallbacks = "seek_fallbacks"
        case seekFallbacksByReason = "seek_fallbacks_by_reason"
    }


    /// A short human summary for standard output.
    public func text() -> String {
        var lines = [
            "ingest\(worker.map { " (\($0))" } ?? ""): \(tracksTotal) tracks: \(tracksIngested) ingested, \(tracksSkipped) unchanged, \(tracksFailed) failed",
            String(format: "  clips: %d written, %d silent, %d short tails dropped", clipsWritten, clipsSilent, tailsDropped),
            String(format: "  audio: %.3f h in, %.3f h kept; %.1f s wall, %.1f× realtime, %d jobs",
                   hoursIn, hoursKept, wallSeconds, realtimeFactor, jobs),
        ]
        if !loudnessByStatus.isEmpty {
            var line = "  loudness: " + ClipLoudness.Status.allCases.compactMap { status in
                loudnessByStatus[status.rawValue].map { "\($0) \(status.rawValue)" }
            }.joined(separator: ", ")
            if clipsLoudnessBackfilled > 0 { line += " (\(clipsLoudnessBackfilled) stored clips of unchanged tracks)" }
            if clipsNormalized > 0 || clipsGainLimited > 0 {
                line += "; \(clipsNormalized) normalized, \(clipsGainLimited) held below the true-peak ceiling"
            }
            lines.append(line)
        }
        if let clipRanking { lines.append("  clip policy \(clipPolicy): candidates ranked by \(clipRanking)") }
        if tracksSeeked + seekFallbacks > 0 {
            var line = "  clip policy \(clipPolicy): \(tracksSeeked) tracks by seeking, \(seekFallbacks) decoded in full instead"
            if !seekFallbacksByReason.isEmpty {
                line += " (" + seekFallbacksByReason.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
                    .joined(separator: ", ") + ")"
            }
            lines.append(line)
        }
        if !fingerprintsByStatus.isEmpty {
            lines.append("  fingerprints: " + fingerprintsByStatus.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
                .joined(separator: ", ") + (tracksFingerprinted > 0 ? " (\(tracksFingerprinted) of unchanged tracks)" : ""))
        }
        if !failuresByReason.isEmpty {
            lines.append("  failures by reason:")
            for (reason, count) in failuresByReason.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                lines.append("    \(reason): \(count)")
            }
        }
        return lines.joined(separator: "\n")
    }

}

extension IngestReport {
    /// A run that stored no clip is never a success. nil when it stored some, when every track was
    /// unchanged since an earlier run (a re-run), or when there were no tracks. Otherwise the
    /// error to end the run with, or, when tracks failed for other reasons (the run already exits 3,
    /// every failure recorded), a warning. When every track was too short for a clip, the error
    /// names the clip length and what to pass instead.
    public func noClips(settings: IngestSettings) -> (error: MulanError, fatal: Bool)? {
        guard clipsWritten == 0, tracksSkipped == 0, tracksTotal > 0 else { return nil }
        let short = failuresByReason[FailureReason.tooShort.rawValue] ?? 0
        let lengths = "--clip-seconds \(Self.seconds(settings.clipSeconds)) keeping a final clip of at least "
            + "\(Self.seconds(settings.minClipSeconds)) s (--min-clip-seconds)"
        if short == tracksTotal {
            return (MulanError(.data, "no clip stored: all \(tracksTotal) tracks are shorter than a clip with \(lengths)",
                              hint: "for 10-s segments (MusicCaps, AudioSet) pass --preset musiccaps or --clip-seconds 10; "
                                + "for MagnaTagATune's 29.1-s excerpts --preset mtat; or --min-clip-seconds S to keep shorter clips"), true)
        }
        let reasons = failuresByReason.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let error = MulanError(.data, "no clip stored from \(tracksTotal) tracks (\(tracksIngested) ingested without a kept "
                               + "clip, e.g. silent; failed: \(reasons.isEmpty ? "none" : reasons)) with \(lengths)",
                               hint: "the tracks table's status, reason and detail say why for each track")
        return (error, tracksFailed == 0)
    }

    private static func seconds(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
}
