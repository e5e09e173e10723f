internal import CMulanFFmpeg

/// The text FFmpeg gives for an error code (`av_strerror`).
func averrorText(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    _ = buffer.withUnsafeMutableBufferPointer { av_strerror(code, $0.baseAddress, 256) }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

let AVERROR_EOF_CODE = mulan_averror_eof()
let AVERROR_EAGAIN_CODE = mulan_averror(EAGAIN)

/// Versions of the FFmpeg libraries linked at run time, e.g. "libavcodec 59.37.100".
public enum FFmpegVersions {
    public static var summary: String {
        func v(_ x: UInt32) -> String { "\(x >> 16).\((x >> 8) & 0xff).\(x & 0xff)" }
        return "libavformat \(v(avformat_version())), libavcodec \(v(avcodec_version())), "
            + "libswresample \(v(swresample_version())), libavutil \(v(avutil_version()))"
    }

    /// Silences FFmpeg's own logging below errors (mulan reports problems itself).
    public static func quietLibraryLogs() {
        av_log_set_level(AV_LOG_FATAL)
    }
}
