import MulanCore

/// The settings that determine what ingest produces from a file. Two runs with equal
/// settings (and equal file content) produce the same clips, so a re-run may skip the track.
public struct IngestSettings: Sendable, Hashable, Codable {
    public static let allowedSampleRates = [16000, 22050, 24000, 32000, 44100, 48000]
    /// Bumped when a change to the code changes what ingest writes for the same settings.
    public static let pipelineVersion = 3

    public var sampleRate: Int = 16000
    public var clipSeconds: Double = 30
    public var minClipSeconds: Double = 30
    /// Which windows of each track become clips (see ClipPolicy). `--max-clips-per-track N` is
    /// `evenly:N`, kept for compatibility.
    public var clipPolicy: ClipPolicy = .all
    /// How `best:N` ranks its candidates when not by loudness: the `ClipScorer.key` of a model
    /// ranking (`mulan-ingest --clip-model`: the checkpoint's and vocabulary's content hashes, the
    /// prompts and the score rule). Nil ranks by loudness and non-silence (`LoudnessScorer`).
    public var clipRanking: String?
    /// Seeds `random`'s window choice (with the track id); part of the key only for `random`.
    public var clipSeed: UInt64 = 0
    /// A clip whose RMS level is below this (dBFS) is silent.
    public var silenceThresholdDB: Double = -60
    /// A clip whose share of digitally silent samples (|x| < 2^-16) is at least this is silent.
    public var maxSilenceShare: Double = 0.9
    /// FLAC sample depth of stored clips: 16 or 24.
    public var flacBits: Int = 16
    /// `--loudness-target`: scale each stored clip so its integrated loudness is this (LUFS);
    /// nil (the default) stores clips at their own level. See LoudnessStep.
    public var loudnessTargetLUFS: Double?
    /// `--loudness-max-true-peak`: the gain of `loudnessTargetLUFS` is limited so that the clip's
    /// true peak stays at or below this (dBTP). −1 dBTP is EBU R128's ceiling for distribution.
    public var loudnessMaxTruePeakDB: Double = -1
    /// `--loudness`: which EBU R128 values ingest measures on each stored clip. Measurements do not
    /// change the clips, so they are not part of `key`: a later run that asks for more measures
    /// what is missing from the stored clips (LoudnessBackfill) without re-ingesting.
    public var loudness: LoudnessMeasurement = .full
    /// `--fingerprint`: whether ingest computes each track's Chromaprint fingerprint (mulan-dedupe's
    /// input); off, a later run with it on back-fills the missing ones.
    public var fingerprint = true

    public init() {}

    /// `--max-clips-per-track N`, the older spelling of `evenly:N` (nil for any other policy).
    public var maxClipsPerTrack: Int? {
        get { if case .evenly(let n) = clipPolicy { n } else { nil } }
        set { clipPolicy = newValue.map { .evenly($0) } ?? .all }
    }

    public var clipSamples: Int { Int((clipSeconds * Double(sampleRate)).rounded()) }
    public var minClipSamples: Int { Int((minClipSeconds * Double(sampleRate)).rounded()) }

