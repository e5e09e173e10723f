import Foundation

/// A per-clip measure that `--keep` rules may name beside the prompts, read from the catalog's
/// `clips` row when the clip is decided.
public struct ClipMeasure: Sendable {
    public var name: String
    /// The column of the catalog's `clips` table it is read from.
    public var column: String
    public var help: String
    /// From the stored value to the rule's unit (e.g. linear amplitude to dBFS).
    public var transform: @Sendable (Double) -> Double

    public init(_ name: String, column: String, help: String, transform: @escaping @Sendable (Double) -> Double = { $0 }) {
        self.name = name
        self.column = column
        self.help = help
        self.transform = transform
    }

    /// 20·log10 of a linear amplitude (full scale 1.0), floored at -200 dB for digital silence.
    public static let decibels: @Sendable (Double) -> Double = { 20 * log10(max($0, 1e-10)) }
}

/// The clip measures rules may use; adding a catalog column to the rules is one line here. A NULL
/// (e.g. the loudness of a clip not measured yet, or below the gate) fails any rule naming it.
public enum ClipMeasures {
    public static let all: [ClipMeasure] = [
        ClipMeasure("rms_db", column: "rms", help: "RMS level, dBFS", transform: ClipMeasure.decibels),
        ClipMeasure("peak_db", column: "peak", help: "sample peak, dBFS", transform: ClipMeasure.decibels),
        ClipMeasure("rms", column: "rms", help: "RMS level, linear (full scale 1.0)"),
        ClipMeasure("peak", column: "peak", help: "sample peak, linear (full scale 1.0)"),
        ClipMeasure("silence_share", column: "silence_share", help: "share of samples below 2^-16"),
        ClipMeasure("duration_s", column: "duration_s", help: "clip length, seconds"),
        ClipMeasure("lufs", column: "lufs", help: "integrated loudness (EBU R128), LUFS"),
        ClipMeasure("loudness_range", column: "loudness_range", help: "loudness range (EBU R128), LU"),
        ClipMeasure("true_peak_db", column: "true_peak_db", help: "true peak, dBTP"),
    ]

    public static var names: [String] { all.map(\.name) }
}
