import Foundation
import MulanCatalog
import MulanCore
import MulanMedia

/// What a track is expected to hold, from its container and the manifest's segment, and the clip
/// windows planned from that (nil where the length is not known before decoding).
struct ExpectedLength {
    var seconds: Double?
    var samples: Int?
    var plan: ClipPlan?
}

/// One track through `TrackProcessor.process`: the record being built and the steps before and
/// after decoding (unchanged-check, hash, probe, plan, measure, judge, commit). Lives on one worker
/// thread for one track.
final class TrackRun {
    let item: WorkItem
    let settings: IngestSettings
    let row: ManifestRow
    let key: String
    var record: TrackRecord
    /// What the track's detail says when it is ingested (joined with "; ").
    var notes: [String] = []
    /// Seconds of audio decoded (reported per outcome).
    var decodedSeconds = 0.0
    /// The folder the clips are staged in, once made; removed when the track fails.
    var staging: String?

    init(_ item: WorkItem) {
        self.item = item
        settings = item.settings
        row = item.row
        key = settings.key(startSeconds: row.startSeconds, endSeconds: row.endSeconds)
        record = TrackRecord(row: row, status: .failed, sampleRate: settings.sampleRate, settingsKey: key)
        record.loudnessTarget = settings.loudnessTargetLUFS.map { ($0, settings.loudnessMaxTruePeakDB) }
    }

    // MARK: Outcomes

    /// The one place a step's error becomes an outcome: a storage failure stops the run (nothing
    /// recorded), a track failure is recorded with its reason, anything else thrown while decoding
    /// is a decode failure.
    func outcome(for error: any Error) -> TrackOutcome {
        switch error {
        case let failure as StorageFailure:
            if failure.removesStaging, let staging { try? FileManager.default.removeItem(atPath: staging) }
            return .storageFailed(failure.error)
        case let failure as TrackFailure:
            return failed(failure)
        default:
            return failed(TrackFailure(.decodeFailed, "\(error)"))
        }
    }

