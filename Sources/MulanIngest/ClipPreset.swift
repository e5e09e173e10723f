/// Clip lengths that fit a public corpus (`mulan-ingest --preset NAME`): with the defaults (30-s
/// clips, full clips only) MagnaTagATune's ~29.1-s excerpts and the 10-s segments of MusicCaps and
/// AudioSet would all fail `too-short`. `--clip-seconds` and `--min-clip-seconds` given beside a
/// preset override its values.
public enum ClipPreset: String, Sendable, CaseIterable {
    /// MagnaTagATune: each ~29.1-s excerpt becomes one clip of its whole length (a final clip of at
    /// least 25 s is kept, and nothing is longer than 30 s).
    case mtat
    /// MusicCaps: its 10-s AudioSet segments, one clip each (down to 8 s: downloads are often a few
    /// hundred milliseconds short).
    case musiccaps
    /// AudioSet segments: as MusicCaps.
    case audioset

    /// The clip length the preset sets (`--clip-seconds`).
    public var clipSeconds: Double {
        switch self {
        case .mtat: 30
        case .musiccaps, .audioset: 10
        }
    }

    /// The shortest final clip kept (`--min-clip-seconds`).
    public var minClipSeconds: Double {
        switch self {
        case .mtat: 25
        case .musiccaps, .audioset: 8
        }
    }

    /// One line for help texts.
    public static var summary: String {
        allCases.map { "\($0.rawValue) (\(format($0.clipSeconds))-s clips, final clips from \(format($0.minClipSeconds)) s)" }
            .joined(separator: ", ")
    }

    private static func format(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
}
