internal import CMulanFFmpeg
import MulanCore
#if canImport(Glibc)
import Glibc
#endif

/// What FFmpeg says about an input file before decoding.
public struct AudioProbe: Sendable, Hashable {
    public var container: String
    public var codec: String
    public var sampleRate: Int
    public var channels: Int
    public var channelLayout: String
    /// Duration of the audio stream in seconds, if the container states it.
    public var durationSeconds: Double?
    /// Whether that duration comes from headers or index (reliable), rather than a bitrate estimate.
    public var durationIsExact: Bool
    public var bitRate: Int
    /// Container ("format") and stream tags: (scope, key, value), in file order.
    public var tags: [Tag]

    public struct Tag: Sendable, Hashable {
        public var scope: String
        public var key: String
        public var value: String
        /// The value was not valid UTF-8; invalid bytes became U+FFFD.
        public var repaired = false

        public init(scope: String, key: String, value: String, repaired: Bool = false) {
            (self.scope, self.key, self.value, self.repaired) = (scope, key, value, repaired)
        }
    }
}

/// Figures from one decode pass.
public struct DecodeStats: Sendable, Hashable {
    public var packets = 0
    public var decodeErrors = 0
    /// A read error other than end of file stopped demuxing (a truncated or damaged file).
    public var readError: String?
    /// Mono samples delivered at the output rate.
    public var outputSamples = 0
    /// Non-finite samples (NaN, ±Inf) met in the input and replaced by 0 before delivery.
    public var nonFiniteSamples = 0
    /// Whether decoding stopped early because the consumer or `endSeconds` asked it to.
    public var stoppedEarly = false

    public init() {}
}

/// Decodes the best audio stream of a file to mono 32-bit float at a chosen rate, streaming.
///
/// libavformat demuxes (`avformat_open_input`, `av_find_best_stream`, `av_read_frame`), libavcodec
/// decodes (`avcodec_send_packet` / `avcodec_receive_frame`), and libswresample downmixes and
/// resamples with default options (`swr_alloc_set_opts2`), as `ffmpeg -ac 1 -ar RATE -f f32le` does,
/// so the samples equal that command's output. One owner frees every FFmpeg handle in `deinit`.
public final class AudioDecoder {
    public let path: String
    public let outputSampleRate: Int
    public let probe: AudioProbe

    // Internal, not private: the seeking path (AudioDecoder+Windows.swift) reads them too.
    var format: UnsafeMutablePointer<AVFormatContext>?
    var codec: UnsafeMutablePointer<AVCodecContext>?
    let streamIndex: Int32
    private var resampler: OpaquePointer?
    private var resamplerInput: (rate: Int32, format: Int32, layout: AVChannelLayout)?
    private var outputBuffer: [Float] = []
    /// The custom I/O of a decoder reading from memory (`MemoryAudioDecoder`); freed after `format`.
    private var memoryInput: MemoryInput?
    /// The gain that keeps the downmix within full scale when stored as integer samples: libswresample
    /// mixes to mono with unnormalized coefficients for float output (stereo becomes 0.707·(L+R), as
    /// `ffmpeg -ac 1 -f f32le` does), but normalizes them so each output row sums to at most 1 for
    /// integer output (stereo becomes 0.5·(L+R), as `ffmpeg -ac 1 -sample_fmt s16` does). This is
    /// the ratio of the two, from `swr_build_matrix2`; 1 for mono input. Known after the first frame.
    public internal(set) var downmixGain: Double = 1

