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
private struct StorageFailure: Error {
    var error: MulanError
    init(_ what: String, _ path: String, _ cause: any Error) {
        error = MulanError(.io, "cannot write \(what) \(path)",
                           hint: "free space on (or fix) the file system holding the work directory, then re-run: "
                               + "tracks already ingested are kept, this one is redone", cause: cause)
    }
}

/// Turns one file into a track record: hash, probe, decode, cut, measure, encode. Runs on a
/// worker thread; touches the file system (staging) but never the catalog.
enum TrackProcessor {
    static func process(_ item: WorkItem) -> TrackOutcome {
        let settings = item.settings
        let row = item.row
        let key = settings.key(startSeconds: row.startSeconds, endSeconds: row.endSeconds)
        var record = TrackRecord(row: row, status: .failed, sampleRate: settings.sampleRate, settingsKey: key)
        record.loudnessTarget = settings.loudnessTargetLUFS.map { ($0, settings.loudnessMaxTruePeakDB) }

        var decodedSeconds = 0.0
        func failed(_ failure: TrackFailure, staging: String? = nil) -> TrackOutcome {
            if let staging { try? FileManager.default.removeItem(atPath: staging) }
            record.status = .failed
            record.reason = failure.reason
            record.detail = failure.detail
            record.clips = []
            return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds)
        }

        // 1. Content hash (also tells missing and unreadable files apart). Only regular files are
        // read: opening a named pipe blocks until a writer comes, and a device may never end.
        var st = stat()
        if stat(row.path, &st) == 0, let kind = nonRegularKind(st.st_mode) {
            return failed(TrackFailure(.notAudio, "\(row.path) is \(kind), not a regular file; it was not read (it could "
                                       + "block or never end): copy the audio into a regular file"))
        }
        do {
            let (digest, size) = try SHA256Digest.hex(ofFile: row.path)
            record.contentHash = digest
            record.fileSize = size
        } catch {
            switch error.errno {
            case ENOENT, ENOTDIR:
                return failed(TrackFailure(.missingFile, "no file at \(row.path); fix the path or restore the file"))
            case EISDIR:
                return failed(TrackFailure(.notAudio, "\(row.path) is a folder, not an audio file"))
            case ELOOP:
                return failed(TrackFailure(.unreadable, "\(row.path) is a symbolic link loop"))
            default:
                return failed(TrackFailure(.unreadable, "\(error); check the file's permissions"))
            }
        }
        if let previous = item.previous, previous.contentHash == record.contentHash, previous.settingsKey == key {
            if previous.status == TrackRecord.Status.ingested.rawValue
                && !LoudnessBackfill.clipsToMeasure(previous, settings: settings).isEmpty {
                return LoudnessBackfill.outcome(row, previous, settings: settings, store: item.store)
            }
            if previous.status == TrackRecord.Status.ingested.rawValue && !previous.hasFingerprint && settings.fingerprint {
                let fingerprint = fingerprintOnly(row, settings: settings)
                return .fingerprinted(row, previous, fingerprint, decodedSeconds: fingerprint.durationSeconds)
            }
            return .unchanged(row, previous)
        }

        // 2. Open and probe.
        // `var`: a track whose seeking path falls back is decoded again with a fresh decoder.
        var decoder: AudioDecoder
        do {
            decoder = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
        } catch {
            return failed(error)
        }
        let probe = decoder.probe
        record.container = probe.container
        record.codec = probe.codec
        record.originalSampleRate = probe.sampleRate
        record.originalChannels = probe.channels
        record.channelLayout = probe.channelLayout
        var notes: [String] = []
        var oversized: [String] = []
        record.texts = probe.tags.compactMap {
            guard $0.value.utf8.count <= maxTagBytes else {
                oversized.append("\($0.key) (\($0.value.utf8.count) bytes)")
                return nil
            }
            return RawText(origin: "container:\($0.scope)", field: $0.key, text: $0.value,
                           source: ContainerTagSources.source(forTag: $0.key), repaired: $0.repaired)
        }
        let repairedTags = record.texts.filter(\.repaired).map(\.field)
        if !repairedTags.isEmpty {
            notes.append("container tag\(repairedTags.count > 1 ? "s" : "") \(repairedTags.joined(separator: ", ")) "
                         + "had invalid UTF-8, replaced by U+FFFD (raw_texts.repaired)")
        }
        if !oversized.isEmpty {
            notes.append("container tag\(oversized.count > 1 ? "s" : "") \(oversized.joined(separator: ", ")) not stored: "
                         + "longer than \(maxTagBytes) bytes")
        }

