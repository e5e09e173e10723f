internal import CMulanFFmpeg
import MulanCore

/// Encodes mono float samples as a FLAC file with libavcodec's FLAC encoder and libavformat's
/// FLAC muxer (`avcodec_find_encoder(AV_CODEC_ID_FLAC)`, `avformat_alloc_output_context2(…, "flac", …)`).
///
/// Samples are quantized as libswresample does (`lrintf(x · 2^15)` clipped, for 16-bit), so the
/// output is deterministic: the same samples give the same bytes (bit-exact flags, no timestamps).
public enum FLACWriter {
    public struct EncodeError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Writes `samples` (mono, `sampleRate` Hz) to `path` as FLAC with `bits` (16 or 24) per sample.
    public static func write(_ samples: UnsafeBufferPointer<Float>, sampleRate: Int, bits: Int,
                             to path: String) throws(EncodeError) {
        func check(_ ret: Int32, _ what: String) throws(EncodeError) {
            if ret < 0 { throw EncodeError(message: "\(what) failed for \(path): \(averrorText(ret))") }
        }
        guard let encoder = avcodec_find_encoder(AV_CODEC_ID_FLAC) else {
            throw EncodeError(message: "this FFmpeg has no FLAC encoder")
        }
        var output: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&output, nil, "flac", path), "avformat_alloc_output_context2")
        guard let oc = output else { throw EncodeError(message: "no FLAC muxer") }
        var codecContext: UnsafeMutablePointer<AVCodecContext>? = avcodec_alloc_context3(encoder)
        var ioOpen = false
        defer {
            if ioOpen { avio_closep(&oc.pointee.pb) }
            avcodec_free_context(&codecContext)
            avformat_free_context(oc)
        }
        guard let ctx = codecContext, let stream = avformat_new_stream(oc, nil) else {
            throw EncodeError(message: "out of memory setting up FLAC encoding")
        }
        ctx.pointee.sample_rate = Int32(sampleRate)
        av_channel_layout_default(&ctx.pointee.ch_layout, 1)
        ctx.pointee.sample_fmt = bits == 24 ? AV_SAMPLE_FMT_S32 : AV_SAMPLE_FMT_S16
        ctx.pointee.bits_per_raw_sample = Int32(bits)
        ctx.pointee.time_base = AVRational(num: 1, den: Int32(sampleRate))
        ctx.pointee.flags |= AV_CODEC_FLAG_BITEXACT
        oc.pointee.flags |= AVFMT_FLAG_BITEXACT
        try check(avcodec_open2(ctx, encoder, nil), "avcodec_open2 (FLAC)")
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, ctx), "avcodec_parameters_from_context")
        stream.pointee.time_base = ctx.pointee.time_base
        try check(avio_open(&oc.pointee.pb, path, AVIO_FLAG_WRITE), "avio_open")
        ioOpen = true
        // No 8 KiB PADDING metadata block (the muxer's default): clips are never re-tagged in place,
        // and at tens of millions of clips the padding would cost hundreds of gigabytes.
        oc.pointee.metadata_header_padding = 0
        try check(avformat_write_header(oc, nil), "avformat_write_header")

        var frame: UnsafeMutablePointer<AVFrame>? = av_frame_alloc()
        var packet: UnsafeMutablePointer<AVPacket>? = av_packet_alloc()
        defer { av_frame_free(&frame); av_packet_free(&packet) }
        guard let frame, let packet else { throw EncodeError(message: "out of memory") }

        func drain() throws(EncodeError) {
            while true {
                let r = avcodec_receive_packet(ctx, packet)
                if r == AVERROR_EAGAIN_CODE || r == AVERROR_EOF_CODE { return }
                try check(r, "avcodec_receive_packet")
                packet.pointee.stream_index = stream.pointee.index
                av_packet_rescale_ts(packet, ctx.pointee.time_base, stream.pointee.time_base)
                try check(av_write_frame(oc, packet), "av_write_frame")
                av_packet_unref(packet)
            }
        }

        let frameSize = ctx.pointee.frame_size > 0 ? Int(ctx.pointee.frame_size) : 4608
        var offset = 0
        while offset < samples.count {
            let n = min(frameSize, samples.count - offset)
            frame.pointee.nb_samples = Int32(n)
            frame.pointee.format = ctx.pointee.sample_fmt.rawValue
            frame.pointee.sample_rate = Int32(sampleRate)
            av_channel_layout_default(&frame.pointee.ch_layout, 1)
            frame.pointee.pts = Int64(offset)
            try check(av_frame_get_buffer(frame, 0), "av_frame_get_buffer")
            let data = frame.pointee.data.0!
            let source = samples.baseAddress! + offset
            if bits == 24 {
                let out = UnsafeMutableRawPointer(data).assumingMemoryBound(to: Int32.self)
                for i in 0..<n { out[i] = quantize24(source[i]) }
            } else {
                let out = UnsafeMutableRawPointer(data).assumingMemoryBound(to: Int16.self)
                for i in 0..<n { out[i] = quantize16(source[i]) }
            }
            try check(avcodec_send_frame(ctx, frame), "avcodec_send_frame")
            av_frame_unref(frame)
            try drain()
            offset += n
        }
        try check(avcodec_send_frame(ctx, nil), "avcodec_send_frame (flush)")
        try drain()
        try check(av_write_trailer(oc), "av_write_trailer")
    }

    /// Float to 16-bit as libswresample converts (round half to even, clip); NaN becomes 0.
    ///
    /// Clipped first (exact in float), then rounded by adding and subtracting 1.5 · 2²³, which
    /// rounds to an integer under the default rounding mode for |v| < 2²²: the build targets
    /// baseline x86-64, which has no rounding instruction, so `rounded(.toNearestOrEven)` is a call
    /// to `rint` per sample and keeps the encoder's conversion loop from vectorizing.
    @inline(__always) static func quantize16(_ x: Float) -> Int16 {
        let v = x * 32768
        let clipped = v.isNaN ? 0 : Swift.min(Swift.max(v, -32768), 32767)
        return Int16(truncatingIfNeeded: Int32((clipped + 12_582_912) - 12_582_912))
    }

    /// Float to 24-bit left-aligned in 32 bits (FFmpeg's S32 layout for 24-bit FLAC).
    @inline(__always) static func quantize24(_ x: Float) -> Int32 {
        let v = (Double(x) * 8_388_608).rounded(.toNearestOrEven)
        return Int32(v.isNaN ? 0 : Swift.min(Swift.max(v, -8_388_608), 8_388_607)) << 8
    }
}
