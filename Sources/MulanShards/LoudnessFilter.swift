import MulanCore
import MulanShardFormat

/// `mulan-shard --min-lufs X --max-true-peak Y`: which clips a dataset leaves out for their
/// loudness (the catalog's `clips.lufs`, `true_peak_db`, `loudness_status`), each with a reason
/// that `dataset.json` counts (`loudness_filter.clips_dropped_by_reason`).
///
/// It lives in mulan-shard, not in ingest, because it is a choice about one dataset: the clips stay
/// in the catalog and the store, so another threshold is another `mulan-shard` run, not a re-ingest.
public struct LoudnessFilter: Sendable, Hashable {
    public enum Reason: String, Sendable, CaseIterable {
        /// The clip has no measurement (ingested before loudness existed and not re-run since, or
        /// libebur128 failed on it): it cannot be shown to pass, so it is left out, and counted.
        case notMeasured = "loudness-not-measured"
        /// Integrated loudness below `--min-lufs`, or no integrated loudness at all (every block
        /// below the −70 LUFS absolute gate, quieter than any threshold).
        case quieterThanMinimum = "lufs-below-min"
        /// True peak above `--max-true-peak`.
        case truePeakAboveMaximum = "true-peak-above-max"
    }

    public var minLUFS: Double?
    public var maxTruePeakDB: Double?

    public init(minLUFS: Double? = nil, maxTruePeakDB: Double? = nil) {
        self.minLUFS = minLUFS
        self.maxTruePeakDB = maxTruePeakDB
    }

    public var isActive: Bool { minLUFS != nil || maxTruePeakDB != nil }

    /// Why a clip is left out (the first rule it fails, in the order of `Reason`), or nil to keep it.
    public func reason(status: String?, lufs: Double?, truePeakDB: Double?) -> Reason? {
        guard isActive else { return nil }
        guard let status, status != ClipLoudness.Status.failed.rawValue else { return .notMeasured }
        if let min = minLUFS, (lufs ?? -.infinity) < min { return .quieterThanMinimum }
        if let max = maxTruePeakDB {
            // A kept clip measured in full has a true peak: none means `mulan-ingest --loudness integrated`.
            guard let peak = truePeakDB else { return .notMeasured }
            if peak > max { return .truePeakAboveMaximum }
        }
        return nil
    }

    /// Part of the dataset id's settings: empty when off, so ids of unfiltered datasets do not move.
    var settingsText: String {
        isActive ? ";loudness=\(minLUFS.map { "\($0)" } ?? "-")/\(maxTruePeakDB.map { "\($0)" } ?? "-")" : ""
    }
}