    /// Opens `path` and prepares its best audio stream. Failures carry the reason to record.
    /// `strict` makes the decoder check checksums (FLAC frame CRCs) and report every damaged frame
    /// as an error instead of concealing it; verification uses it.
    public convenience init(path: String, outputSampleRate: Int, strict: Bool = false) throws(TrackFailure) {
        var st = stat()
        if stat(path, &st) != 0 {
            let err = errno
            if err == ENOENT || err == ENOTDIR {
                throw TrackFailure(.missingFile, "no file at \(path); fix the path in the manifest or restore the file")
            }
            throw TrackFailure(.unreadable, "cannot stat \(path): \(String(cString: strerror(err)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw TrackFailure(.notAudio, "\(path) is a folder, not an audio file")
        }
        if access(path, R_OK) != 0 {
            throw TrackFailure(.unreadable, "cannot read \(path): \(String(cString: strerror(errno))); check its permissions")
        }
        if st.st_size == 0 {
            throw TrackFailure(.emptyFile, "\(path) is empty (0 bytes); re-export or re-download it")
        }

        var opened: UnsafeMutablePointer<AVFormatContext>?
        let ret = avformat_open_input(&opened, path, nil, nil)
        guard ret >= 0, let opened else {
            if ret == mulan_averror(EACCES) {
                throw TrackFailure(.unreadable, "cannot read \(path): \(averrorText(ret)); check its permissions")
            }
            if let recognized = Self.recognizedFormat(path) {
                throw TrackFailure(.corrupt, "\(path) looks like \(recognized) but FFmpeg cannot open it "
                                   + "(\(averrorText(ret))); the file is damaged or incomplete, re-download or re-export it")
            }
            throw TrackFailure(.notAudio, "FFmpeg cannot open \(path) as media (\(averrorText(ret))); is it an audio file?")
        }
        try self.init(opened: opened, name: path, outputSampleRate: outputSampleRate, strict: strict, input: nil)
    }

    /// Prepares the best audio stream of an input that `avformat_open_input` opened, taking
    /// ownership of it (and of `input`, the custom I/O it reads through, if any). `name` stands for
    /// the input in messages; a nil `outputSampleRate` keeps the stream's own rate.
    init(opened fmt: UnsafeMutablePointer<AVFormatContext>, name path: String, outputSampleRate: Int?, strict: Bool,
         input: MemoryInput?) throws(TrackFailure) {
        self.path = path
        memoryInput = input
        format = fmt
        var ret = avformat_find_stream_info(fmt, nil)
        if ret < 0 {
            avformat_close_input(&format)
            throw TrackFailure(.corrupt, "cannot read stream information of \(path) (\(averrorText(ret)))")
        }
        var decoder: UnsafePointer<AVCodec>?
        ret = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &decoder, 0)
        if ret < 0 {
            let codecDescription = Self.audioCodecDescription(fmt)
            let hasAudio = codecDescription != "unknown"
            avformat_close_input(&format)
            if ret == mulan_averror_decoder_not_found() {
                throw TrackFailure(.unsupportedCodec, "\(path) has an audio stream whose codec (\(codecDescription)) "
                                   + "this FFmpeg cannot decode; convert it to a common format (FLAC, WAV, MP3, Ogg)")
            }
            if hasAudio {
                // FFmpeg skips audio streams that state no sample rate or channel count.
                throw TrackFailure(.corrupt, "\(path) has an audio stream (\(codecDescription)) but it states no usable "
                                   + "sample rate or channel count; the file is damaged or not what its name says, "
                                   + "re-download or re-export it")
            }
            throw TrackFailure(.noAudioStream, "\(path) has no audio stream")
        }
        streamIndex = ret
        guard let stream = fmt.pointee.streams[Int(ret)], let decoder else {
            avformat_close_input(&format)
            throw TrackFailure(.noAudioStream, "\(path) has no usable audio stream")
        }
        let params = stream.pointee.codecpar!
        guard let ctx = avcodec_alloc_context3(decoder) else {
            avformat_close_input(&format)
            throw TrackFailure(.decodeFailed, "out of memory allocating a decoder for \(path)")
        }
        codec = ctx
        ret = avcodec_parameters_to_context(ctx, params)
        if ret >= 0 {
            // As the ffmpeg CLI does: packet timestamps are in the stream's time base.
            ctx.pointee.pkt_timebase = stream.pointee.time_base
            if strict { ctx.pointee.err_recognition |= AV_EF_CRCCHECK | AV_EF_BITSTREAM | AV_EF_EXPLODE }
            ret = avcodec_open2(ctx, decoder, nil)
        }
        if ret < 0 {
            let codecName = String(cString: decoder.pointee.name)
            avcodec_free_context(&codec)
            avformat_close_input(&format)
            throw TrackFailure(.unsupportedCodec, "cannot open the \(codecName) decoder for \(path) (\(averrorText(ret)))")
        }
        let rate = outputSampleRate ?? Int(ctx.pointee.sample_rate)
        if outputSampleRate == nil && rate <= 0 {
            avcodec_free_context(&codec)
            avformat_close_input(&format)
            throw TrackFailure(.corrupt, "\(path) states no valid sample rate")
        }
        self.outputSampleRate = rate

        // Probe facts.
        let container = String(cString: fmt.pointee.iformat.pointee.name)
        let codecName = String(cString: decoder.pointee.name)
        var duration: Double?
        var exact = fmt.pointee.duration_estimation_method != AVFMT_DURATION_FROM_BITRATE
        if stream.pointee.duration > 0 && stream.pointee.duration != mulan_av_nopts_value() {
            duration = Double(stream.pointee.duration) * av_q2d(stream.pointee.time_base)
        } else if fmt.pointee.duration > 0 && fmt.pointee.duration != mulan_av_nopts_value() {
            duration = Double(fmt.pointee.duration) / Double(AV_TIME_BASE)
        } else {
            exact = false
        }
        var layoutName = [CChar](repeating: 0, count: 128)
        _ = withUnsafePointer(to: &ctx.pointee.ch_layout) { layout in
            av_channel_layout_describe(layout, &layoutName, 128)
        }
        var tags: [AudioProbe.Tag] = []
        Self.collectTags(fmt.pointee.metadata, scope: "format", into: &tags)
        var streamTags: [AudioProbe.Tag] = []
        Self.collectTags(stream.pointee.metadata, scope: "stream", into: &streamTags)
        let formatPairs = Set(tags.map { "\($0.key.lowercased())=\($0.value)" })
        tags += streamTags.filter { !formatPairs.contains("\($0.key.lowercased())=\($0.value)") }

        probe = AudioProbe(
            container: container, codec: codecName,
            sampleRate: Int(ctx.pointee.sample_rate), channels: Int(ctx.pointee.ch_layout.nb_channels),
            channelLayout: String(decoding: layoutName.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
            durationSeconds: duration, durationIsExact: exact && duration != nil,
            bitRate: Int(fmt.pointee.bit_rate), tags: tags)
    }

    deinit {
        if resampler != nil { swr_free(&resampler) }
        if var layout = resamplerInput?.layout { av_channel_layout_uninit(&layout) }
        avcodec_free_context(&codec)
        avformat_close_input(&format)
        memoryInput = nil   // custom I/O outlives the format context that reads through it
    }

    /// The container libavformat recognizes from the first bytes alone (not the file name),
    /// if any (`av_probe_input_format2` with a score above AVPROBE_SCORE_RETRY).
    static func recognizedFormat(_ path: String) -> String? {
        guard let handle = fopen(path, "rb") else { return nil }
        defer { fclose(handle) }
        let size = 1 << 16
        var buffer = [UInt8](repeating: 0, count: size + Int(AVPROBE_PADDING_SIZE))
        let n = fread(&buffer, 1, size, handle)
        guard n > 0 else { return nil }
        return buffer.withUnsafeMutableBufferPointer { buf -> String? in
            "".withCString { emptyName in
                var data = AVProbeData(filename: emptyName, buf: buf.baseAddress, buf_size: Int32(n), mime_type: nil)
                var score = AVPROBE_SCORE_RETRY
                guard let format = av_probe_input_format2(&data, 1, &score) else { return magicFormat(buf.prefix(n)) }
                return String(cString: format.pointee.name)
            }
        }
    }

    /// The container named by a file's magic bytes, for files too short for libavformat's probes
    /// (a file cut inside its header): FLAC, Ogg, RIFF/WAVE, an ID3v2 tag (MP3), an MP4 `ftyp` box.
    static func magicFormat(_ bytes: Slice<UnsafeMutableBufferPointer<UInt8>>) -> String? {
        let b = Array(bytes.prefix(12))
        func at(_ offset: Int, _ magic: String) -> Bool {
            let m = Array(magic.utf8)
            return b.count >= offset + m.count && Array(b[offset..<(offset + m.count)]) == m
        }
        if at(0, "fLaC") { return "flac" }
        if at(0, "OggS") { return "ogg" }
        if at(0, "RIFF") && (b.count < 12 || at(8, "WAVE")) { return "wav" }
        if at(0, "ID3") { return "mp3 (ID3 tag)" }
        if at(4, "ftyp") { return "mp4/m4a" }
        return nil
    }

    /// "name, tag 0x…" of the first audio stream, for messages about codecs we cannot decode.
    private static func audioCodecDescription(_ fmt: UnsafeMutablePointer<AVFormatContext>) -> String {
        for i in 0..<Int(fmt.pointee.nb_streams) {
            guard let par = fmt.pointee.streams[i]?.pointee.codecpar, par.pointee.codec_type == AVMEDIA_TYPE_AUDIO else { continue }
            return "\(String(cString: avcodec_get_name(par.pointee.codec_id))), tag 0x\(String(par.pointee.codec_tag, radix: 16))"
        }
        return "unknown"
    }

    private static func collectTags(_ dict: OpaquePointer?, scope: String, into tags: inout [AudioProbe.Tag]) {
        guard let dict else { return }
        var entry: UnsafeMutablePointer<AVDictionaryEntry>?
        while true {
            entry = av_dict_get(dict, "", entry, AV_DICT_IGNORE_SUFFIX)
            guard let e = entry else { break }
            let key = String(decoding: UnsafeRawBufferPointer(start: e.pointee.key, count: strlen(e.pointee.key)), as: UTF8.self)
            let bytes = UnsafeRawBufferPointer(start: e.pointee.value, count: strlen(e.pointee.value))
            let value = String(decoding: bytes, as: UTF8.self)
            // Decoding replaces invalid sequences with U+FFFD, which changes the byte count unless
            // the bytes were valid (or already held U+FFFD, then re-encoded identically).
            let repaired = !value.utf8.elementsEqual(bytes)
            tags.append(AudioProbe.Tag(scope: scope, key: key, value: value, repaired: repaired))
        }
    }

    /// Decodes the stream (or the segment `[startSeconds, endSeconds)` of the output timeline),
    /// handing mono float chunks to `body`; `body` returns false to stop early.
    /// Corrupt packets are skipped and counted, as the ffmpeg CLI does.
    public func decode(startSeconds: Double? = nil, endSeconds: Double? = nil,
                       body: (UnsafeBufferPointer<Float>) throws -> Bool) throws -> DecodeStats {
        var stats = DecodeStats()
        let startSample = Int(((startSeconds ?? 0) * Double(outputSampleRate)).rounded())
        let endSample = endSeconds.map { Int(($0 * Double(outputSampleRate)).rounded()) }
        var produced = 0  // output samples produced before segment trimming
        var stop = false

        guard let format, let codec else { return stats }
        guard let packet = av_packet_alloc() else { throw TrackFailure(.decodeFailed, "out of memory") }
        var packetVar: UnsafeMutablePointer<AVPacket>? = packet
        defer { av_packet_free(&packetVar) }
        guard let frame = av_frame_alloc() else { throw TrackFailure(.decodeFailed, "out of memory") }
        var frameVar: UnsafeMutablePointer<AVFrame>? = frame
        defer { av_frame_free(&frameVar) }

        // Delivers converted samples, trimming to the requested segment.
        func deliver(_ samples: UnsafeMutableBufferPointer<Float>) throws {
            guard !stop, samples.count > 0 else { return }
            for i in samples.indices where !samples[i].isFinite {
                samples[i] = 0
                stats.nonFiniteSamples += 1
            }
            let lo = max(startSample - produced, 0)
            var hi = samples.count
            if let endSample { hi = min(hi, endSample - produced) }
            produced += samples.count
            if lo < hi {
                stats.outputSamples += hi - lo
                if try !body(UnsafeBufferPointer(rebasing: samples[lo..<hi])) { stop = true; stats.stoppedEarly = true }
            }
            if let endSample, produced >= endSample { stop = true; stats.stoppedEarly = true }
        }

        func drainFrames() throws {
            while !stop {
                let r = avcodec_receive_frame(codec, frame)
                if r == AVERROR_EAGAIN_CODE || r == AVERROR_EOF_CODE { return }
                if r < 0 { stats.decodeErrors += 1; return }
                defer { av_frame_unref(frame) }
                try convert(frame, deliver: deliver)
            }
        }

        while !stop {
            let r = av_read_frame(format, packet)
            if r == AVERROR_EOF_CODE { break }
            if r < 0 {
                if r == AVERROR_EAGAIN_CODE { continue }
                stats.readError = averrorText(r)
                break
            }
            defer { av_packet_unref(packet) }
            if packet.pointee.stream_index != streamIndex { continue }
            stats.packets += 1
            let s = avcodec_send_packet(codec, packet)
            if s < 0 && s != AVERROR_EAGAIN_CODE { stats.decodeErrors += 1 }
            try drainFrames()
        }
        if !stop {
            _ = avcodec_send_packet(codec, nil)
            try drainFrames()
            try flushResampler(deliver: deliver)
        }
        return stats
    }

    /// Converts one decoded frame through the resampler, (re)building it when the frame's
    /// format, rate or layout differs from the last one (as the CLI's filter graph does).
    private func convert(_ frame: UnsafeMutablePointer<AVFrame>,
                         deliver: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        var layout = Self.inputLayout(of: frame, fallbackChannels: codec?.pointee.ch_layout.nb_channels ?? 1)
        defer { av_channel_layout_uninit(&layout) }

        let rate = frame.pointee.sample_rate
        let fmt = frame.pointee.format
        if let current = resamplerInput {
            var currentLayout = current.layout
            let sameLayout = av_channel_layout_compare(&currentLayout, &layout) == 0
            if current.rate != rate || current.format != fmt || !sameLayout {
                try flushResampler(deliver: deliver)
                swr_free(&resampler)
                av_channel_layout_uninit(&currentLayout)
                resamplerInput = nil
            }
        }
        if resampler == nil {
            resampler = try makeResampler(from: &layout, format: fmt, rate: rate)
            if resamplerInput == nil && downmixGain == 1 { downmixGain = Self.integerDownmixGain(from: &layout) }
            var copy = AVChannelLayout()
            av_channel_layout_copy(&copy, &layout)
            resamplerInput = (rate, fmt, copy)
        }
        let inCount = frame.pointee.nb_samples
        let capacity = Int(swr_get_out_samples(resampler, inCount))
        if capacity <= 0 { return }
        if outputBuffer.count < capacity { outputBuffer = [Float](repeating: 0, count: capacity) }
        let converted: Int32 = outputBuffer.withUnsafeMutableBytes { raw in
            var out: UnsafeMutablePointer<UInt8>? = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let input = UnsafeMutableRawPointer(frame.pointee.extended_data)!
                .assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
            return swr_convert(resampler, &out, Int32(capacity), input, inCount)
        }
        if converted < 0 {
            throw TrackFailure(.decodeFailed, "resampling failed for \(path) (\(averrorText(converted)))")
        }
        try outputBuffer.withUnsafeMutableBufferPointer { buf in
            try deliver(UnsafeMutableBufferPointer(rebasing: buf[0..<Int(converted)]))
        }
    }

    /// The channel layout of `frame`'s samples; an unspecified one is taken, as the CLI does, as the
    /// default layout for its channel count (or `fallbackChannels` when the frame gives none). The
    /// caller uninitializes it.
    static func inputLayout(of frame: UnsafeMutablePointer<AVFrame>, fallbackChannels: Int32) -> AVChannelLayout {
        var layout = AVChannelLayout()
        if frame.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame.pointee.ch_layout.nb_channels == 0 {
            let n = frame.pointee.ch_layout.nb_channels > 0 ? frame.pointee.ch_layout.nb_channels : max(fallbackChannels, 1)
            av_channel_layout_default(&layout, n)
        } else {
            _ = withUnsafePointer(to: &frame.pointee.ch_layout) { av_channel_layout_copy(&layout, $0) }
        }
        return layout
    }

    /// A libswresample context from (`layout`, `format`, `rate`) to mono float at the output rate,
    /// with default options, as `ffmpeg -ac 1 -ar RATE` sets it up. Both the full decode and the
    /// seeking path build theirs here, so a window's samples come from the same filter.
    func makeResampler(from layout: inout AVChannelLayout, format: Int32, rate: Int32) throws -> OpaquePointer {
        var mono = AVChannelLayout()
        av_channel_layout_default(&mono, 1)
        var swr: OpaquePointer?
        var ret = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, Int32(outputSampleRate),
                                      &layout, AVSampleFormat(rawValue: format), rate, 0, nil)
        if ret >= 0 { ret = swr_init(swr) }
        guard ret >= 0, let swr else {
            swr_free(&swr)
            throw TrackFailure(.decodeFailed, "cannot set up resampling from \(rate) Hz for \(path) (\(averrorText(ret)))")
        }
        return swr
    }

