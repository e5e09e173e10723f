import Foundation
import MulanCatalog
import MulanCore
import MulanMedia

/// One track for a worker: the row, what the catalog already had for it, and the settings.
struct WorkItem: Sendable {
    var row: ManifestRow
    var previous: PreviousTrack?
    var settings: IngestSettings
    var store: ClipStore
    /// Ranks `best:N`'s candidates (shared by the workers).
    var clipScorer: any ClipScorer = LoudnessScorer()
    /// The run's cores, shared by its tracks and the clips they hand off (one core: no hand-off).
    var cores = CoreBudget(cores: 1)
}

/// What a worker hands back to the single catalog writer.
enum TrackOutcome: Sendable {
    /// Same content and settings as the catalog's record: nothing to redo.
    case unchanged(ManifestRow, PreviousTrack)
    /// Unchanged, but ingested before fingerprints existed: the source was decoded again (nothing
    /// re-encoded) to compute the fingerprint to add.
    case fingerprinted(ManifestRow, PreviousTrack, Fingerprint, decodedSeconds: Double)
    /// Unchanged, but ingested before loudness was measured: its stored clips were measured (by
    /// clip index), and the source decoded again for a fingerprint when it had none either.
    case loudnessMeasured(ManifestRow, PreviousTrack, [Int: ClipLoudness], Fingerprint?, decodedSeconds: Double)
    /// A new record to write; staged clip files wait in `stagingFolder` until the write commits.
    case record(TrackRecord, stagingFolder: String?, decodedSeconds: Double, seek: SeekUse = .notUsed)
    /// The work directory could not be written (a full disk, a file-size limit, a read-only or
    /// failing file system): not the track's fault, so nothing is recorded for it and the run stops;
    /// a re-run once the cause is fixed ingests it.
    case storageFailed(MulanError)
}

/// Whether a track's clips came from the seeking path (counted in the run's report).
enum SeekUse: Sendable {
    /// The policy decodes everything (`all`, `best:N`), or the track is shorter than one clip.
    case notUsed
    /// The windows were decoded by seeking: `seeks` seeks, `decodedSeconds` of audio decoded
    /// (pre-roll included).
    case seeked(seeks: Int, decodedSeconds: Double)
    /// The policy could seek but this track could not: decoded in full, for this reason.
    case fellBack(SeekFallback)

    var seeked: Bool { if case .seeked = self { true } else { false } }
}

/// A clip that could not be written to the work directory.
struct StorageFailure: Error {
    var error: MulanError
    /// Whether the track's staging folder is removed with the failure (all but a failed sync of a
    /// complete folder, which stays for the next run's sweep of the staging root).
    var removesStaging = true

    init(_ what: String, _ path: String, _ cause: any Error, removesStaging: Bool = true) {
        error = MulanError(.io, "cannot write \(what) \(path)",
                           hint: "free space on (or fix) the file system holding the work directory, then re-run: "
                               + "tracks already ingested are kept, this one is redone", cause: cause)
        self.removesStaging = removesStaging
    }
}

/// Turns one file into a track record: hash, probe, decode, cut, measure, encode. Runs on a
/// worker thread; touches the file system (staging) but never the catalog.
enum TrackProcessor {
    /// The steps in order (`TrackRun`, `TrackDecoding`); a step that fails throws, and
    /// `TrackRun.outcome(for:)` is the one place that turns what it threw into an outcome.
    static func process(_ item: WorkItem) -> TrackOutcome {
        let track = TrackRun(item)
        do {
            try track.hash()
            if let unchanged = track.unchangedOutcome() { return unchanged }
            let decoder = try track.probe()
            let expected = try track.plan(decoder.probe)
            let decoded = try TrackDecoding(track, decoder: decoder, expected: expected).run()
            track.measure(decoded, expected)
            try track.judge(decoded, expected, probe: decoder.probe)
            return try track.commit(decoded)
        } catch {
            return track.outcome(for: error)
        }
    }

    /// Decodes an unchanged track again only to fingerprint it (the same stream and gain as ingest
    /// feeds the fingerprinter; no clip is cut or encoded). Never fails: a source that cannot be
    /// decoded any more gives a `failed` fingerprint with the reason.
    static func fingerprintOnly(_ row: ManifestRow, settings: IngestSettings) -> Fingerprint {
        let fingerprinter = Fingerprinter(sampleRate: settings.sampleRate)
        do {
            let decoder = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
            _ = try decoder.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { chunk in
                fingerprinter.feed(chunk, gain: Float(decoder.downmixGain))
                return true
            }
        } catch {
            var f = fingerprinter.finish()
            f.items = []
            f.status = .failed
            f.detail = "the source could not be decoded again to fingerprint it: \(error)"
            return f
        }
        return fingerprinter.finish()
    }

    /// The longest container tag value stored as a raw text (64 KiB); longer ones are not stored
    /// (a description or lyrics tag is far shorter) and the track's detail names them.
    static let maxTagBytes = 64 << 10

    /// A clip's mean at or above this (linear, full scale 1) is noted in the track's detail.
    static let largeDCOffset = 0.1

    /// What a file system object is when it is neither a regular file nor a folder, else nil.
    static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG, S_IFDIR: nil
        case S_IFIFO: "a named pipe (FIFO)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }
}
