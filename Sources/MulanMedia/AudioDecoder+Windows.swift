internal import CMulanFFmpeg
import MulanCore

/// Why a track's windows could not be decoded by seeking; ingest then decodes the track in full
/// and records the reason (the track's detail and the report's `seek_fallbacks_by_reason`).
public struct SeekFallback: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        /// The container states no exact duration, so windows cannot be placed before decoding.
        case unknownDuration = "unknown-duration"
        /// The input cannot seek (a pipe-like input, or a container libavformat cannot seek in).
        case notSeekable = "not-seekable"
        /// The codec cannot be decoded from a seek point within the bound (AAC), or mulan has no
        /// tested pre-roll for it (SeekPreroll).
        case codecNotSeekAccurate = "codec-not-seek-accurate"
        /// libavformat refused the seek.
        case seekFailed = "seek-failed"
        /// The seek landed after the wanted position, even when retried further back.
        case inaccurateSeek = "inaccurate-seek"
        /// Frames after a seek carry no timestamp, so their samples cannot be placed.
        case missingTimestamps = "missing-timestamps"
        /// The stream ended inside a window (shorter than its container says, or truncated).
        case streamEnded = "stream-ended"
        /// The sample rate changed mid-stream.
        case formatChanged = "format-changed"
    }

    public var reason: Reason
    public var detail: String

    public init(_ reason: Reason, _ detail: String) {
        (self.reason, self.detail) = (reason, detail)
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// A span of the output timeline for `decodeWindows` to decode, in output samples; `index` is the
/// caller's tag for it (ingest's clip index), handed back with its samples.
public struct DecodeWindow: Sendable, Hashable {
    public var index: Int
    public var start: Int
    public var count: Int

    public init(index: Int, start: Int, count: Int) {
        (self.index, self.start, self.count) = (index, start, count)
    }

    public var end: Int { start + count }
}

/// Figures from one `decodeWindows` call.
public struct WindowDecodeStats: Sendable, Hashable {
    public var packets = 0
    /// Packets that failed to decode once a window's resampler was being fed (pre-roll excluded:
    /// a frame right after a seek may lack its bit reservoir, which is why pre-roll exists).
    public var decodeErrors = 0
    public var seeks = 0
    /// Window samples delivered at the output rate.
    public var outputSamples = 0
    /// Samples decoded at the stream's own rate, pre-roll included (the work done).
    public var decodedInputSamples = 0
    public var nonFiniteSamples = 0
}

extension AudioDecoder {
    /// The codec's name as FFmpeg's codec id gives it (`mp3`, `vorbis`), not the decoder's
    /// (`mp3float`): pre-roll depends on the format, not on the implementation.
    var codecIDName: String {
        guard let codec else { return "unknown" }
        return String(cString: avcodec_get_name(codec.pointee.codec_id))
    }

    /// Why this input cannot take the seeking path, or nil when it can.
    public var seekUnavailable: SeekFallback? { seekUnavailable(experimental: false) }

    func seekUnavailable(experimental: Bool) -> SeekFallback? {
        guard let format, let codec else { return SeekFallback(.notSeekable, "the decoder is closed") }
        if codecIDName == "aac" && !experimental {
            return SeekFallback(.codecNotSeekAccurate, "AAC's noise substitution (PNS) depends on the whole stream "
                                + "before a window, so a seek cannot reproduce full decoding within the 60 dB bound")
        }
        if SeekPreroll.experimentalSeconds(codec: codecIDName) == nil {
            return SeekFallback(.codecNotSeekAccurate, "mulan has no tested pre-roll for the \(codecIDName) codec")
        }
        // AVIO_SEEKABLE_NORMAL is bit 0 of `seekable`.
        guard let pb = format.pointee.pb, pb.pointee.seekable & 1 != 0 else {
            return SeekFallback(.notSeekable, "the input cannot seek")
        }
        if format.pointee.iformat.pointee.flags & AVFMT_NOTIMESTAMPS != 0 {
            return SeekFallback(.missingTimestamps, "the \(probe.container) container has no timestamps")
        }
        if !probe.durationIsExact {
            return SeekFallback(.unknownDuration, probe.durationSeconds == nil ? "the container states no duration"
                                : "the container's duration is only estimated from the bit rate")
        }
        if codec.pointee.sample_rate <= 0 {
            return SeekFallback(.formatChanged, "the stream states no sample rate")
        }
        return nil
    }

    /// Decodes only the given windows of the output timeline, seeking to each (`avformat_seek_file`
    /// backwards to the window start minus the codec's pre-roll, `avcodec_flush_buffers`, a fresh
    /// resampler), and hands each window's samples to `body` once complete, in time order.
    ///
    /// Output sample k of a full `decode()` is input sample k·in/out of the stream from its first
    /// decoded frame; here frames are placed by their timestamps relative to that first frame, the
    /// resampler starts on the common grid of the two rates (so its output instants equal the full
    /// decode's), and pre-roll is decoded and discarded. A window within
    /// `SeekPreroll.decodeOnSeconds` of where decoding already is is reached by decoding on, which
    /// gives exactly the full decode's samples; so does a first window near the start.
    ///
    /// `offset` is added to every window's start (the output sample where a manifest segment
    /// begins). Call on a freshly opened decoder, not after `decode()`. Throws `SeekFallback` when
    /// the windows cannot be decoded accurately this way (then decode in full, with a new decoder);
    /// `TrackFailure` for decoder set-up failures; whatever `body` throws.
    public func decodeWindows(_ windows: [DecodeWindow], offset: Int = 0,
                              body: (DecodeWindow, [Float]) throws -> Void) throws -> WindowDecodeStats {
        try decodeWindows(windows, offset: offset, experimental: false, body: body)
    }

    /// `experimental`: also seek in codecs that are exact only for some streams (AAC), with
    /// `SeekPreroll.experimentalSeconds`; for tests that measure what seeking would give.
    func decodeWindows(_ windows: [DecodeWindow], offset: Int, experimental: Bool,
                       body: (DecodeWindow, [Float]) throws -> Void) throws -> WindowDecodeStats {
        if let unavailable = seekUnavailable(experimental: experimental) { throw unavailable }
        guard let format, let codec, let stream = format.pointee.streams[Int(streamIndex)] else {
            throw SeekFallback(.notSeekable, "the decoder is closed")
        }
        let reader = try WindowReader(decoder: self, format: format, codec: codec, timeBase: stream.pointee.time_base)
        for window in windows.sorted(by: { $0.start < $1.start }) {
            let samples = try reader.read(start: offset + window.start, count: window.count)
            try body(window, samples)
        }
        reader.stats.outputSamples = windows.reduce(0) { $0 + $1.count }
        return reader.stats
    }
}

/// The state of one `decodeWindows` call: where the decoder is, and the resampler run that
/// produces the current window.
private final class WindowReader {
    let decoder: AudioDecoder
    let format: UnsafeMutablePointer<AVFormatContext>
    let codec: UnsafeMutablePointer<AVCodecContext>
    let timeBase: AVRational
    let inRate: Int
    let outRate: Int
    /// Input samples per step of the rates' common grid, and output samples per step.
    let inStep: Int, outStep: Int
    let decoderPreroll: Int
    let resamplerMargin: Int
    let decodeOn: Int
    var stats = WindowDecodeStats()

    private var packet: UnsafeMutablePointer<AVPacket>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    /// The timestamp of the stream's first decoded frame: input sample 0.
    private var anchor: Int64?
    /// The input position where the decoder's next frame starts: known when decoding on from
    /// the start or from a placed frame, nil right after a seek.
    private var decoderEnd: Int? = 0
    private var sentEndOfStream = false
    private var run: ResamplerRun?

    init(decoder: AudioDecoder, format: UnsafeMutablePointer<AVFormatContext>,
         codec: UnsafeMutablePointer<AVCodecContext>, timeBase: AVRational) throws {
        self.decoder = decoder
        self.format = format
        self.codec = codec
        self.timeBase = timeBase
        inRate = Int(codec.pointee.sample_rate)
        outRate = decoder.outputSampleRate
        var (a, b) = (inRate, outRate)
        while b != 0 { (a, b) = (b, a % b) }
        inStep = inRate / a
        outStep = outRate / a
        decoderPreroll = Int(((SeekPreroll.experimentalSeconds(codec: decoder.codecIDName) ?? 0) * Double(inRate)).rounded(.up))
        resamplerMargin = Int((SeekPreroll.resamplerSeconds * Double(inRate)).rounded(.up))
        decodeOn = Int(SeekPreroll.decodeOnSeconds * Double(inRate))
        packet = av_packet_alloc()
        frame = av_frame_alloc()
        if packet == nil || frame == nil {
            av_packet_free(&packet)
            av_frame_free(&frame)
            throw TrackFailure(.decodeFailed, "out of memory")
        }
    }

    deinit {
        av_packet_free(&packet)
        av_frame_free(&frame)
    }

    /// The `count` output samples from output sample `start` on.
    func read(start: Int, count: Int) throws -> [Float] {
        let startIn = Int((Int64(start) * Int64(inRate)) / Int64(outRate))
        let decodeOnOut = decodeOn / inStep * outStep
        if let r = run, start >= r.pendingStart, start - r.nextOutput <= decodeOnOut {
            // Decode on with the same resampler run: exactly what a full decode gives.
        } else {
            run = nil
            var p0 = max(startIn - resamplerMargin, 0) / inStep * inStep
            if let end = decoderEnd, end <= p0, p0 - end <= decodeOn {
                // Decode on without seeking: the decoder's state is intact. From the very start,
                // the resampler starts at 0, as in a full decode.
                if end == 0 && anchor == nil { p0 = 0 }
                run = ResamplerRun(start: p0, firstOutput: p0 / inStep * outStep)
            } else {
                try seek(toInput: p0)
            }
        }
        var out: [Float] = []
        out.reserveCapacity(count)
        while out.count < count {
            guard let r = run else { throw SeekFallback(.inaccurateSeek, "internal: no resampler run") }
            r.take(into: &out, start: start, count: count)
            if out.count == count { break }
            guard let placed = try nextFrame() else {
                try r.finish(decoder: decoder)
                r.take(into: &out, start: start, count: count)
                if out.count < count {
                    throw SeekFallback(.streamEnded, String(format: "the stream ended %.2f s into a window that starts at %.2f s",
                                                            Double(out.count) / Double(outRate), Double(start) / Double(outRate)))
                }
                break
            }
            try feed(placed)
        }
        for i in out.indices where !out[i].isFinite {
            out[i] = 0
            stats.nonFiniteSamples += 1
        }
        return out
    }

    /// Seeks so that decoding starts at least the codec's pre-roll before input sample `p0`, and
    /// starts a resampler run at `p0`. Retries further back (1 s, 2 s, 3 s) when the first frame
    /// comes out after the wanted position; gives up with `inaccurateSeek` after that.
    private func seek(toInput p0: Int) throws {
        if anchor == nil { try findAnchor() }
        guard let anchor else { throw SeekFallback(.missingTimestamps, "the first frame has no timestamp") }
        for attempt in 0..<4 {
            let target = max(p0 - decoderPreroll - attempt * inRate, 0)
            let ts = anchor + av_rescale(Int64(target), Int64(timeBase.den), Int64(timeBase.num) * Int64(inRate))
            let r = avformat_seek_file(format, decoder.streamIndex, Int64.min, ts, ts, 0)
            if r < 0 {
                throw SeekFallback(.seekFailed, "libavformat could not seek to \(String(format: "%.3f", Double(target) / Double(inRate))) s "
                                   + "(\(averrorText(r)))")
            }
            avcodec_flush_buffers(codec)
            stats.seeks += 1
            decoderEnd = nil
            sentEndOfStream = false
            run = ResamplerRun(start: p0, firstOutput: p0 / inStep * outStep)
            // The first frame must start by the pre-roll's start (half of it for codecs whose
            // first packet after a reset yields no samples, as Vorbis): else the seek landed late.
            guard let first = try nextFrame() else {
                throw SeekFallback(.streamEnded, "no frame after seeking to \(Double(target) / Double(inRate)) s")
            }
            if first.position <= max(p0 - decoderPreroll / 2, target) || target == 0 {
                try feed(first)
                return
            }
        }
        throw SeekFallback(.inaccurateSeek, String(format: "seeking before %.3f s kept landing after it",
                                                   Double(p0) / Double(inRate)))
    }

    /// Decodes the stream's first frame to learn the timestamp of input sample 0.
    private func findAnchor() throws {
        guard try nextFrame() != nil else { throw SeekFallback(.streamEnded, "the stream has no frames") }
        if anchor == nil { throw SeekFallback(.missingTimestamps, "the first frame has no timestamp") }
    }

    /// A decoded frame (in `frame`) and the input position of its first sample.
    private struct Placed { var position: Int; var count: Int }

    /// Reads packets and decodes until a frame comes out; places it. Nil at the end of the stream.
    private func nextFrame() throws -> Placed? {
        guard let frame, let packet else { return nil }
        av_frame_unref(frame)
        while true {
            let r = avcodec_receive_frame(codec, frame)
            if r == 0 { break }
            if r == AVERROR_EOF_CODE { return nil }
            if r != AVERROR_EAGAIN_CODE {
                if run?.fed == true { stats.decodeErrors += 1 }
                continue
            }
            if sentEndOfStream { return nil }
            let read = av_read_frame(format, packet)
            if read == AVERROR_EAGAIN_CODE { continue }
            if read < 0 {
                _ = avcodec_send_packet(codec, nil)
                sentEndOfStream = true
                continue
            }
            defer { av_packet_unref(packet) }
            if packet.pointee.stream_index != decoder.streamIndex { continue }
            stats.packets += 1
            let s = avcodec_send_packet(codec, packet)
            if s < 0 && s != AVERROR_EAGAIN_CODE && run?.fed == true { stats.decodeErrors += 1 }
        }
        if Int(frame.pointee.sample_rate) != inRate {
            throw SeekFallback(.formatChanged, "the sample rate changed from \(inRate) to \(frame.pointee.sample_rate) Hz")
        }
        let count = Int(frame.pointee.nb_samples)
        stats.decodedInputSamples += count
        var ts = frame.pointee.pts
        if ts == mulan_av_nopts_value() { ts = frame.pointee.best_effort_timestamp }
        let position: Int
        if let end = decoderEnd {
            // Decoding on: samples follow each other, as in a full decode.
            position = end
            if anchor == nil {
                guard ts != mulan_av_nopts_value() else {
                    throw SeekFallback(.missingTimestamps, "the first frame has no timestamp")
                }
                anchor = ts
            }
        } else {
            guard ts != mulan_av_nopts_value(), let anchor else {
                throw SeekFallback(.missingTimestamps, "a frame after seeking has no timestamp")
            }
            position = Int(av_rescale(ts - anchor, Int64(timeBase.num) * Int64(inRate), Int64(timeBase.den)))
        }
        decoderEnd = position + count
        return Placed(position: position, count: count)
    }

    /// Feeds the part of the current frame at or after the run's start to its resampler.
    private func feed(_ placed: Placed) throws {
        guard let r = run, let frame else { return }
        let end = placed.position + placed.count
        if !r.fed {
            if end <= r.start { return }  // pre-roll: decoded for the decoder's state, then dropped
            if placed.position > r.start {
                throw SeekFallback(.inaccurateSeek, "the first frame after seeking starts "
                                   + "\(placed.position - r.start) samples after the wanted position")
            }
        }
        let skip = r.fed ? 0 : r.start - placed.position
        try r.convert(frame, skip: skip, decoder: decoder)
    }
}

/// One run of a fresh resampler, from input sample `start` (on the rates' common grid), whose
/// output sample 0 is output sample `firstOutput` of the full decode. Produced samples wait in
/// `pending` until a window takes them.
private final class ResamplerRun {
    let start: Int
    var pendingStart: Int
    var pending: [Float] = []
    var fed = false
    private var swr: SwrHandle?

    init(start: Int, firstOutput: Int) {
        self.start = start
        pendingStart = firstOutput
    }

    var nextOutput: Int { pendingStart + pending.count }

    /// Moves the samples of the window [start, start + count) that are ready into `out` (which
    /// holds the window's first samples already), dropping earlier ones.
    func take(into out: inout [Float], start: Int, count: Int) {
        let want = start + out.count
        if pendingStart < want {
            let drop = min(want - pendingStart, pending.count)
            pending.removeFirst(drop)
            pendingStart += drop
        }
        guard pendingStart == want else { return }
        let n = min(count - out.count, pending.count)
        out.append(contentsOf: pending[0..<n])
        pending.removeFirst(n)
        pendingStart += n
    }

    /// Converts `frame` from its sample `skip` on.
    func convert(_ frame: UnsafeMutablePointer<AVFrame>, skip: Int, decoder: AudioDecoder) throws {
        if swr == nil { swr = try SwrHandle(frame: frame, decoder: decoder) }
        guard let swr else { return }
        fed = true
        try swr.convert(frame, skip: skip) { pending.append(contentsOf: $0) }
    }

    /// Drains what the resampler still holds (end of stream).
    func finish(decoder: AudioDecoder) throws {
        guard let swr else { return }
        try swr.flush { pending.append(contentsOf: $0) }
    }
}

/// A libswresample context to mono float at the output rate, built by `AudioDecoder.makeResampler`
/// as the full decode's is (so the instants and the filter are the same). Owns and frees it.
private final class SwrHandle {
    private var context: OpaquePointer?
    private var buffer: [Float] = []
    private let path: String

    init(frame: UnsafeMutablePointer<AVFrame>, decoder: AudioDecoder) throws {
        path = decoder.path
        var layout = AudioDecoder.inputLayout(of: frame, fallbackChannels: 1)
        defer { av_channel_layout_uninit(&layout) }
        context = try decoder.makeResampler(from: &layout, format: frame.pointee.format, rate: frame.pointee.sample_rate)
        decoder.downmixGain = AudioDecoder.integerDownmixGain(from: &layout)
    }

    deinit { swr_free(&context) }

    /// Converts the frame's samples from `skip` on (`swr_convert` on pointers moved past them).
    func convert(_ frame: UnsafeMutablePointer<AVFrame>, skip: Int, deliver: (ArraySlice<Float>) -> Void) throws {
        let count = Int(frame.pointee.nb_samples) - skip
        guard count > 0 else { return }
        let format = AVSampleFormat(rawValue: frame.pointee.format)
        let planar = av_sample_fmt_is_planar(format) != 0
        let bytes = Int(av_get_bytes_per_sample(format))
        let channels = Int(frame.pointee.ch_layout.nb_channels)
        let planes = planar ? channels : 1
        let step = skip * bytes * (planar ? 1 : channels)
        var inputs = [UnsafePointer<UInt8>?](repeating: nil, count: planes)
        for i in 0..<planes {
            guard let plane = frame.pointee.extended_data[i] else { return }
            inputs[i] = UnsafePointer(plane + step)
        }
        let capacity = Int(swr_get_out_samples(context, Int32(count))) + 16
        if buffer.count < capacity { buffer = [Float](repeating: 0, count: capacity) }
        let converted: Int32 = buffer.withUnsafeMutableBytes { raw in
            var out: UnsafeMutablePointer<UInt8>? = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return inputs.withUnsafeMutableBufferPointer { input in
                swr_convert(context, &out, Int32(capacity), input.baseAddress, Int32(count))
            }
        }
        if converted < 0 { throw TrackFailure(.decodeFailed, "resampling failed for \(path) (\(averrorText(converted)))") }
        deliver(buffer[0..<Int(converted)])
    }

    /// Drains the samples held back by the filter.
    func flush(deliver: (ArraySlice<Float>) -> Void) throws {
        while true {
            let capacity = max(Int(swr_get_out_samples(context, 0)), 0) + 64
            if buffer.count < capacity { buffer = [Float](repeating: 0, count: capacity) }
            let converted: Int32 = buffer.withUnsafeMutableBytes { raw in
                var out: UnsafeMutablePointer<UInt8>? = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                return swr_convert(context, &out, Int32(capacity), nil, 0)
            }
            if converted <= 0 { return }
            deliver(buffer[0..<Int(converted)])
        }
    }
}
