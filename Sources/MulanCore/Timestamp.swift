import Foundation

public enum Timestamp {
    /// The current time as ISO 8601 UTC with milliseconds.
    public static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
