import MulanCatalog
import MulanCore
import MulanMedia

/// Loudness for tracks ingested before it was measured (catalog schema < 5), on a re-run with
/// unchanged content and settings: each kept clip's stored FLAC is decoded and measured, which is
/// what the clip's samples are (up to 16-bit rounding, far below 0.01 LU) without decoding the
/// source or re-encoding anything. Store files never change, so the dataset's clips stay the same.
enum LoudnessBackfill {
    static func outcome(_ row: ManifestRow, _ previous: PreviousTrack, settings: IngestSettings,
                        store: ClipStore) -> TrackOutcome {
        var measured: [Int: ClipLoudness] = [:]
        for clip in previous.clipsWithoutLoudness {
            measured[clip.index] = LoudnessMeter.measure(file: store.workdir + "/" + clip.flacPath,
                                                         sampleRate: settings.sampleRate)
        }
        // A track from before fingerprints lacks both: one re-run fills both in.
        let fingerprint = previous.hasFingerprint ? nil : TrackProcessor.fingerprintOnly(row, settings: settings)
        return .loudnessMeasured(row, previous, measured, fingerprint,
                                 decodedSeconds: fingerprint?.durationSeconds ?? 0)
    }
}
