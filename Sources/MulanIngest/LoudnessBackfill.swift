import MulanCatalog
import MulanCore
import MulanMedia

/// Loudness for tracks ingested before it was measured (catalog schema < 5) or with less measured
/// (`--loudness off`, or `integrated` when `full` is asked now), on a re-run with unchanged content
/// and settings: each such kept clip's stored FLAC is decoded and measured, which is
/// what the clip's samples are (up to 16-bit rounding, far below 0.01 LU) without decoding the
/// source or re-encoding anything. Store files never change, so the dataset's clips stay the same.
enum LoudnessBackfill {
    static func outcome(_ row: ManifestRow, _ previous: PreviousTrack, settings: IngestSettings,
                        store: ClipStore) -> TrackOutcome {
        var measured: [Int: ClipLoudness] = [:]
        for clip in clipsToMeasure(previous, settings: settings) {
            measured[clip.index] = LoudnessMeter.measure(file: store.workdir + "/" + clip.flacPath,
                                                         sampleRate: settings.sampleRate, truePeak: settings.loudness == .full)
        }
        // A track from before fingerprints lacks both: one re-run fills both in.
        let fingerprint = previous.hasFingerprint || !settings.fingerprint ? nil : TrackProcessor.fingerprintOnly(row, settings: settings)
        return .loudnessMeasured(row, previous, measured, fingerprint,
                                 decodedSeconds: fingerprint?.durationSeconds ?? 0)
    }

    /// The kept clips whose loudness this run's `--loudness` would measure and the catalog lacks.
    static func clipsToMeasure(_ previous: PreviousTrack, settings: IngestSettings) -> [StoredClip] {
        switch settings.loudness {
        case .off: return []
        case .integrated: return previous.clipsWithoutLoudness
        case .full: return (previous.clipsWithoutLoudness + previous.clipsWithoutTruePeak).sorted { $0.index < $1.index }
        }
    }
}
