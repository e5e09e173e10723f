import Foundation

internal import CMulanEBUR128
import MulanCore

/// Measures the EBU R128 loudness of a mono float stream fed in chunks: integrated loudness and
/// loudness range through libebur128's C API (`ebur128_init(1, rate, I | LRA)`,
/// `ebur128_set_channel(0, EBUR128_CENTER)`, `ebur128_add_frames_float`, then
/// `ebur128_loudness_global`, `ebur128_loudness_range`), the true peak by `TruePeakMeter` (libebur128's
/// interpolator design, vectorized; within 0.01 dB of `ebur128_true_peak`). Exact gating (no
/// histogram mode), so values do not depend on a bin width.
///
/// The mono channel is weighted 1.0, as a centre speaker (and as the ffmpeg CLI's `ebur128` filter
/// weights a mono stream); not as dual mono, which would add 3 dB. Never throws: a failing call
/// gives a `failed` result that names it.
public final class LoudnessMeter {
    public let sampleRate: Int
    /// Whether the true peak is measured (`TruePeakMeter`: 4× oversampling below 96 kHz).
    public let truePeak: Bool
    private var peakMeter: TruePeakMeter?
    // The one owner of the C state: freed in deinit.
    private var state: UnsafeMutablePointer<ebur128_state>?
    private var failure: String?
    private var frames = 0

    public init(sampleRate: Int, truePeak: Bool = true) {
        self.sampleRate = sampleRate
        self.truePeak = truePeak
        let mode = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue)
        guard sampleRate > 0, let state = ebur128_init(1, UInt(sampleRate), mode) else {
            failure = "ebur128_init(1 channel, \(sampleRate) Hz) failed (out of memory, or an unsupported rate)"
            return
        }
        self.state = state
        if truePeak { peakMeter = TruePeakMeter(sampleRate: sampleRate) }
        let set = ebur128_set_channel(state, 0, Int32(EBUR128_CENTER.rawValue))
        if set != Int32(EBUR128_SUCCESS.rawValue) { failure = "ebur128_set_channel(0, CENTER) failed (error \(set))" }
    }

    deinit {
        if state != nil { ebur128_destroy(&state) }
    }

    /// Feeds finite float samples (full scale 1), scaled by `gain` when it is not 1.
    public func feed(_ chunk: UnsafeBufferPointer<Float>, gain: Float = 1) {
        guard failure == nil, let state, let base = chunk.baseAddress, chunk.count > 0 else { return }
        let result: Int32
        if gain == 1 {
            result = ebur128_add_frames_float(state, base, chunk.count)
            peakMeter?.feed(chunk)
        } else {
            let scaled = chunk.map { $0 * gain }
            result = scaled.withUnsafeBufferPointer {
                peakMeter?.feed($0)
                return ebur128_add_frames_float(state, $0.baseAddress, $0.count)
            }
        }
        if result != Int32(EBUR128_SUCCESS.rawValue) {
            failure = "ebur128_add_frames_float failed after \(frames) samples (error \(result))"
            return
        }
        frames += chunk.count
    }

    /// The loudness of everything fed so far. The meter may be fed more and asked again.
    public func result() -> ClipLoudness {
        if let failure { return .failed(failure) }
        guard let state else { return .failed("libebur128 has no state") }
        if frames == 0 { return .failed("no samples were measured") }
        var integrated = 0.0, range = 0.0
        let ok = Int32(EBUR128_SUCCESS.rawValue)
        if ebur128_loudness_global(state, &integrated) != ok { return .failed("ebur128_loudness_global failed") }
        if ebur128_loudness_range(state, &range) != ok { return .failed("ebur128_loudness_range failed") }
        let peak = Double(peakMeter?.truePeak ?? 0)
        // libebur128 gives −HUGE_VAL when every block is below the absolute gate.
        let lufs: Double? = integrated.isFinite ? integrated : nil
        return ClipLoudness(status: lufs == nil ? .belowGate : .measured, integratedLUFS: lufs,
                            loudnessRange: range.isFinite ? range : nil,
                            truePeakDB: peak > 0 && peak.isFinite ? 20 * log10(peak) : nil)
    }

    /// Measures a whole clip (without the true peak when `truePeak` is false: `truePeakDB` is nil).
    public static func measure(_ samples: UnsafeBufferPointer<Float>, sampleRate: Int, truePeak: Bool = true) -> ClipLoudness {
        let meter = LoudnessMeter(sampleRate: sampleRate, truePeak: truePeak)
        meter.feed(samples)
        return meter.result()
    }

    /// Measures a whole clip.
    public static func measure(_ samples: [Float], sampleRate: Int, truePeak: Bool = true) -> ClipLoudness {
        samples.withUnsafeBufferPointer { measure($0, sampleRate: sampleRate, truePeak: truePeak) }
    }

    /// Measures an audio file (a stored FLAC clip) decoded to mono float at `sampleRate`, as
    /// ingest decodes. A file that cannot be decoded gives a `failed` result saying why.
    public static func measure(file path: String, sampleRate: Int, truePeak: Bool = true) -> ClipLoudness {
        let meter = LoudnessMeter(sampleRate: sampleRate, truePeak: truePeak)
        do {
            let decoder = try AudioDecoder(path: path, outputSampleRate: sampleRate)
            _ = try decoder.decode { chunk in
                meter.feed(chunk, gain: Float(decoder.downmixGain))
                return true
            }
        } catch {
            return .failed("\(path) could not be decoded to measure its loudness: \(error)")
        }
        return meter.result()
    }
}
