import Foundation

/// Level measurements of one clip.
public struct ClipStats: Sendable, Hashable, Codable {
    /// Root mean square level, linear (1.0 = full scale).
    public var rms: Double
    /// Largest absolute sample value, linear.
    public var peak: Double
    /// Share of samples that are digital silence (|x| < 2^-16, i.e. zero once stored as 16-bit).
    public var silenceShare: Double
    /// The mean sample value (DC offset), linear. A constant offset is inaudible, so silence is
    /// judged on the RMS without it (`acRMS`); `rms` and `peak` include it, as stored.
    public var dcOffset: Double = 0

    public static let digitalSilence: Float = 1.0 / 65536.0

    public init(rms: Double, peak: Double, silenceShare: Double) {
        self.rms = rms
        self.peak = peak
        self.silenceShare = silenceShare
    }

    public init(measuring samples: UnsafeBufferPointer<Float>) {
        var sumSquares = 0.0
        var sum = 0.0
        var peak: Float = 0
        var silent = 0
        for x in samples {
            let v = x.isFinite ? x : 0
            sumSquares += Double(v) * Double(v)
            sum += Double(v)
            let a = abs(v)
            if a > peak { peak = a }
            if a < Self.digitalSilence { silent += 1 }
        }
        let n = max(samples.count, 1)
        self.rms = (sumSquares / Double(n)).squareRoot()
        self.peak = Double(peak)
        self.silenceShare = Double(silent) / Double(n)
        self.dcOffset = sum / Double(n)
    }

    /// RMS level in dBFS (−∞ for a zero signal).
    public var rmsDB: Double { rms > 0 ? 20 * log10(rms) : -.infinity }

    /// RMS of the signal without its DC offset (its standard deviation), linear.
    public var acRMS: Double { max(rms * rms - dcOffset * dcOffset, 0).squareRoot() }
}
