import Foundation
import MulanCatalog
import MulanCore
import MulanMedia

/// Step 3 of `TrackProcessor.process` for one track: decode, cut and encode, streaming. Policies
/// that need only some windows seek to them; the others (and a track that cannot seek) decode the
/// whole stream and cut the clips from it. Each clip is measured, encoded to FLAC in the track's
/// staging folder and synced (`store`). The fingerprint is computed from the same decoded stream,
/// at the gain of stored clips; with a seeking policy it covers the kept windows only
/// (docs/ingest.md#clip-policies). While a core of `--jobs` is idle, a clip is stored on another
/// thread as the decoder goes on (`ClipHandOff`); the clips keep the order they were cut in.
final class TrackDecoding {
    let track: TrackRun
    let settings: IngestSettings
    let row: ManifestRow
    let expected: ExpectedLength
    /// The first decoder's probe (the track's container, as the plan read it).
    let probe: AudioProbe
    /// A track whose seeking path falls back is decoded again with a fresh decoder.
    private(set) var decoder: AudioDecoder
    /// The folder the clips are staged in (a fresh one after a fallback); the track's, for its failure.
    private(set) var staging: String
    /// The stored clips, in the order they were cut (set when `run` returns).
    private(set) var clips: [ClipRecord] = []
    private let handOff: ClipHandOff
    /// Clips stored so far, with the order they were cut in (`clipsLock`: hand-offs append too).
    private var stored: [(order: Int, clip: ClipRecord)] = []
    private let clipsLock = NSLock()
    private var cut = 0
    private(set) var fingerprinter: Fingerprinter
    private(set) var stats = DecodeStats()
    private(set) var seek = SeekUse.notUsed
    private(set) var droppedTail = 0
    private var rate: Double { Double(settings.sampleRate) }

    init(_ track: TrackRun, decoder: AudioDecoder, expected: ExpectedLength) throws(StorageFailure) {
        self.track = track
        settings = track.settings
        row = track.row
        self.expected = expected
        self.decoder = decoder
        probe = decoder.probe
        let folder = try Self.makeStaging(track.item.store)
        staging = folder
        track.staging = folder
        fingerprinter = Fingerprinter(sampleRate: settings.sampleRate)
        handOff = ClipHandOff(budget: track.item.cores)
    }

    static func makeStaging(_ store: ClipStore) throws(StorageFailure) -> String {
        do {
            return try store.makeStagingFolder()
        } catch {
            throw StorageFailure("a staging folder in", store.stagingRoot, error)
        }
    }

    /// Decodes the track; its clips are staged, the stream's statistics kept.
    func run() throws -> TrackDecoding {
        // Never leave (on an error either) while a clip is being written into the staging folder.
        defer { handOff.abandon() }
        if settings.clipPolicy.canSeek { try seekWindows() }
        if !seek.seeked {
            if settings.clipPolicy.canSeek {
                try cutWindows()
            } else {
                try cutAll()
            }
        }
        try handOff.finish()
        clips = stored.sorted { $0.order < $1.order }.map(\.clip)
        return self
    }

    /// 3a. Decodes only the plan's windows by seeking (`AudioDecoder.decodeWindows`); a track that
    /// cannot seek falls back from a clean slate (notes why) and is decoded in full after.
    private func seekWindows() throws {
        let segmentOffset = Int(((row.startSeconds ?? 0) * rate).rounded())
        do {
            if let unavailable = decoder.seekUnavailable { throw unavailable }
            guard let plan = expected.plan, !plan.windows.isEmpty else { return }
            let windowStats = try decoder.decodeWindows(plan.windows, offset: segmentOffset) { window, samples in
                let clipStats = samples.withUnsafeBufferPointer { buffer in
                    if settings.fingerprint { fingerprinter.feed(buffer, gain: Float(decoder.downmixGain)) }
                    return ClipStats(measuring: buffer)
                }
                try store(ClipAudio(index: window.index, startSample: window.start, samples: samples, stats: clipStats))
            }
            stats.packets = windowStats.packets
            stats.decodeErrors = windowStats.decodeErrors
            stats.outputSamples = windowStats.outputSamples
            stats.nonFiniteSamples = windowStats.nonFiniteSamples
            stats.stoppedEarly = true
            droppedTail = plan.droppedTailSamples
            seek = .seeked(seeks: windowStats.seeks, decodedSeconds: Double(windowStats.decodedInputSamples)
                               / Double(max(probe.sampleRate, 1)))
        } catch let fallback as SeekFallback {
            // Start again from a clean slate and decode the whole track.
            seek = .fellBack(fallback)
            track.notes.append("decoded in full instead of seeking (\(fallback.reason.rawValue)): \(fallback.detail)")
            handOff.abandon()
            stored = []
            fingerprinter = Fingerprinter(sampleRate: settings.sampleRate)
            try? FileManager.default.removeItem(atPath: staging)
            staging = try Self.makeStaging(track.item.store)
            track.staging = staging
            decoder = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
        }
    }

