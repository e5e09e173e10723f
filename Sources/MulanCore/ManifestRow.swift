/// The records a track manifest (or a scanned folder) yields: a usable row, or a rejected one with
/// its reason, so every input row ends up used or recorded.

/// One track to ingest, as a manifest row (or a scanned file) describes it.
public struct ManifestRow: Sendable, Hashable {
    public var trackID: String
    /// Absolute path of the audio file.
    public var path: String
    public var startSeconds: Double?
    public var endSeconds: Double?
    public var split: String?
    /// Where the row came from: manifest file and line (1-based), or the scanned directory.
    public var origin: SourceLocation

    public init(trackID: String, path: String, startSeconds: Double? = nil, endSeconds: Double? = nil,
                split: String? = nil, origin: SourceLocation) {
        self.trackID = trackID
        self.path = path
        self.startSeconds = startSeconds
        self.endSeconds = endSeconds
        self.split = split
        self.origin = origin
    }
}

/// A manifest row that cannot be used, with its location and reason.
public struct RejectedRow: Sendable, Hashable {
    public var origin: SourceLocation
    public var reason: FailureReason
    public var detail: String
    /// The raw row text (truncated), kept so that nothing is lost.
    public var raw: String

    public init(origin: SourceLocation, reason: FailureReason, detail: String, raw: String) {
        self.origin = origin
        self.reason = reason
        self.detail = detail
        self.raw = raw
    }
}

public enum ManifestEntry: Sendable {
    case row(ManifestRow)
    case rejected(RejectedRow)
}
