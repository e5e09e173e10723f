import Foundation

internal import CMulanChromaprint
internal import CMulanFFmpeg
import MulanCore

/// Computes a raw Chromaprint fingerprint of a mono stream fed in chunks, through the library's C
/// API (`chromaprint_new`, `chromaprint_start(11025, 1)`, `chromaprint_feed` with 16-bit samples,
/// `chromaprint_finish`, `chromaprint_get_raw_fingerprint`). Ingest feeds it the samples it decodes
/// anyway, so fingerprinting costs no second decode. Never throws: a failure becomes a
/// `Fingerprint` with status `failed` and the call that failed.
///
/// Chromaprint computes at 11025 Hz and resamples any other rate itself, with a scalar integer
/// filter loop that cost more than a third of the fingerprint's time. So the stream is brought to
/// 11025 Hz 16-bit here by libswresample (vectorized), set up as Chromaprint's `fpcalc` tool sets
/// it up to match the library's own resampler (filter length 16, phase shift 8, linear
/// interpolation, cutoff 0.8), and Chromaprint is started at 11025 Hz, where it does not resample.
public final class Fingerprinter {
    /// The rate of the stream fed to `feed`.
    public let sampleRate: Int
    /// The rate Chromaprint computes at; fed at this rate it does not resample.
    public static let chromaprintRate = 11025
    private var context: OpaquePointer?
    /// libswresample: mono float at `sampleRate` to mono signed 16-bit at 11025 Hz (rounded to
    /// nearest, clipped).
    private var resampler: OpaquePointer?
    private var failure: String?
    private var samples = 0
    private var sumSquares = 0.0
    /// Samples per step of `feed`, and its two buffers (scaled input, resampled output).
    private static let block = 8192
    private let scaled = UnsafeMutableBufferPointer<Float>.allocate(capacity: block)
    private var output = UnsafeMutableBufferPointer<Int16>.allocate(capacity: 0)

    public init(sampleRate: Int) {
        self.sampleRate = sampleRate
        context = chromaprint_new(Int32(CHROMAPRINT_ALGORITHM_DEFAULT.rawValue))
        if context == nil {
            failure = "chromaprint_new failed (out of memory?)"
        } else if chromaprint_start(context, Int32(Self.chromaprintRate), 1) != 1 {
            failure = "chromaprint_start(\(Self.chromaprintRate) Hz, mono) failed"
        } else {
            resampler = Self.makeResampler(from: sampleRate)
            if resampler == nil { failure = "cannot set up resampling from \(sampleRate) Hz to \(Self.chromaprintRate) Hz" }
        }
    }

    deinit {
        if let context { chromaprint_free(context) }
        swr_free(&resampler)
        scaled.deallocate()
        output.deallocate()
    }

    private static func makeResampler(from rate: Int) -> OpaquePointer? {
        guard rate > 0 else { return nil }
        var monoOut = AVChannelLayout(), monoIn = AVChannelLayout()
        av_channel_layout_default(&monoOut, 1)
        av_channel_layout_default(&monoIn, 1)
        defer { av_channel_layout_uninit(&monoOut); av_channel_layout_uninit(&monoIn) }
        var swr: OpaquePointer?
        guard swr_alloc_set_opts2(&swr, &monoOut, AV_SAMPLE_FMT_S16, Int32(chromaprintRate),
                                  &monoIn, AV_SAMPLE_FMT_FLT, Int32(rate), 0, nil) >= 0, let context = swr else {
            swr_free(&swr)
            return nil
        }
        let raw = UnsafeMutableRawPointer(context)
        let ok = av_opt_set_int(raw, "filter_size", 16, 0) >= 0 && av_opt_set_int(raw, "phase_shift", 8, 0) >= 0
            && av_opt_set_int(raw, "linear_interp", 1, 0) >= 0 && av_opt_set_double(raw, "cutoff", 0.8, 0) >= 0
        guard ok, swr_init(context) >= 0 else {
            swr_free(&swr)
            return nil
        }
        return context
    }