    /// The ratio of libswresample's mono downmix coefficients for integer output (normalized to
    /// a row sum of at most 1) to those for float output, for `layout`.
    static func integerDownmixGain(from layout: inout AVChannelLayout) -> Double {
        var mono = AVChannelLayout()
        av_channel_layout_default(&mono, 1)
        let n = Int(layout.nb_channels)
        guard n > 1 else { return 1 }
        // A full 64 × 64 matrix (SWR_CH_MAX): libswresample 4.7 may write past the rows it is asked for.
        let side = 64
        guard n <= side else { return 1 }
        var float = [Double](repeating: 0, count: side * side)
        var integer = [Double](repeating: 0, count: side * side)
        let clev = 0.7071067811865476, slev = 0.7071067811865476  // libswresample's defaults (−3 dB)
        let a = swr_build_matrix2(&layout, &mono, clev, slev, 0, Double(Int32.max), 1, &float, side,
                                  AV_MATRIX_ENCODING_NONE, nil)
        let b = swr_build_matrix2(&layout, &mono, clev, slev, 0, 1, 1, &integer, side, AV_MATRIX_ENCODING_NONE, nil)
        guard a >= 0, b >= 0 else { return 1 }
        let sumFloat = float[0..<n].reduce(0) { $0 + abs($1) }
        let sumInteger = integer[0..<n].reduce(0) { $0 + abs($1) }
        return sumFloat > 0 && sumInteger > 0 ? min(1, sumInteger / sumFloat) : 1
    }

    /// Drains the samples the resampler still holds at the end of the stream.
    private func flushResampler(deliver: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        guard let resampler else { return }
        while true {
            let capacity = max(Int(swr_get_out_samples(resampler, 0)), 0) + 64
            if outputBuffer.count < capacity { outputBuffer = [Float](repeating: 0, count: capacity) }
            let converted: Int32 = outputBuffer.withUnsafeMutableBytes { raw in
                var out: UnsafeMutablePointer<UInt8>? = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                return swr_convert(resampler, &out, Int32(capacity), nil, 0)
            }
            if converted <= 0 { return }
            try outputBuffer.withUnsafeMutableBufferPointer { buf in
                try deliver(UnsafeMutableBufferPointer(rebasing: buf[0..<Int(converted)]))
            }
        }
    }
}