    /// Checks the combination; the message says what to change.
    public func validate() throws(MulanError) {
        if !Self.allowedSampleRates.contains(sampleRate) {
            throw MulanError(.usage, "--sample-rate \(sampleRate) is not supported",
                             hint: "use one of \(Self.allowedSampleRates.map(String.init).joined(separator: ", "))")
        }
        if !(clipSeconds > 0 && clipSeconds <= 600) {
            throw MulanError(.usage, "--clip-seconds must be in (0, 600], got \(clipSeconds)")
        }
        if !(minClipSeconds > 0 && minClipSeconds <= clipSeconds) {
            throw MulanError(.usage, "--min-clip-seconds must be in (0, --clip-seconds], got \(minClipSeconds)")
        }
        switch clipPolicy {
        case .evenly(let n), .best(let n):
            if n < 1 {
                throw MulanError(.usage, "--clip-policy \(clipPolicy) (or --max-clips-per-track \(n)) keeps no clip",
                                 hint: "ask for at least 1 clip per track")
            }
        case .all, .center, .random: break
        }
        if clipRanking != nil, !clipPolicy.isBest {
            throw MulanError(.usage, "--clip-model ranks the candidates of --clip-policy best:N, but the policy is \(clipPolicy)",
                             hint: "add --clip-policy best:N (e.g. best:1), or leave out --clip-model and its --clip-* options")
        }
        if !(silenceThresholdDB < 0) { throw MulanError(.usage, "--silence-db must be negative (dBFS)") }
        if !(maxSilenceShare > 0 && maxSilenceShare <= 1) {
            throw MulanError(.usage, "--max-silence-share must be in (0, 1]")
        }
        if flacBits != 16 && flacBits != 24 { throw MulanError(.usage, "--flac-bits must be 16 or 24") }
        if loudnessTargetLUFS != nil && loudness != .full {
            throw MulanError(.usage, "--loudness-target needs the full loudness measurement (its gain is limited by the true peak), "
                             + "but --loudness is \(loudness.rawValue)", hint: "leave out --loudness (full is the default)")
        }
        if let target = loudnessTargetLUFS, !(target > -70 && target <= 0) {
            throw MulanError(.usage, "--loudness-target must be in (-70, 0] LUFS, got \(target)",
                             hint: "EBU R128 broadcast is -23, streaming services use -14 to -16")
        }
        if !(loudnessMaxTruePeakDB > -70 && loudnessMaxTruePeakDB <= 0) {
            throw MulanError(.usage, "--loudness-max-true-peak must be in (-70, 0] dBTP, got \(loudnessMaxTruePeakDB)",
                             hint: "above 0 dBTP stored samples would clip; EBU R128 uses -1")
        }
    }

    /// A canonical text of everything that shapes a track's output, for change detection.
    ///
    /// The policy `all` gives the same key as before policies existed (`max=all`), so upgrading
    /// re-ingests nothing. Every other policy is named (`;policy=evenly:3`, with `@seed` for
    /// `random`): `evenly:N` clips now come from the seeking path, which matches full decoding
    /// within a documented bound but not bit for bit, so tracks ingested with the old
    /// `--max-clips-per-track N` (key `max=N`) are re-ingested once.
    /// A model ranking of `best:N` adds `;rank=` and the scorer's key (checkpoint and vocabulary
    /// content hashes, prompts, rule), so another model, prompt or rule re-ingests the track and
    /// the same ones leave it alone; ranking by loudness adds nothing (keys stay as they were).
    /// Loudness normalization appears only when it is on, so keys written before it existed stay
    /// equal (turning it on or off, or changing its target or ceiling, re-ingests a track).
    public func key(startSeconds: Double?, endSeconds: Double?) -> String {
        let segment = "\(startSeconds.map { "\($0)" } ?? "-")..\(endSeconds.map { "\($0)" } ?? "-")"
        var policy = ""
        switch clipPolicy {
        case .all: break
        case .random: policy = ";policy=random@\(clipSeed)"
        case .center, .evenly: policy = ";policy=\(clipPolicy)"
        case .best: policy = ";policy=\(clipPolicy)" + (clipRanking.map { ";rank=\($0)" } ?? "")
        }
        return "v\(Self.pipelineVersion);sr=\(sampleRate);clip=\(clipSeconds);min=\(minClipSeconds);"
            + "max=all;silence=\(silenceThresholdDB)/\(maxSilenceShare);flac=\(flacBits);seg=\(segment)\(policy)"
            + (loudnessTargetLUFS.map { ";loud=\($0)/\(loudnessMaxTruePeakDB)" } ?? "")
    }
}

/// What ingest measures of each stored clip's loudness (`mulan-ingest --loudness`).
public enum LoudnessMeasurement: String, Sendable, Hashable, Codable, CaseIterable {
    /// Nothing (the catalog's loudness columns stay empty; a later `integrated` or `full` run fills them).
    case off
    /// Integrated loudness and loudness range, without the true peak (its 4× oversampling is most of
    /// the measurement's time); `true_peak_db` stays empty.
    case integrated
    /// Integrated loudness, loudness range and true peak (the default).
    case full
}