    /// Feeds float samples (full scale 1) scaled by `gain`, rounded to 16-bit with clipping, as
    /// the integer downmix of stored clips is. Works through the chunk in blocks, so a 30-s clip fed
    /// at once needs no clip-sized buffer here or inside libswresample.
    public func feed(_ chunk: UnsafeBufferPointer<Float>, gain: Float = 1) {
        guard let base = chunk.baseAddress else { return }
        var start = 0
        while start < chunk.count, failure == nil {
            let n = min(Self.block, chunk.count - start)
            var input = UnsafePointer(base + start)
            if gain != 1 {
                for i in 0..<n { scaled[i] = input[i] * gain }
                input = UnsafePointer(scaled.baseAddress!)
            }
            sumSquares += Self.sumOfSquares(UnsafeBufferPointer(start: input, count: n))
            samples += n
            convertAndFeed(input, count: n)
            start += n
        }
    }

    /// The sum of squares, in double precision, of vectorized partial sums.
    static func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
        var acc = SIMD4<Double>(repeating: 0)
        var i = 0
        let n = x.count
        guard let p = x.baseAddress else { return 0 }
        while i + 4 <= n {
            let v = SIMD4<Double>(SIMD4<Float>(p[i], p[i + 1], p[i + 2], p[i + 3]))
            acc += v * v
            i += 4
        }
        var total = acc.sum()
        while i < n {
            total += Double(p[i]) * Double(p[i])
            i += 1
        }
        return total
    }

    /// Resamples `count` samples at `input` (nil: drains the filter) and feeds what comes out.
    private func convertAndFeed(_ input: UnsafePointer<Float>?, count: Int) {
        guard failure == nil, let resampler else { return }
        repeat {
            let capacity = Int(swr_get_out_samples(resampler, Int32(count))) + 64
            if output.count < capacity {
                output.deallocate()
                output = .allocate(capacity: capacity)
            }
            var out: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(output.baseAddress!).assumingMemoryBound(to: UInt8.self)
            let produced: Int32
            if let input {
                var source: UnsafePointer<UInt8>? = UnsafeRawPointer(input).assumingMemoryBound(to: UInt8.self)
                produced = swr_convert(resampler, &out, Int32(capacity), &source, Int32(count))
            } else {
                produced = swr_convert(resampler, &out, Int32(capacity), nil, 0)
            }
            if produced < 0 {
                failure = "resampling to \(Self.chromaprintRate) Hz failed after \(samples) samples (\(averrorText(produced)))"
                return
            }
            if produced == 0 { return }
            if chromaprint_feed(context, output.baseAddress, produced) != 1 {
                failure = "chromaprint_feed failed after \(samples) samples"
                return
            }
        } while input == nil
    }

    /// Finishes and returns the fingerprint with its status.
    public func finish() -> Fingerprint {
        let duration = Double(samples) / Double(sampleRate)
        var result = Fingerprint(algorithm: Int(CHROMAPRINT_ALGORITHM_DEFAULT.rawValue), sampleRate: sampleRate,
                                 durationSeconds: duration, itemSeconds: 4096.0 / 3 / 11025, items: [], status: .failed)
        if let context {
            let itemSamples = chromaprint_get_item_duration(context)
            if itemSamples > 0 { result.itemSeconds = Double(itemSamples) / 11025 }
        }
        convertAndFeed(nil, count: 0)
        if failure == nil, chromaprint_finish(context) != 1 { failure = "chromaprint_finish failed" }
        if failure == nil {
            var raw: UnsafeMutablePointer<UInt32>?
            var size: Int32 = 0
            if chromaprint_get_raw_fingerprint(context, &raw, &size) == 1 {
                if let raw, size > 0 { result.items = Array(UnsafeBufferPointer(start: raw, count: Int(size))) }
                if let raw { chromaprint_dealloc(raw) }
            } else {
                failure = "chromaprint_get_raw_fingerprint failed"
            }
        }
        if let failure {
            result.items = []
            result.detail = failure
            return result
        }
        let rms = samples > 0 ? (sumSquares / Double(samples)).squareRoot() : 0
        let db = rms > 0 ? 20 * log10(rms) : -.infinity
        if samples > 0 && db < Fingerprint.silenceDB {
            result.status = .silent
            result.detail = db.isFinite ? String(format: "the audio's RMS level is %.1f dBFS, below %.0f dBFS", db, Fingerprint.silenceDB)
                : "the audio is digital silence"
            return result
        }
        (result.status, result.detail) = Fingerprint.judge(result.items, itemSeconds: result.itemSeconds)
        if samples == 0 { result.detail = "no audio was decoded" }
        return result
    }
}
