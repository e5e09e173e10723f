import Foundation
import MulanCore

/// One clip cut from a track's decoded, resampled mono stream.
public struct ClipAudio: Sendable {
    public var index: Int
    public var startSample: Int
    public var samples: [Float]
    public var stats: ClipStats

    public init(index: Int, startSample: Int, samples: [Float], stats: ClipStats) {
        (self.index, self.startSample, self.samples, self.stats) = (index, startSample, samples, stats)
    }
}

extension ClipStats {
    /// Whether the clip counts as silent under `settings` (see IngestSettings): the RMS without
    /// the DC offset is below the threshold (so a constant offset alone is silence), or enough
    /// of it is digital silence.
    public func isSilent(_ settings: IngestSettings) -> Bool {
        let acDB = acRMS > 0 ? 20 * log10(acRMS) : -.infinity
        return acDB < settings.silenceThresholdDB || silenceShare >= settings.maxSilenceShare
    }
}

/// Cuts a stream of mono samples into clips of `settings.clipSamples`, keeping only the
/// clips a policy selects, without ever holding more than one clip in memory.
///
/// Candidates are all non-overlapping full clips from the start, plus a final shorter clip when
/// the tail is at least `minClipSamples` long (otherwise the tail is dropped and counted).
/// With `maxClipsPerTrack = N` and more than N candidates, the N evenly spaced candidates
/// `floor((i + 0.5) · K / N)` are kept, where K is the number of candidates expected from the
/// container's duration; when the duration is unknown the first N are kept.
public final class ClipCutter {
    public let settings: IngestSettings
    private let selected: Set<Int>?
    private var maxClips: Int?
    private var buffer: [Float] = []
    private var position = 0          // samples consumed so far
    private var clipIndex = 0
    private var emitted = 0
    public private(set) var droppedTailSamples = 0

    public init(settings: IngestSettings, expectedSamples: Int?) {
        self.settings = settings
        if let n = settings.maxClipsPerTrack {
            if let expected = expectedSamples {
                let full = expected / settings.clipSamples
                let tail = expected - full * settings.clipSamples
                let candidates = full + (tail >= settings.minClipSamples && tail > 0 ? 1 : 0)
                selected = candidates <= n ? nil : Self.evenlySpaced(n, of: candidates)
            } else {
                selected = nil
                maxClips = n
            }
        } else {
            selected = nil
        }
        buffer.reserveCapacity(settings.clipSamples)
    }

    /// The indices of `n` evenly spaced picks among `k` candidates.
    public static func evenlySpaced(_ n: Int, of k: Int) -> Set<Int> {
        Set((0..<n).map { Int((Double($0) + 0.5) * Double(k) / Double(n)) })
    }

    public var samplesConsumed: Int { position }

    private var wantsCurrent: Bool {
        if let maxClips, emitted >= maxClips { return false }
        return selected?.contains(clipIndex) ?? true
    }

    /// Whether any later clip can still be kept (when not, the caller may stop decoding).
    public var isDone: Bool {
        if let maxClips { return emitted >= maxClips }
        if let selected { return selected.allSatisfy { $0 < clipIndex } }
        return false
    }

    /// Feeds samples; calls `emit` for each completed, selected clip.
    public func append(_ samples: UnsafeBufferPointer<Float>, emit: (ClipAudio) throws -> Void) rethrows {
        var offset = 0
        let clip = settings.clipSamples
        while offset < samples.count {
            let inClip = position - clipIndex * clip
            let take = min(clip - inClip, samples.count - offset)
            if wantsCurrent {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: samples[offset..<(offset + take)]))
            }
            offset += take
            position += take
            if inClip + take == clip {
                if wantsCurrent { try emitBuffer(emit) }
                buffer.removeAll(keepingCapacity: true)
                clipIndex += 1
            }
        }
    }

    /// Ends the stream: emits the tail clip if long enough and selected; counts a dropped tail.
    public func finish(emit: (ClipAudio) throws -> Void) rethrows {
        let tail = position - clipIndex * settings.clipSamples
        if tail > 0 {
            if tail >= settings.minClipSamples && wantsCurrent {
                try emitBuffer(emit)
            } else if tail < settings.minClipSamples {
                droppedTailSamples = tail
            }
        }
        buffer.removeAll()
    }

    private func emitBuffer(_ emit: (ClipAudio) throws -> Void) rethrows {
        let stats = buffer.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        emitted += 1
        try emit(ClipAudio(index: clipIndex, startSample: clipIndex * settings.clipSamples,
                           samples: buffer, stats: stats))
    }
}
