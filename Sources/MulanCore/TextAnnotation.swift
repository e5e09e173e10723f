/// The four weak text sources of MuLan, ordered as MuLan lists them (tags first).
public enum TextSource: String, Sendable, CaseIterable, Codable, Comparable {
    /// Short-form text: tags, genres, aspects, titles.
    case tags
    /// Long-form text: descriptions, captions, comments.
    case descriptions
    /// Playlist titles (and descriptions), one playlist annotating each of its tracks.
    case playlists
    /// AudioSet label names.
    case aset

    public static func < (a: TextSource, b: TextSource) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One piece of weak text for one track, as read from an annotation file.
public struct TextAnnotation: Sendable, Hashable {
    public var trackID: String
    public var source: TextSource
    /// Where in the record the text came from: a tag column, "caption", "aspect_list", "title", …
    public var field: String
    public var text: String
    /// The playlist (or other group) the text belongs to, if any.
    public var group: String?
    /// File and line (1-based) of the record.
    public var origin: SourceLocation
    /// Whether invalid UTF-8 in the record was repaired (replaced by U+FFFD).
    public var repaired = false

    public init(trackID: String, source: TextSource, field: String, text: String, group: String? = nil,
                origin: SourceLocation, repaired: Bool = false) {
        self.trackID = trackID
        self.source = source
        self.field = field
        self.text = text
        self.group = group
        self.origin = origin
        self.repaired = repaired
    }
}

/// What one record of an annotation file yields: texts, and rejects (a whole bad record, or one
/// bad part of it, such as an unknown label id), each with its location and reason.
public struct TextRecordResult: Sendable {
    public var annotations: [TextAnnotation] = []
    public var rejects: [RejectedRow] = []
    public init() {}
}

/// Which source a container tag (as captured by audio ingest) feeds, by tag name.
public enum ContainerTagSources {
    public static func source(forTag name: String) -> TextSource? {
        switch name.lowercased() {
        case "genre", "style", "mood", "grouping", "keywords", "tags", "tag", "instrument", "title":
            .tags
        case "comment", "description", "synopsis", "summary", "desc", "lyrics-description":
            .descriptions
        default:
            nil
        }
    }
}
