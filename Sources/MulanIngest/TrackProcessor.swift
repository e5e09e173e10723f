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
}

/// What a worker hands back to the single catalog writer.
enum TrackOutcome: Sendable {
    /// Same content and settings as the catalog's record: nothing to redo.
    case unchanged(ManifestRow, PreviousTrack)
    /// A new record to write; staged clip files wait in `stagingFolder` until the write commits.
    case record(TrackRecord, stagingFolder: String?, decodedSeconds: Double)
}

/// Turns one file into a track record: hash, probe, decode, cut, measure, encode. Runs on a
/// worker thread; touches the file system (staging) but never the catalog.
enum TrackProcessor {
    static func process(_ item: WorkItem) -> TrackOutcome {
        let settings = item.settings
        let row = item.row
        let key = settings.key(startSeconds: row.startSeconds, endSeconds: row.endSeconds)
        var record = TrackRecord(row: row, status: .failed, sampleRate: settings.sampleRate, settingsKey: key)

        var decodedSeconds = 0.0
        func failed(_ failure: TrackFailure, staging: String? = nil) -> TrackOutcome {
            if let staging { try? FileManager.default.removeItem(atPath: staging) }
            record.status = .failed
            record.reason = failure.reason
            record.detail = failure.detail
            record.clips = []
            return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds)
        }

        // 1. Content hash (also tells missing and unreadable files apart).
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
            return .unchanged(row, previous)
        }

        // 2. Open and probe.
        let decoder: AudioDecoder
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
        record.texts = probe.tags.map {
            RawText(origin: "container:\($0.scope)", field: $0.key, text: $0.value,
                    source: ContainerTagSources.source(forTag: $0.key))
        }

        // 3. Decode, cut and encode, streaming.
        var expectedSeconds: Double?
        if let duration = probe.durationSeconds {
            expectedSeconds = max(min(duration, row.endSeconds ?? duration) - (row.startSeconds ?? 0), 0)
        } else if let end = row.endSeconds {
            expectedSeconds = end - (row.startSeconds ?? 0)
        }
        let cutter = ClipCutter(settings: settings,
                                expectedSamples: expectedSeconds.map { Int($0 * Double(settings.sampleRate)) })
        let staging: String
        do {
            staging = try item.store.makeStagingFolder()
        } catch {
            return failed(TrackFailure(.encodeFailed, "cannot create a staging folder: \(error)"))
        }
        let rate = Double(settings.sampleRate)
        var clips: [ClipRecord] = []
        let stats: DecodeStats
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
                let part = "\(staging)/\(clip.index).flac.part"
                do {
                    try samples.withUnsafeBufferPointer {
                        try FLACWriter.write($0, sampleRate: settings.sampleRate, bits: settings.flacBits, to: part)
                    }
                } catch {
                    throw TrackFailure(.encodeFailed, "FLAC encoding of clip \(clip.index) failed: \(error)")
                }
                let sha: String
                do {
                    sha = try SHA256Digest.hex(ofFile: part).digest
                } catch {
                    throw TrackFailure(.encodeFailed, "cannot read back clip \(clip.index): \(error)")
                }
                if rename(part, "\(staging)/\(sha).flac") != 0 {
                    throw TrackFailure(.encodeFailed, "cannot rename staged clip \(part): \(String(cString: strerror(errno)))")
                }
                clips.append(ClipRecord(index: clip.index, startSeconds: start, durationSeconds: duration,
                                        sampleRate: settings.sampleRate, stats: stats, status: .kept,
                                        flacPath: ClipStore.relativePath(sha256: sha), flacSHA256: sha))
            }
            stats = try decoder.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { chunk in
                try cutter.append(chunk, emit: handle)
                return !cutter.isDone
            }
            if !stats.stoppedEarly || !cutter.isDone {
                try cutter.finish(emit: handle)
            }
        } catch let failure as TrackFailure {
            return failed(failure, staging: staging)
        } catch {
            return failed(TrackFailure(.decodeFailed, "\(error)"), staging: staging)
        }

        decodedSeconds = Double(stats.outputSamples) / rate
        record.durationSeconds = decodedSeconds
        record.decodeErrors = stats.decodeErrors
        record.tailDroppedSeconds = Double(cutter.droppedTailSamples) / rate
        record.downmixGain = decoder.downmixGain

        // 4. Judge the whole track.
        if stats.outputSamples == 0 {
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
            record.detail = String(format: "all %d clips are silent (RMS below %.0f dBFS or ≥ %.0f%% digital silence)",
                                   record.silentClips, settings.silenceThresholdDB, settings.maxSilenceShare * 100)
            try? FileManager.default.removeItem(atPath: staging)
            return .record(record, stagingFolder: nil, decodedSeconds: decodedSeconds)
        }
        record.status = .ingested
        var notes: [String] = []
        if stats.decodeErrors > 0 { notes.append("\(stats.decodeErrors) damaged packets skipped") }
        if stats.nonFiniteSamples > 0 { notes.append("\(stats.nonFiniteSamples) NaN/Inf samples replaced by 0") }
        if let readError = stats.readError { notes.append("reading stopped early: \(readError)") }
        record.detail = notes.isEmpty ? nil : notes.joined(separator: "; ")
        return .record(record, stagingFolder: staging, decodedSeconds: decodedSeconds)
    }
}
