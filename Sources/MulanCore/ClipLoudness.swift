/// The EBU R128 loudness of one stored clip (ITU-R BS.1770-4 as libebur128 computes it), as the
/// catalog (`clips.lufs`, `loudness_range`, `true_peak_db`, `loudness_status`) and the shard JSON
/// record it.
///
/// A value that cannot be given is nil, never a sentinel: integrated loudness of a clip whose
/// every 400 ms block is below the absolute gate (−70 LUFS) is undefined, not "very quiet".
public struct ClipLoudness: Sendable, Hashable {
    public enum Status: String, Sendable, CaseIterable {
        /// Integrated loudness, loudness range and true peak were measured.
        case measured
        /// Every gating block is below −70 LUFS: no integrated loudness (nil); range and true
        /// peak are still given.
        case belowGate = "below-gate"
        /// libebur128 refused the audio (the detail names the call); every value is nil.
        case failed
    }

    public var status: Status
    /// Integrated loudness in LUFS (nil when below the gate or failed).
    public var integratedLUFS: Double?
    /// Loudness range in LU (EBU Tech 3342; 0 for a clip shorter than the 3 s short-term window).
    public var loudnessRange: Double?
    /// Maximum true peak in dBTP (4× oversampled below 96 kHz; nil for digital silence or failure).
    public var truePeakDB: Double?
    /// Why a value is missing, for `failed`.
    public var detail: String?

    public init(status: Status, integratedLUFS: Double? = nil, loudnessRange: Double? = nil,
                truePeakDB: Double? = nil, detail: String? = nil) {
        self.status = status
        self.integratedLUFS = integratedLUFS
        self.loudnessRange = loudnessRange
        self.truePeakDB = truePeakDB
        self.detail = detail
    }

    public static func failed(_ detail: String) -> ClipLoudness { ClipLoudness(status: .failed, detail: detail) }
}

/// What `--loudness-target` did to one clip before it was encoded: the clip as measured before,
/// and the gain applied. The clip's `ClipLoudness` describes it after the gain (what is stored).
public struct LoudnessNormalization: Sendable, Hashable {
    /// The clip before the gain (after the downmix gain).
    public var before: ClipLoudness
    /// The gain applied, in dB (0 when there was nothing to normalize: below the gate or failed).
    public var gainDB: Double
    /// Whether the true-peak ceiling lowered the gain, leaving the clip quieter than the target.
    public var limitedByTruePeak: Bool

    public init(before: ClipLoudness, gainDB: Double, limitedByTruePeak: Bool) {
        self.before = before
        self.gainDB = gainDB
        self.limitedByTruePeak = limitedByTruePeak
    }
}
