import Foundation

/// The ffmpeg CLI's `ebur128` filter (FFmpeg's own R128 meter, independent of libebur128) on a
/// file: the oracle of the loudness tests.
///
/// `ffmpeg -nostats -i FILE -af ebur128=peak=true:metadata=1,ametadata=mode=print:file=- -f null -`
/// prints the Summary (I and LRA to 0.1 LU, true peak to 0.1 dB) on standard error and, per
/// 100 ms frame, the running values as frame metadata (I and LRA to 0.001 LU) on standard output.
/// I and LRA are taken from the last frame (the Summary's values, unrounded: the test checks that
/// they agree with it); the true peak from the Summary. The filter works at 48 kHz only: ffmpeg
/// resamples other rates to 48 kHz before it (and measures the true peak at 192 kHz).
public struct FFmpegLoudness: Sendable, CustomStringConvertible {
    /// Integrated loudness, LUFS (nil: "-inf", every block below the gate).
    public var integrated: Double?
    public var range: Double
    /// True peak, dBTP (nil: "-inf").
    public var truePeak: Double?
    /// The Summary's rounded I and LRA.
    public var summaryIntegrated: Double?
    public var summaryRange: Double

    public var description: String {
        "ffmpeg ebur128: I \(integrated.map { String(format: "%.3f", $0) } ?? "-inf") LUFS, LRA "
            + String(format: "%.3f", range) + " LU, true peak \(truePeak.map { String(format: "%.1f", $0) } ?? "-inf") dBTP"
    }

    public static func measure(_ path: String) throws -> FFmpegLoudness {
        let r = try TestProcess.run("ffmpeg", ["-nostdin", "-hide_banner", "-nostats", "-i", path, "-af",
                                               "ebur128=peak=true:metadata=1,ametadata=mode=print:file=-",
                                               "-f", "null", "-"])
        if r.status != 0 { throw TestFailure("ffmpeg ebur128 on \(path) failed: \(r.stderr)") }
        func last(_ prefix: String, in text: String) -> String? {
            text.split(separator: "\n").last { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
        }
        func summary(_ label: String) -> String? {
            guard let range = r.stderr.range(of: "Summary:") else { return nil }
            let tail = r.stderr[range.upperBound...]
            guard let line = tail.split(separator: "\n").first(where: {
                $0.trimmingCharacters(in: .whitespaces).hasPrefix(label)
            }) else { return nil }
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
        }
        func number(_ text: String?) -> Double? {
            guard let text, text != "-inf", let v = Double(text.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                return nil
            }
            return v
        }
        guard let rangeText = last("lavfi.r128.LRA=", in: r.stdoutText), let range = number(rangeText),
              let summaryRange = number(summary("LRA:")), summary("Peak:") != nil else {
            throw TestFailure("no ebur128 summary or metadata for \(path): \(r.stderr.suffix(800))")
        }
        return FFmpegLoudness(integrated: number(last("lavfi.r128.I=", in: r.stdoutText)), range: range,
                              truePeak: number(summary("Peak:")), summaryIntegrated: number(summary("I:")),
                              summaryRange: summaryRange)
    }
}
