/// How much audio the seeking path decodes and throws away before a window, per codec, and why.
///
/// After a seek the decoder has lost its state (`avcodec_flush_buffers`): the first frames it
/// gives are wrong or missing until that state is rebuilt. Decoding from `preroll` before the
/// window and discarding that span makes the window's samples converge to those of a decode from
/// the start. The figures are the codec's reach back in time, with margin; the per-codec test
/// (`SeekingDecodeTests`) measures the result against full decoding (SNR ≥ 60 dB required).
public enum SeekPreroll {
    /// Seconds of decoder pre-roll for a codec (FFmpeg's codec id name), or nil when mulan knows
    /// no safe figure for it: such tracks are decoded in full.
    ///
    /// - `pcm_*`, `flac`: every frame decodes on its own (FLAC frames carry their own warm-up
    ///   samples), so no pre-roll.
    /// - `mp3`: a frame's main data may start up to 511 bytes back in earlier frames (the bit
    ///   reservoir), which at 32 kbit/s and 44.1 kHz is about 5 frames of 1152 samples, and the
    ///   synthesis filterbank and IMDCT overlap one granule: 0.3 s (≈ 11 frames at 44.1 kHz).
    /// - `aac`: none, decoded in full. Each frame overlaps only the previous one (a pre-roll of
    ///   0.1 s, `experimentalSeconds`, would cover it, and does: windows are exact for a stream
    ///   without noise substitution), but perceptual noise substitution (PNS, which FFmpeg's own
    ///   encoder uses by default) fills bands with noise from a generator whose state runs through
    ///   the whole stream, so after a seek those bands differ from a full decode: as low as 32 dB SNR
    ///   measured, below the 60 dB bound. Whether a stream uses PNS is not known before decoding it.
    /// - `vorbis`: the first packet after a reset only primes the overlap-add; blocks are at most
    ///   8192 samples (0.19 s at 44.1 kHz): 0.25 s.
    /// - `opus`: RFC 7845 §4.6 asks for at least 80 ms of pre-roll for the decoder state (SILK/CELT
    ///   prediction, the post-filter) to converge: 0.2 s, 2.5× that, because convergence is only
    ///   approximate and the window must match full decoding within the documented bound.
    public static func decoderSeconds(codec: String) -> Double? {
        if codec.hasPrefix("pcm_") { return 0 }
        switch codec {
        case "flac": return 0
        case "mp3": return 0.3
        case "vorbis": return 0.25
        case "opus": return 0.2
        default: return nil
        }
    }

    /// Pre-roll for codecs that seek exactly in some streams but not in all (see `aac` above):
    /// used only when a test asks for it, to measure what seeking would give.
    static func experimentalSeconds(codec: String) -> Double? {
        codec == "aac" ? 0.1 : decoderSeconds(codec: codec)
    }

    /// Seconds of input fed to a fresh resampler before the window: libswresample's default
    /// polyphase filter (filter_size 32 at the lower of the two rates) reaches about 1 ms around
    /// each sample at 44.1 → 16 kHz; 20 ms keeps its start-up (it assumes no history) far from
    /// the window. The start is then moved back onto the common grid of the two rates (10 ms for
    /// 44.1 ↔ 16 kHz), so that the window's output samples fall on the same instants as a decode
    /// from the start.
    public static let resamplerSeconds = 0.02

    /// A window that starts less than this far (seconds of audio) past where decoding already is
    /// is reached by decoding on instead of seeking: a seek and its pre-roll cost about as much.
    public static let decodeOnSeconds = 2.0
}
