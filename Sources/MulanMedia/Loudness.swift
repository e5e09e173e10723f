import Foundation
import MulanCore

/// Measures the EBU R128 loudness of a mono float stream fed in chunks: integrated loudness and
/// loudness range by `GatedLoudnessMeter` (libebur128 1.2.6's exact-mode K-weighting and gating,
/// our own code; within 1e-6 LU of `ebur128_loudness_global` / `ebur128_loudness_range`), the true
/// peak by `TruePeakMeter` (libebur128's interpolator design, vectorized; within 0.01 dB of
/// `ebur128_true_peak`). Exact gating (no histogram), so values do not depend on a bin width.
///
/// The mono channel is weighted 1.0, as a centre speaker (and as the ffmpeg CLI's `ebur128` filter
/// weights a mono stream); not as dual mono, which would add 3 dB. Never throws: a rate outside
/// 16 Hz … 2.8224 MHz gives a `failed` result that says so.
public final class LoudnessMeter {
    public let sampleRate: Int
    /// Whether the true peak is measured (`TruePeakMeter`: 4× oversampling below 96 kHz).
    public let truePeak: Bool
    private var peakMeter: TruePeakMeter?
    private var gated: GatedLoudnessMeter?
    private var frames = 0

    public init(sampleRate: Int, truePeak: Bool = true) {
        self.sampleRate = sampleRate
        self.truePeak = truePeak
        gated = GatedLoudnessMeter(sampleRate: sampleRate)
        if truePeak && gated != nil { peakMeter = TruePeakMeter(sampleRate: sampleRate) }
    }

    /// Feeds finite float samples (full scale 1), scaled by `gain` when it is not 1.
    public func feed(_ chunk: UnsafeBufferPointer<Float>, gain: Float = 1) {
        guard gated != nil, chunk.count > 0 else { return }
        gated!.feed(chunk, gain: gain)
        if peakMeter != nil {
            if gain == 1 {
                peakMeter!.feed(chunk)
            } else {
                chunk.map { $0 * gain }.withUnsafeBufferPointer { peakMeter!.feed($0) }
            }
        }
        frames += chunk.count
    }

    /// The loudness of everything fed so far. The meter may be fed more and asked again.
    public func result() -> ClipLoudness {
        guard let gated else {
            return .failed("no loudness meter for \(sampleRate) Hz: the rate must be 16 Hz to 2.8224 MHz")
        }
        if frames == 0 { return .failed("no samples were measured") }
        let integrated = gated.integrated, range = gated.range
        let peak = Double(peakMeter?.truePeak ?? 0)
        // −∞ when every block is below the absolute gate.
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
