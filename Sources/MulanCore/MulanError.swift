/// Where something went wrong: an input file and line, and/or a track.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String?
    public var line: Int?
    public var trackID: String?

    public init(file: String? = nil, line: Int? = nil, trackID: String? = nil) {
        self.file = file
        self.line = line
        self.trackID = trackID
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(line.map { "\(file):\($0)" } ?? file) }
        if let trackID { parts.append("track \(trackID)") }
        return parts.joined(separator: ", ")
    }
}

/// The project's structured error: a code, what happened, where, what to do, and the cause.
public struct MulanError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case usage          // bad arguments or options
        case io             // a file could not be read or written
        case manifest       // a manifest could not be read at all
        case catalog        // SQLite said no
        case media          // FFmpeg said no
        case locked         // another process holds the work directory
        case data           // a dataset, shard or checkpoint is malformed
        case internalError = "internal"
    }

    public var code: Code
    public var message: String
    public var location: SourceLocation?
    public var hint: String?
    public var cause: String?

    public init(_ code: Code, _ message: String, location: SourceLocation? = nil,
                hint: String? = nil, cause: String? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.hint = hint
        self.cause = cause
    }

    public var description: String {
        var text = message
        if let location, !location.description.isEmpty { text = "\(location): \(text)" }
        if let cause { text += " (\(cause))" }
        if let hint { text += ". \(hint)" }
        return text
    }
}

/// Process exit codes shared by every mulan command (documented in docs/exit-codes.md).
public enum ExitStatus: Int32, Sendable {
    /// Everything asked for was done and every input was used.
    case success = 0
    /// A fatal error stopped the run.
    case fatal = 1
    /// The run completed, but some inputs failed and were recorded with a reason.
    case completedWithFailures = 3
    /// Bad command-line usage (EX_USAGE).
    case usage = 64
}
