import Foundation

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

/// The project's structured error: a code, what happened, where, what to do, and the underlying
/// error that caused it (kept as an error, as swift-nio keeps its, so a caller can inspect it:
/// `if let system = error.cause as? SystemCallError, system.errno == ENOSPC`).
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
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, location: SourceLocation? = nil,
                hint: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.hint = hint
        self.cause = cause
    }

    public var description: String {
        var text = message
        if let location, !location.description.isEmpty { text = "\(location): \(text)" }
        if let cause { text += " (\(Self.text(of: cause)))" }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// How a cause reads inside the message: Foundation's file errors by their localized text, every
    /// other error as it describes itself.
    static func text(of cause: any Error) -> String {
        if let cocoa = cause as? CocoaError { return cocoa.localizedDescription }
        return String(describing: cause)
    }
}

/// A failed system call, by its errno; reads as `strerror` does.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    public let errno: Int32

    public init(errno: Int32) { self.errno = errno }

    /// The calling thread's errno now: call it right after the failing call.
    public static func current() -> SystemCallError { SystemCallError(errno: Foundation.errno) }

    public var description: String { String(cString: strerror(errno)) }
}

/// A C library's failure that comes as a message, with the library's own code where it has one
/// (SQLite's result code, FFmpeg's AVERROR).
public struct LibraryError: Error, Equatable, CustomStringConvertible {
    public let library: String
    public let code: Int32?
    public let message: String

    public init(_ library: String, code: Int32? = nil, _ message: String) {
        self.library = library
        self.code = code
        self.message = message
    }

    public var description: String { message }
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