        // 3. Decode, cut and encode, streaming.
        var expectedSeconds: Double?
        if let duration = probe.durationSeconds {
            expectedSeconds = max(min(duration, row.endSeconds ?? duration) - (row.startSeconds ?? 0), 0)
        } else if let end = row.endSeconds {
            expectedSeconds = end - (row.startSeconds ?? 0)
        }
        let rate = Double(settings.sampleRate)
        let totalSamples = expectedSeconds.map { Int($0 * rate) }
        let plan = totalSamples.flatMap {
            ClipPlan(policy: settings.clipPolicy, totalSamples: $0, settings: settings, trackID: row.trackID)
        }
        // A seeking policy decodes only what it keeps: a track whose container states exactly
        // a length shorter than --min-clip-seconds has nothing to keep and is not decoded.
        if settings.clipPolicy.canSeek, probe.durationIsExact, let plan, plan.windows.isEmpty,
           let totalSamples, totalSamples < settings.minClipSamples, let expectedSeconds {
            record.durationSeconds = expectedSeconds
            let what = row.startSeconds != nil || row.endSeconds != nil
                ? "the segment holds (by the container's exact length)" : "the container states"
            return failed(TrackFailure(.tooShort, String(format: "%@ %.2f s of audio, shorter than --min-clip-seconds "
                                                         + "%.1f (not decoded: --clip-policy %@ decodes only the clips "
                                                         + "it keeps)", what, expectedSeconds, settings.minClipSeconds,
                                                         "\(settings.clipPolicy)")))
        }
        var staging: String
        do {
            staging = try item.store.makeStagingFolder()
        } catch {
            return .storageFailed(StorageFailure("a staging folder in", item.store.stagingRoot, error).error)
        }
        var clips: [ClipRecord] = []
        // The fingerprint is computed from the same decoded stream, at the gain of stored clips.
        // With a seeking policy it covers the kept windows only (docs/ingest.md#clip-policies).
        var fingerprinter = Fingerprinter(sampleRate: settings.sampleRate)
        var stats = DecodeStats()
        var seek = SeekUse.notUsed
        var droppedTail = 0
        do {
            func handle(_ clip: ClipAudio) throws {
                let start = Double(clip.startSample) / rate
                let duration = Double(clip.samples.count) / rate
                // Stored clips use the integer downmix (no clipping); see AudioDecoder.downmixGain.
                var samples = clip.samples
                let gain = Float(decoder.downmixGain)
                if gain != 1 { for i in samples.indices { samples[i] *= gain } }
                let stats = gain == 1 ? clip.stats : samples.withUnsafeBufferPointer { ClipStats(measuring: $0) }
                if stats.isSilent(settings) {
                    clips.append(ClipRecord(index: clip.index, startSeconds: start, durationSeconds: duration,
                                            sampleRate: settings.sampleRate, stats: stats, status: .silent,
                                            flacPath: nil, flacSHA256: nil))
                    return
                }
                // EBU R128 loudness of what is encoded, normalized first with --loudness-target;
                // RMS and peak then describe the stored samples too.
                let (loudness, normalization) = LoudnessStep.apply(&samples, settings: settings)
                let storedStats = (normalization?.gainDB ?? 0) == 0 ? stats
                    : samples.withUnsafeBufferPointer { ClipStats(measuring: $0) }
                let part = "\(staging)/\(clip.index).flac.part"
                do {
                    try samples.withUnsafeBufferPointer {
                        try FLACWriter.write($0, sampleRate: settings.sampleRate, bits: settings.flacBits, to: part)
                    }
                } catch {
                    // The encoder is given finite, in-range mono samples: a failure here is the
                    // work directory's (ENOSPC, EFBIG, EIO), never the track's.
                    throw StorageFailure("clip \(clip.index) of track \(row.trackID) to", part, error)
                }
                let sha: String
                do {
                    sha = try SHA256Digest.hex(ofFile: part).digest
                } catch {
                    throw StorageFailure("(read back) clip \(clip.index) of track \(row.trackID) at", part, error)
                }
                // Durable before the catalog commit that names it: data synced here, the staging
                // folder once per track (below), before the record goes to the writer.
                do {
                    try Durable.rename(part, to: "\(staging)/\(sha).flac", syncFolder: false)
                } catch {
                    throw StorageFailure("(sync and rename) clip \(clip.index) of track \(row.trackID) to",
                                         "\(staging)/\(sha).flac", error)
                }
                clips.append(ClipRecord(index: clip.index, startSeconds: start, durationSeconds: duration,
                                        sampleRate: settings.sampleRate, stats: storedStats, status: .kept,
                                        flacPath: ClipStore.relativePath(sha256: sha), flacSHA256: sha,
                                        loudness: loudness, normalization: normalization))
            }
            // 3a. Policies that need only some windows seek to them (AudioDecoder.decodeWindows).
            if settings.clipPolicy.canSeek {
                let segmentOffset = Int(((row.startSeconds ?? 0) * rate).rounded())
                do {
                    if let unavailable = decoder.seekUnavailable { throw unavailable }
                    if let plan, !plan.windows.isEmpty {
                        let windowStats = try decoder.decodeWindows(plan.windows, offset: segmentOffset) { window, samples in
                            let clipStats = samples.withUnsafeBufferPointer { buffer in
                                if settings.fingerprint { fingerprinter.feed(buffer, gain: Float(decoder.downmixGain)) }
                                return ClipStats(measuring: buffer)
                            }
                            try handle(ClipAudio(index: window.index, startSample: window.start, samples: samples, stats: clipStats))
                        }
                        stats.packets = windowStats.packets
                        stats.decodeErrors = windowStats.decodeErrors
                        stats.outputSamples = windowStats.outputSamples
                        stats.nonFiniteSamples = windowStats.nonFiniteSamples
                        stats.stoppedEarly = true
                        droppedTail = plan.droppedTailSamples
                        seek = .seeked(seeks: windowStats.seeks, decodedSeconds: Double(windowStats.decodedInputSamples)
                                           / Double(max(probe.sampleRate, 1)))
                    }
                } catch let fallback as SeekFallback {
                    // Start again from a clean slate and decode the whole track.
                    seek = .fellBack(fallback)
                    notes.append("decoded in full instead of seeking (\(fallback.reason.rawValue)): \(fallback.detail)")
                    clips = []
                    fingerprinter = Fingerprinter(sampleRate: settings.sampleRate)
                    try? FileManager.default.removeItem(atPath: staging)
                    do {
                        staging = try item.store.makeStagingFolder()
                    } catch {
                        return .storageFailed(StorageFailure("a staging folder in", item.store.stagingRoot, error).error)
                    }
                    decoder = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
                }
            }
            // 3b. Otherwise (and after a fallback) decode the stream and cut the clips from it.
            if !seek.seeked {
                var windows = plan?.windows
                if settings.clipPolicy.canSeek && (plan == nil || !probe.durationIsExact) {
                    // The windows depend on the track's length, which the container does not state
                    // exactly (or only as a bit-rate estimate): a first pass counts the samples (this
                    // case decodes twice).
                    let counter = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
                    let counted = try counter.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { _ in true }
                    let counterPlan = ClipPlan(policy: settings.clipPolicy, totalSamples: counted.outputSamples,
                                               settings: settings, trackID: row.trackID)
                    windows = counterPlan?.windows
                    droppedTail = counterPlan?.droppedTailSamples ?? 0
                } else if settings.clipPolicy.canSeek {
                    droppedTail = plan?.droppedTailSamples ?? 0
                }
                if settings.clipPolicy.canSeek, let windows {
                    let cutter = WindowCutter(windows: windows)
                    stats = try decoder.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { chunk in
                        if settings.fingerprint { fingerprinter.feed(chunk, gain: Float(decoder.downmixGain)) }
                        try cutter.append(chunk, emit: handle)
                        // No windows: the track is shorter than a clip; decode it all to say how long.
                        return windows.isEmpty || !cutter.isDone
                    }
                    if !cutter.isDone { try cutter.finish(minimumSamples: settings.minClipSamples, emit: handle) }
                } else {
                    // `all`, and `best:N` (which scores every grid candidate: the whole track is decoded).
                    var all = settings
                    all.clipPolicy = .all
                    let cutter = ClipCutter(settings: all, expectedSamples: totalSamples)
                    var best: BestClips?
                    if case .best(let n) = settings.clipPolicy {
                        best = BestClips(count: n, scorer: item.clipScorer, settings: settings)
                    }
                    func take(_ clip: ClipAudio) throws {
                        if best != nil { best!.offer(clip) } else { try handle(clip) }
                    }
                    stats = try decoder.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { chunk in
                        if settings.fingerprint { fingerprinter.feed(chunk, gain: Float(decoder.downmixGain)) }
                        try cutter.append(chunk, emit: take)
                        return true
                    }
                    try cutter.finish(emit: take)
                    droppedTail = cutter.droppedTailSamples
                    if let best {
                        // Which windows were chosen, by what and with which scores.
                        notes.append(best.summary(scorer: item.clipScorer))
                        for clip in best.clips { try handle(clip) }
                    }
                }
            }
        } catch let failure as TrackFailure {
            return failed(failure, staging: staging)
        } catch let failure as StorageFailure {
            try? FileManager.default.removeItem(atPath: staging)
            return .storageFailed(failure.error)
        } catch {
            return failed(TrackFailure(.decodeFailed, "\(error)"), staging: staging)
        }

