/// Why an input row or a track did not produce clips. The raw values are stable:
/// they are stored in the catalog and reported in summaries.
public enum FailureReason: String, Sendable, CaseIterable, Codable {
    // Manifest rows.
    case invalidRow = "invalid-row"
    case duplicateTrackID = "duplicate-track-id"
    // Files.
    case missingFile = "missing-file"
    case unreadable = "unreadable"
    case emptyFile = "empty-file"
    case notAudio = "not-audio"
    case noAudioStream = "no-audio-stream"
    case unsupportedCodec = "unsupported-codec"
    case corrupt = "corrupt"
    case truncated = "truncated"
    // Content.
    case tooShort = "too-short"
    case silent = "silent"
    case decodeFailed = "decode-failed"
    case encodeFailed = "encode-failed"
    // Text records.
    case emptyText = "empty-text"
    case unknownLabel = "unknown-label"
    /// A tag whose category the format does not know (MTG-Jamendo: genre, instrument, mood/theme).
    case unknownCategory = "unknown-category"
    /// Track URIs with no entry in the track map (MPD `--track-map`).
    case unmappedTrack = "unmapped-track"
    case invalidUTF8 = "invalid-utf8"
    case lineTooLong = "line-too-long"
}

/// A failure with its reason and a human-readable detail that says what to do.
public struct TrackFailure: Error, Sendable, CustomStringConvertible {
    public var reason: FailureReason
    public var detail: String

    public init(_ reason: FailureReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}
