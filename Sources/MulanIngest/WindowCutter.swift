import MulanCore

/// Cuts planned windows (`ClipPlan`) out of a decoded stream, in time order, holding one window's
/// samples at a time. Ingest uses it when a policy's windows are known but the track is decoded
/// in full (the seeking path fell back, or the windows start at the beginning anyway).
public final class WindowCutter {
    private let windows: [ClipWindow]
    private var next = 0
    private var position = 0
    private var buffer: [Float] = []

    /// `windows` must be in time order and must not overlap (as `ClipPlan` makes them).
    public init(windows: [ClipWindow]) {
        self.windows = windows.sorted { $0.start < $1.start }
    }

    /// Whether every window has been emitted (the caller may stop decoding).
    public var isDone: Bool { next >= windows.count }

    /// Feeds samples; calls `emit` for each window completed.
    public func append(_ samples: UnsafeBufferPointer<Float>, emit: (ClipAudio) throws -> Void) rethrows {
        var offset = 0
        while offset < samples.count, next < windows.count {
            let w = windows[next]
            let here = position + offset
            if here < w.start {
                offset += min(w.start - here, samples.count - offset)
                continue
            }
            let take = min(w.end - here, samples.count - offset)
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: samples[offset..<(offset + take)]))
            offset += take
            if buffer.count == w.count {
                try emitBuffer(w, emit)
            }
        }
        position += samples.count
    }

    /// Ends the stream: a window the stream ended inside is emitted when it is at least
    /// `minimumSamples` long (the container's duration was a little longer than the audio).
    public func finish(minimumSamples: Int, emit: (ClipAudio) throws -> Void) rethrows {
        if next < windows.count, buffer.count >= minimumSamples, buffer.count > 0 {
            try emitBuffer(windows[next], emit)
        }
        buffer.removeAll()
    }

    private func emitBuffer(_ w: ClipWindow, _ emit: (ClipAudio) throws -> Void) rethrows {
        let stats = buffer.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        try emit(ClipAudio(index: w.index, startSample: w.start, samples: buffer, stats: stats))
        buffer.removeAll(keepingCapacity: true)
        next += 1
    }
}