        decodedSeconds = Double(stats.outputSamples) / rate
        record.fingerprint = settings.fingerprint ? fingerprinter.finish() : nil
        record.durationSeconds = decodedSeconds
        if case .seeked(_, let decoded) = seek, let totalSamples {
            // Only the windows were decoded: the track's length is the container's.
            decodedSeconds = decoded
            record.durationSeconds = Double(totalSamples) / rate
        }
        record.decodeErrors = stats.decodeErrors
        record.tailDroppedSeconds = Double(droppedTail) / rate
        record.downmixGain = decoder.downmixGain

        // 4. Judge the whole track.
        if stats.outputSamples == 0 {
            if row.endSeconds == nil, let problem = ContainerTail.problem(path: row.path, container: probe.container) {
                return failed(TrackFailure(.truncated, "\(row.path): \(problem), and no audio could be decoded; "
                                           + "the file is cut short, re-download or re-export it"), staging: staging)
            }
            let why = stats.decodeErrors > 0 ? "\(stats.decodeErrors) of \(stats.packets) packets failed to decode"
                : (stats.readError.map { "reading stopped: \($0)" } ?? "the stream holds no samples")
            return failed(TrackFailure(.corrupt, "no audio could be decoded from \(row.path) (\(why))"), staging: staging)
        }
        // A few damaged packets (one, or up to 1%) are skipped, as the ffmpeg CLI does; more means a
        // damaged file. (A file cut short usually ends in one partial packet.)
        let fewErrors = stats.decodeErrors <= max(1, stats.packets / 100)
        if !stats.stoppedEarly, fewErrors, let expected = expectedSeconds,
           probe.durationIsExact || stats.readError != nil,
           decodedSeconds < expected - max(0.5, 0.02 * expected) {
            let because = stats.readError.map { " (reading stopped: \($0))" } ?? ""
            return failed(TrackFailure(.truncated, String(format: "%@ declares %.1f s but only %.1f s could be decoded%@; "
                                                          + "the file is cut short, re-download or re-export it",
                                                          row.path, expected, decodedSeconds, because)),
                          staging: staging)
        }
        if !fewErrors {
            return failed(TrackFailure(.corrupt, "\(stats.decodeErrors) of \(stats.packets) packets of \(row.path) "
                                       + "failed to decode; the file is damaged, re-encode or re-download it"),
                          staging: staging)
        }
        if !stats.stoppedEarly, row.endSeconds == nil,
           let problem = ContainerTail.problem(path: row.path, container: probe.container) {
            return failed(TrackFailure(.truncated, "\(row.path): \(problem); the file is cut short, re-download or re-export it"),
                          staging: staging)
        }
        if stats.outputSamples < settings.minClipSamples {
            return failed(TrackFailure(.tooShort, String(format: "%.2f s of audio is shorter than --min-clip-seconds %.1f",
                                                         decodedSeconds, settings.minClipSeconds)),
                          staging: staging)
        }
        record.clips = clips
        if record.keptClips == 0 && record.silentClips > 0 {
            record.status = .failed
            record.reason = .silent
            record.detail = String(format: "all %d clips are silent (RMS without DC offset below %.0f dBFS or ≥ %.0f%% "
                                   + "digital silence)", record.silentClips, settings.silenceThresholdDB,
                                   settings.maxSilenceShare * 100)
            if let dc = clips.map(\.stats.dcOffset).max(by: { abs($0) < abs($1) }), abs(dc) >= largeDCOffset {
                record.detail! += String(format: "; a constant DC offset of %+.2f of full scale is all there is", dc)
            }
            try? FileManager.default.removeItem(atPath: staging)
            return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds, seek: seek)
        }
        record.status = .ingested
        if let dc = clips.filter({ $0.status == .kept }).map(\.stats.dcOffset).max(by: { abs($0) < abs($1) }),
           abs(dc) >= largeDCOffset {
            notes.append(String(format: "large DC offset (up to %+.2f of full scale), kept as is", dc))
        }
        let unmeasured = clips.compactMap { $0.loudness?.status == .failed ? $0.loudness?.detail : nil }
        if let first = unmeasured.first {
            notes.append("loudness of \(unmeasured.count) clip\(unmeasured.count > 1 ? "s" : "") not measured: \(first)")
        }
        if stats.decodeErrors > 0 { notes.append("\(stats.decodeErrors) damaged packets skipped") }
        if stats.nonFiniteSamples > 0 { notes.append("\(stats.nonFiniteSamples) NaN/Inf samples replaced by 0") }
        if let readError = stats.readError { notes.append("reading stopped early: \(readError)") }
        record.detail = notes.isEmpty ? nil : notes.joined(separator: "; ")
        do {
            try Durable.syncFolder(staging)
        } catch {
            return .storageFailed(StorageFailure("(sync) the staged clips of track \(row.trackID) in", staging,
                                                 error).error)
        }
        return .record(record, stagingFolder: staging, decodedSeconds: decodedSeconds, seek: seek)
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