    /// The failed record, with no clips (its staged clips removed).
    func failed(_ failure: TrackFailure) -> TrackOutcome {
        if let staging { try? FileManager.default.removeItem(atPath: staging) }
        record.status = .failed
        record.reason = failure.reason
        record.detail = failure.detail
        record.clips = []
        return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds)
    }

    // MARK: Before decoding

    /// 1. Content hash (also tells missing and unreadable files apart). Only regular files are
    /// read: opening a named pipe blocks until a writer comes, and a device may never end.
    func hash() throws(TrackFailure) {
        var st = stat()
        if stat(row.path, &st) == 0, let kind = TrackProcessor.nonRegularKind(st.st_mode) {
            throw TrackFailure(.notAudio, "\(row.path) is \(kind), not a regular file; it was not read (it could "
                               + "block or never end): copy the audio into a regular file")
        }
        do {
            let (digest, size) = try SHA256Digest.hex(ofFile: row.path)
            record.contentHash = digest
            record.fileSize = size
        } catch {
            switch error.errno {
            case ENOENT, ENOTDIR:
                throw TrackFailure(.missingFile, "no file at \(row.path); fix the path or restore the file")
            case EISDIR:
                throw TrackFailure(.notAudio, "\(row.path) is a folder, not an audio file")
            case ELOOP:
                throw TrackFailure(.unreadable, "\(row.path) is a symbolic link loop")
            default:
                throw TrackFailure(.unreadable, "\(error); check the file's permissions")
            }
        }
    }

    /// The outcome of a track whose content and settings the catalog already has: nothing to redo,
    /// or only the loudness or fingerprint it was ingested without. Nil when the track is new or changed.
    func unchangedOutcome() -> TrackOutcome? {
        guard let previous = item.previous, previous.contentHash == record.contentHash, previous.settingsKey == key else {
            return nil
        }
        if previous.status == TrackRecord.Status.ingested.rawValue
            && !LoudnessBackfill.clipsToMeasure(previous, settings: settings).isEmpty {
            return LoudnessBackfill.outcome(row, previous, settings: settings, store: item.store)
        }
        if previous.status == TrackRecord.Status.ingested.rawValue && !previous.hasFingerprint && settings.fingerprint {
            let fingerprint = TrackProcessor.fingerprintOnly(row, settings: settings)
            return .fingerprinted(row, previous, fingerprint, decodedSeconds: fingerprint.durationSeconds)
        }
        return .unchanged(row, previous)
    }

    /// 2. Open and probe: the container's description and its tags as raw texts (invalid UTF-8
    /// repaired, oversized values left out, both noted).
    func probe() throws(TrackFailure) -> AudioDecoder {
        let decoder = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
        let probe = decoder.probe
        record.container = probe.container
        record.codec = probe.codec
        record.originalSampleRate = probe.sampleRate
        record.originalChannels = probe.channels
        record.channelLayout = probe.channelLayout
        var oversized: [String] = []
        let maxTagBytes = TrackProcessor.maxTagBytes
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
        return decoder
    }

    /// 3. The expected length and the clip plan. A seeking policy decodes only what it keeps: a
    /// track whose container states exactly a length shorter than --min-clip-seconds has nothing
    /// to keep and is not decoded.
    func plan(_ probe: AudioProbe) throws(TrackFailure) -> ExpectedLength {
        var expected = ExpectedLength()
        if let duration = probe.durationSeconds {
            expected.seconds = max(min(duration, row.endSeconds ?? duration) - (row.startSeconds ?? 0), 0)
        } else if let end = row.endSeconds {
            expected.seconds = end - (row.startSeconds ?? 0)
        }
        let rate = Double(settings.sampleRate)
        expected.samples = expected.seconds.map { Int($0 * rate) }
        expected.plan = expected.samples.flatMap {
            ClipPlan(policy: settings.clipPolicy, totalSamples: $0, settings: settings, trackID: row.trackID)
        }
        if settings.clipPolicy.canSeek, probe.durationIsExact, let plan = expected.plan, plan.windows.isEmpty,
           let totalSamples = expected.samples, totalSamples < settings.minClipSamples, let expectedSeconds = expected.seconds {
            record.durationSeconds = expectedSeconds
            let what = row.startSeconds != nil || row.endSeconds != nil
                ? "the segment holds (by the container's exact length)" : "the container states"
            throw TrackFailure(.tooShort, String(format: "%@ %.2f s of audio, shorter than --min-clip-seconds "
                                                + "%.1f (not decoded: --clip-policy %@ decodes only the clips "
                                                + "it keeps)", what, expectedSeconds, settings.minClipSeconds,
                                                "\(settings.clipPolicy)"))
        }
        return expected
    }

    // MARK: After decoding

    /// What the decoding measured, into the record.
    func measure(_ decoded: TrackDecoding, _ expected: ExpectedLength) {
        let rate = Double(settings.sampleRate)
        decodedSeconds = Double(decoded.stats.outputSamples) / rate
        record.fingerprint = settings.fingerprint ? decoded.fingerprinter.finish() : nil
        record.durationSeconds = decodedSeconds
        if case .seeked(_, let seconds) = decoded.seek, let totalSamples = expected.samples {
            // Only the windows were decoded: the track's length is the container's.
            decodedSeconds = seconds
            record.durationSeconds = Double(totalSamples) / rate
        }
        record.decodeErrors = decoded.stats.decodeErrors
        record.tailDroppedSeconds = Double(decoded.droppedTail) / rate
        record.downmixGain = decoded.decoder.downmixGain
    }

    /// 4. Judge the whole track: no audio, cut short, damaged or too short fails it.
    func judge(_ decoded: TrackDecoding, _ expected: ExpectedLength, probe: AudioProbe) throws(TrackFailure) {
        let stats = decoded.stats
        if stats.outputSamples == 0 {
            if row.endSeconds == nil, let problem = ContainerTail.problem(path: row.path, container: probe.container) {
                throw TrackFailure(.truncated, "\(row.path): \(problem), and no audio could be decoded; "
                                   + "the file is cut short, re-download or re-export it")
            }
            let why = stats.decodeErrors > 0 ? "\(stats.decodeErrors) of \(stats.packets) packets failed to decode"
                : (stats.readError.map { "reading stopped: \($0)" } ?? "the stream holds no samples")
            throw TrackFailure(.corrupt, "no audio could be decoded from \(row.path) (\(why))")
        }
        // A few damaged packets (one, or up to 1%) are skipped, as the ffmpeg CLI does; more means a
        // damaged file. (A file cut short usually ends in one partial packet.)
        let fewErrors = stats.decodeErrors <= max(1, stats.packets / 100)
        if !stats.stoppedEarly, fewErrors, let expected = expected.seconds,
           probe.durationIsExact || stats.readError != nil,
           decodedSeconds < expected - max(0.5, 0.02 * expected) {
            let because = stats.readError.map { " (reading stopped: \($0))" } ?? ""
            throw TrackFailure(.truncated, String(format: "%@ declares %.1f s but only %.1f s could be decoded%@; "
                                                  + "the file is cut short, re-download or re-export it",
                                                  row.path, expected, decodedSeconds, because))
        }
        if !fewErrors {
            throw TrackFailure(.corrupt, "\(stats.decodeErrors) of \(stats.packets) packets of \(row.path) "
                               + "failed to decode; the file is damaged, re-encode or re-download it")
        }
        if !stats.stoppedEarly, row.endSeconds == nil,
           let problem = ContainerTail.problem(path: row.path, container: probe.container) {
            throw TrackFailure(.truncated, "\(row.path): \(problem); the file is cut short, re-download or re-export it")
        }
        if stats.outputSamples < settings.minClipSamples {
            throw TrackFailure(.tooShort, String(format: "%.2f s of audio is shorter than --min-clip-seconds %.1f",
                                                 decodedSeconds, settings.minClipSeconds))
        }
    }

    /// 5. The record with its clips: failed when every clip is silent (nothing staged is kept),
    /// else ingested with its notes, the staging folder synced before the record goes to the writer.
    func commit(_ decoded: TrackDecoding) throws(StorageFailure) -> TrackOutcome {
        let clips = decoded.clips
        record.clips = clips
        if record.keptClips == 0 && record.silentClips > 0 {
            record.status = .failed
            record.reason = .silent
            record.detail = String(format: "all %d clips are silent (RMS without DC offset below %.0f dBFS or ≥ %.0f%% "
                                   + "digital silence)", record.silentClips, settings.silenceThresholdDB,
                                   settings.maxSilenceShare * 100)
            if let dc = clips.map(\.stats.dcOffset).max(by: { abs($0) < abs($1) }), abs(dc) >= TrackProcessor.largeDCOffset {
                record.detail! += String(format: "; a constant DC offset of %+.2f of full scale is all there is", dc)
            }
            if let staging { try? FileManager.default.removeItem(atPath: staging) }
            return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds, seek: decoded.seek)
        }
        record.status = .ingested
        notes += Self.notes(clips, decoded.stats)
        record.detail = notes.isEmpty ? nil : notes.joined(separator: "; ")
        let staging = decoded.staging
        do {
            try Durable.syncFolder(staging)
        } catch {
            throw StorageFailure("(sync) the staged clips of track \(row.trackID) in", staging, error, removesStaging: false)
        }
        return .record(record, stagingFolder: staging, decodedSeconds: decodedSeconds, seek: decoded.seek)
    }

    /// What an ingested track's detail notes about its clips and its decoding.
    static func notes(_ clips: [ClipRecord], _ stats: DecodeStats) -> [String] {
        var notes: [String] = []
        if let dc = clips.filter({ $0.status == .kept }).map(\.stats.dcOffset).max(by: { abs($0) < abs($1) }),
           abs(dc) >= TrackProcessor.largeDCOffset {
            notes.append(String(format: "large DC offset (up to %+.2f of full scale), kept as is", dc))
        }
        let unmeasured = clips.compactMap { $0.loudness?.status == .failed ? $0.loudness?.detail : nil }
        if let first = unmeasured.first {
            notes.append("loudness of \(unmeasured.count) clip\(unmeasured.count > 1 ? "s" : "") not measured: \(first)")
        }
        if stats.decodeErrors > 0 { notes.append("\(stats.decodeErrors) damaged packets skipped") }
        if stats.nonFiniteSamples > 0 { notes.append("\(stats.nonFiniteSamples) NaN/Inf samples replaced by 0") }
        if let readError = stats.readError { notes.append("reading stopped early: \(readError)") }
        return notes
    }
}