    /// 3b. A seeking policy's windows cut from the decoded stream (after a fallback). Where the
    /// container does not state the length exactly (or only as a bit-rate estimate), the windows
    /// depend on it and a first pass counts the samples (this case decodes twice).
    private func cutWindows() throws {
        var windows = expected.plan?.windows
        if expected.plan == nil || !probe.durationIsExact {
            let counter = try AudioDecoder(path: row.path, outputSampleRate: settings.sampleRate)
            let counted = try counter.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { _ in true }
            let counterPlan = ClipPlan(policy: settings.clipPolicy, totalSamples: counted.outputSamples,
                                       settings: settings, trackID: row.trackID)
            windows = counterPlan?.windows
            droppedTail = counterPlan?.droppedTailSamples ?? 0
        } else {
            droppedTail = expected.plan?.droppedTailSamples ?? 0
        }
        guard let windows else {
            try cutAll()
            return
        }
        let cutter = WindowCutter(windows: windows)
        stats = try decoder.decode(startSeconds: row.startSeconds, endSeconds: row.endSeconds) { chunk in
            if settings.fingerprint { fingerprinter.feed(chunk, gain: Float(decoder.downmixGain)) }
            try cutter.append(chunk, emit: store)
            // No windows: the track is shorter than a clip; decode it all to say how long.
            return windows.isEmpty || !cutter.isDone
        }
        if !cutter.isDone { try cutter.finish(minimumSamples: settings.minClipSamples, emit: store) }
    }

    /// 3b. `all`, and `best:N` (which scores every grid candidate: the whole track is decoded).
    private func cutAll() throws {
        var all = settings
        all.clipPolicy = .all
        let cutter = ClipCutter(settings: all, expectedSamples: expected.samples)
        var best: BestClips?
        if case .best(let n) = settings.clipPolicy {
            best = BestClips(count: n, scorer: track.item.clipScorer, settings: settings)
        }
        func take(_ clip: ClipAudio) throws {
            if best != nil { best!.offer(clip) } else { try store(clip) }
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
            track.notes.append(best.summary(scorer: track.item.clipScorer))
            for clip in best.clips { try store(clip) }
        }
    }

    /// One clip, on another thread when a core is idle, else on this one (`storeNow`).
    private func store(_ clip: ClipAudio) throws {
        try handOff.check()
        let order = cut
        cut += 1
        // Stored clips use the integer downmix (no clipping); see AudioDecoder.downmixGain.
        let gain = Float(decoder.downmixGain)
        let track = HandedOver(value: self)
        if handOff.run({ try track.value.storeNow(clip, gain: gain, order: order) }) { return }
        try storeNow(clip, gain: gain, order: order)
    }

    private func keep(_ record: ClipRecord, order: Int) {
        clipsLock.withLock { stored.append((order, record)) }
    }

    /// One clip: silent ones are recorded without audio; the others normalized (--loudness-target),
    /// measured (EBU R128), encoded to FLAC in the staging folder and renamed to their SHA-256.
    private func storeNow(_ clip: ClipAudio, gain: Float, order: Int) throws {
        let start = Double(clip.startSample) / rate
        let duration = Double(clip.samples.count) / rate
        var samples = clip.samples
        if gain != 1 { for i in samples.indices { samples[i] *= gain } }
        let stats = gain == 1 ? clip.stats : samples.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        if stats.isSilent(settings) {
            keep(ClipRecord(index: clip.index, startSeconds: start, durationSeconds: duration,
                            sampleRate: settings.sampleRate, stats: stats, status: .silent,
                            flacPath: nil, flacSHA256: nil), order: order)
            return
        }
        // EBU R128 loudness of what is encoded, normalized first with --loudness-target;
        // RMS and peak then describe the stored samples too.
        let (loudness, normalization) = LoudnessStep.apply(&samples, settings: settings)
        let storedStats = (normalization?.gainDB ?? 0) == 0 ? stats
            : samples.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        let sha = try encode(samples, clip: clip.index)
        keep(ClipRecord(index: clip.index, startSeconds: start, durationSeconds: duration,
                        sampleRate: settings.sampleRate, stats: storedStats, status: .kept,
                        flacPath: ClipStore.relativePath(sha256: sha), flacSHA256: sha,
                        loudness: loudness, normalization: normalization), order: order)
    }

    /// Encodes one clip into the staging folder as `SHA256.flac` and returns the SHA-256. Durable
    /// before the catalog commit that names it: data synced here, the staging folder once per track
    /// (`TrackRun.commit`), before the record goes to the writer.
    private func encode(_ samples: [Float], clip index: Int) throws(StorageFailure) -> String {
        let part = "\(staging)/\(index).flac.part"
        do {
            try samples.withUnsafeBufferPointer {
                try FLACWriter.write($0, sampleRate: settings.sampleRate, bits: settings.flacBits, to: part)
            }
        } catch {
            // The encoder is given finite, in-range mono samples: a failure here is the
            // work directory's (ENOSPC, EFBIG, EIO), never the track's.
            throw StorageFailure("clip \(index) of track \(row.trackID) to", part, error)
        }
        let sha: String
        do {
            sha = try SHA256Digest.hex(ofFile: part).digest
        } catch {
            throw StorageFailure("(read back) clip \(index) of track \(row.trackID) at", part, error)
        }
        do {
            try Durable.rename(part, to: "\(staging)/\(sha).flac", syncFolder: false)
        } catch {
            throw StorageFailure("(sync and rename) clip \(index) of track \(row.trackID) to",
                                 "\(staging)/\(sha).flac", error)
        }
        return sha
    }
}
