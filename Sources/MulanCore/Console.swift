import Foundation

/// How log lines are written to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Writes diagnostics to standard error as plain text or JSON lines. Standard output is left
/// for results (the summary), so pipelines can capture it.
public struct Console: Sendable {
    public var format: LogFormat
    public var quiet: Bool

    public init(format: LogFormat = .text, quiet: Bool = false) {
        self.format = format
        self.quiet = quiet
    }

    public enum Level: String, Sendable { case info, warning, error }

    /// Logs an event. `fields` are shown as `key=value` in text and as JSON members in json.
    public func log(_ level: Level, _ message: String, event: String? = nil, fields: [String: String] = [:]) {
        if quiet && level == .info { return }
        let line: String
        switch format {
        case .text:
            var text = level == .info ? message : "\(level.rawValue): \(message)"
            if !fields.isEmpty {
                text += " " + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            }
            line = Self.escapingControls(text)
        case .json:
            var object: [String: String] = fields
            object["level"] = level.rawValue
            object["message"] = message
            object["time"] = ISO8601DateFormatter().string(from: Date())
            if let event { object["event"] = event }
            line = Self.jsonLine(object)
        }
        // On a terminal a progress bar may be on the current line: clear it first (it is redrawn).
        let clear = format == .text && Self.stderrIsTerminal ? "\r\u{1B}[K" : ""
        Self.writeStderr(clear + line + "\n")
    }

    /// `text` safe to print on a terminal: control characters (C0, DEL, C1: ESC sequences could
    /// recolor, retitle or clear the terminal, a newline could forge a log line) and the bidi
    /// controls that reorder what is shown (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069) are
    /// written as `\u{…}` escapes. Messages quote track ids, texts and paths from input files.
    public static func escapingControls(_ text: String) -> String {
        func unsafe(_ s: Unicode.Scalar) -> Bool {
            switch s.value {
            case 0x00...0x1F, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
            default: false
            }
        }
        guard text.unicodeScalars.contains(where: unsafe) else { return text }
        var out = ""
        for s in text.unicodeScalars {
            if unsafe(s) {
                out += "\\u{" + String(s.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    public static func jsonLine(_ object: [String: String]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func writeStderr(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    public static var stderrIsTerminal: Bool { isatty(2) == 1 }
}

/// Shows progress of a long job: a redrawn bar on a terminal (items, rate, ETA), plain
/// periodic lines otherwise, nothing when quiet. Owned and driven by one task.
public final class ProgressMeter {
    public enum Mode: Sendable { case bar, lines, off }

    private let mode: Mode
    private let total: Int
    private let unit: String
    private let interval: TimeInterval
    private let console: Console
    private let startTime = Date()
    private var lastDraw = Date.distantPast
    private var done = 0
    private var lastDrawnDone = -1
    private var detail: (Int, TimeInterval) -> String

    public init(total: Int, unit: String, console: Console, interval: TimeInterval? = nil,
                detail: @escaping (Int, TimeInterval) -> String = { _, _ in "" }) {
        self.total = total
        self.unit = unit
        self.console = console
        self.detail = detail
        if console.quiet {
            mode = .off
        } else if Console.stderrIsTerminal && console.format == .text {
            mode = .bar
        } else {
            mode = .lines
        }
        let envInterval = ProcessInfo.processInfo.environment["MULAN_PROGRESS_INTERVAL"].flatMap(Double.init)
        self.interval = interval ?? envInterval ?? (mode == .bar ? 0.2 : 10)
    }

    public var elapsed: TimeInterval { Date().timeIntervalSince(startTime) }

    /// Records that `count` more items are done and redraws when due.
    public func advance(by count: Int = 1) {
        done += count
        let now = Date()
        if now.timeIntervalSince(lastDraw) >= interval || done == total {
            lastDraw = now
            draw(final: false)
        }
    }

    /// Draws the last state and ends the bar's line.
    public func finish() {
        if lastDrawnDone == done {
            if mode == .bar { Console.writeStderr("\n") }
            return
        }
        draw(final: true)
    }

    private func draw(final: Bool) {
        let elapsed = self.elapsed
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let remaining = rate > 0 ? Double(total - done) / rate : nil
        let eta = remaining.map { Self.clock($0) } ?? "--:--"
        let extra = detail(done, elapsed)
        lastDrawnDone = done
        switch mode {
        case .off:
            return
        case .bar:
            let width = 24
            let filled = total > 0 ? min(width, done * width / total) : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let text = "\r\(bar) \(done)/\(total) \(unit)  \(extra)  \(String(format: "%.1f", rate))/s  ETA \(eta)\u{1B}[K"
            Console.writeStderr(text + (final ? "\n" : ""))
        case .lines:
            if final && done == 0 && total == 0 { return }
            var fields = ["done": "\(done)", "total": "\(total)", "unit": unit,
                          "rate_per_s": String(format: "%.2f", rate), "eta": eta,
                          "elapsed": Self.clock(elapsed)]
            if !extra.isEmpty { fields["detail"] = extra }
            if console.format == .json {
                console.log(.info, "progress", event: "progress", fields: fields)
            } else {
                Console.writeStderr("progress: \(done)/\(total) \(unit), \(extra.isEmpty ? "" : extra + ", ")"
                                    + "\(String(format: "%.2f", rate)) \(unit)/s, elapsed \(Self.clock(elapsed)), ETA \(eta)\n")
            }
        }
    }

    public static func clock(_ seconds: TimeInterval) -> String {
        guard seconds.isFinite else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }
}
