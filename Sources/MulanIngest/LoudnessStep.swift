import Foundation
import MulanCore
import MulanMedia

/// Ingest's loudness step for one clip that will be stored: measures it and, with
/// `--loudness-target`, scales it first (docs/ingest.md#loudness).
///
/// Normalization: gain = target − integrated loudness, lowered when the true peak would pass
/// `--loudness-max-true-peak` less `ceilingMargin` (true peak scales with the gain exactly, its
/// interpolator being linear). A gain moves the integrated loudness by exactly the gain unless 400 ms blocks cross the
/// −70 LUFS absolute gate, so the scaled clip is measured again and, when it misses the target
/// by more than `tolerance`, the gain is corrected (at most `maxRounds` measurements). The
/// measurement recorded is always that of the samples handed to the FLAC encoder.
enum LoudnessStep {
    /// How close to the target a normalized clip must come before the correction stops (LU).
    static let tolerance = 0.01
    static let maxRounds = 3
    /// Held below the ceiling so that rounding to 16-bit samples (which moves a true peak near
    /// −1 dBTP by about 0.0002 dB) cannot lift the stored clip over it.
    static let ceilingMargin = 0.01

    /// Measures `samples` (and normalizes them in place when the settings ask for it).
    /// With `--loudness off` nothing is measured (nil); `integrated` leaves the true peak out.
    static func apply(_ samples: inout [Float], settings: IngestSettings)
        -> (loudness: ClipLoudness?, normalization: LoudnessNormalization?) {
        let rate = settings.sampleRate
        switch settings.loudness {
        case .off: return (nil, nil)
        case .integrated: return (LoudnessMeter.measure(samples, sampleRate: rate, truePeak: false), nil)
        case .full: break
        }
        let before = LoudnessMeter.measure(samples, sampleRate: rate)
        guard let target = settings.loudnessTargetLUFS else { return (before, nil) }
        // Below the gate or unmeasurable: there is no loudness to move to the target.
        guard let lufs = before.integratedLUFS else {
            return (before, LoudnessNormalization(before: before, gainDB: 0, limitedByTruePeak: false))
        }
        let ceiling = settings.loudnessMaxTruePeakDB - ceilingMargin
        var gainDB = 0.0
        var limited = false
        var now = before
        var current = lufs
        for _ in 0..<maxRounds {
            var wanted = gainDB + (target - current)
            if let peak = before.truePeakDB, peak + wanted > ceiling {
                wanted = ceiling - peak
                limited = true
            } else {
                limited = false
            }
            if abs(wanted - gainDB) < 1e-9 { break }
            let factor = Float(pow(10, (wanted - gainDB) / 20))
            for i in samples.indices { samples[i] *= factor }
            gainDB = wanted
            now = LoudnessMeter.measure(samples, sampleRate: rate)
            guard let measured = now.integratedLUFS, !limited, abs(measured - target) > tolerance else { break }
            current = measured
        }
        return (now, LoudnessNormalization(before: before, gainDB: gainDB, limitedByTruePeak: limited))
    }
}
