import Foundation
import MulanCore

/// Streams a track manifest, JSONL or CSV, one row at a time (memory stays bounded).
///
/// Columns / keys: `track_id` (required, non-empty string), `path` (required; relative paths are
/// resolved against the manifest's folder), `start_s`, `end_s` (optional seconds, 0 ≤ start < end),
/// `split` (optional). Unknown columns are ignored. See schemas/manifest.schema.json.
public final class ManifestReader: Sequence, IteratorProtocol {
    public enum Format: String, Sendable { case jsonl, csv }

    public let path: String
    public let format: Format
    private let reader: ByteReader?
    private let csv: CSVReader?
    private let baseDirectory: String
    private var lineNumber = 0
    private var csvHeader: [String]?
    /// A fatal error met while reading (I/O), surfaced after iteration ends.
    public private(set) var readError: MulanError?

    static let maxRawLength = 4096
    /// The longest path a row may give (PATH_MAX); the system could not open a longer one.
    static let maxPathBytes = 4096

    public init(path: String, format: Format? = nil) throws(MulanError) {
        self.path = path
        let lower = path.lowercased()
        if let format {
            self.format = format
        } else if lower.hasSuffix(".csv") || lower.hasSuffix(".tsv") {
            self.format = .csv
        } else if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || lower.hasSuffix(".json") {
            self.format = .jsonl
        } else {
            throw MulanError(.usage, "cannot tell the format of manifest \(path)",
                             hint: "name it .jsonl or .csv, or pass --manifest-format jsonl|csv")
        }
        if self.format == .csv {
            let tab = lower.hasSuffix(".tsv")
            self.csv = try CSVReader(path: path, delimiter: tab ? 0x09 : 0x2C)
            self.reader = nil
        } else {
            self.reader = try ByteReader(path: path)
            self.csv = nil
        }
        self.baseDirectory = (Paths.absolute(path) as NSString).deletingLastPathComponent
    }

    public func next() -> ManifestEntry? {
        do {
            switch format {
            case .jsonl: return try nextJSONL()
            case .csv: return try nextCSV()
            }
        } catch {
            readError = error
            return nil
        }
    }

    private func location(_ line: Int, trackID: String? = nil) -> SourceLocation {
        SourceLocation(file: path, line: line, trackID: trackID)
    }

    private func raw(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.prefix(Self.maxRawLength), as: UTF8.self)
    }

    // MARK: JSONL

    private func nextJSONL() throws(MulanError) -> ManifestEntry? {
        while let (bytes, overlong) = try reader!.nextLine() {
            lineNumber += 1
            let line = lineNumber
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            if overlong {
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow,
                                             detail: "line is longer than 64 MiB", raw: raw(bytes)))
            }
            guard String(validating: bytes, as: UTF8.self) != nil else {
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow,
                                             detail: "line is not valid UTF-8", raw: raw(bytes)))
            }
            let fields: [String: String]
            do {
                fields = try JSONDecoder().decode(JSONManifestFields.self, from: Data(bytes)).values
            } catch let error as JSONManifestFields.FieldError {
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow,
                                             detail: error.message, raw: raw(bytes)))
            } catch {
                // JSONDecoder's own error says only "not valid JSON"; the parser says why and where.
                let why = JSONParseError.explanation(parsing: Data(bytes)).map { " (\($0))" } ?? ""
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow,
                                             detail: "not a JSON object with track_id and path\(why)", raw: raw(bytes)))
            }
            return validate(fields, line: line, raw: raw(bytes))
        }
        return nil
    }

    // MARK: CSV

    private func nextCSV() throws(MulanError) -> ManifestEntry? {
        while true {
            guard let record = try csv!.next() else { return nil }
            let line = record.line
            if let error = record.error {
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow, detail: error,
                                             raw: raw(record.raw)))
            }
            let fields = record.fields
            if fields.count == 1 && fields[0].isEmpty { continue }  // blank line
            guard let header = csvHeader else {
                csvHeader = fields
                let missing = ["track_id", "path"].filter { !fields.contains($0) }
                if !missing.isEmpty {
                    throw MulanError(.manifest, "the CSV header has no \(missing.joined(separator: " or ")) column",
                                     location: location(line),
                                     hint: "the first row must name the columns: track_id,path[,start_s,end_s,split]")
                }
                continue
            }
            if fields.count != header.count {
                return .rejected(RejectedRow(origin: location(line), reason: .invalidRow,
                                             detail: "expected \(header.count) fields, found \(fields.count)",
                                             raw: raw(record.raw)))
            }
            var dict: [String: String] = [:]
            for (name, value) in zip(header, fields) where !value.isEmpty { dict[name] = value }
            return validate(dict, line: line, raw: raw(record.raw))
        }
    }

    // MARK: Validation shared by both formats

    private func validate(_ fields: [String: String], line: Int, raw: String) -> ManifestEntry {
        let trackID = fields["track_id"]?.trimmingCharacters(in: .whitespaces) ?? ""
        func reject(_ detail: String) -> ManifestEntry {
            .rejected(RejectedRow(origin: location(line, trackID: TrackIDRules.shown(trackID)),
                                  reason: .invalidRow, detail: detail, raw: raw))
        }
        if let problem = TrackIDRules.problem(trackID) { return reject(problem) }
        guard let rawPath = fields["path"], !rawPath.isEmpty else { return reject("path is missing or empty") }
        if rawPath.utf8.count > Self.maxPathBytes {
            return reject("path is \(rawPath.utf8.count) bytes long, more than the system's limit of \(Self.maxPathBytes)")
        }
        let resolved = rawPath.hasPrefix("/") ? rawPath : (baseDirectory as NSString).appendingPathComponent(rawPath)
        var start: Double?
        var end: Double?
        if let s = fields["start_s"] {
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 0 else {
                return reject("start_s must be a number of seconds ≥ 0, got \"\(s)\"")
            }
            start = v
        }
        if let s = fields["end_s"] {
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                return reject("end_s must be a number of seconds > 0, got \"\(s)\"")
            }
            end = v
        }
        if let start, let end, end <= start { return reject("end_s (\(end)) must be greater than start_s (\(start))") }
        let split = fields["split"].flatMap { $0.isEmpty ? nil : $0 }
        return .row(ManifestRow(trackID: trackID, path: (resolved as NSString).standardizingPath,
                                startSeconds: start, endSeconds: end, split: split,
                                origin: location(line, trackID: trackID)))
    }
}

/// What every track id obeys, in track manifests and annotation files alike. Ids are opaque
/// strings: slashes, dots and `..` are allowed (no stage builds a file name from an id; shard keys
/// are a hash of it), but not control characters, and not more than `maxBytes`.
public enum TrackIDRules {
    /// The longest track id, in UTF-8 bytes.
    public static let maxBytes = 1024

    /// Why `id` cannot be a track id, or nil when it can.
    public static func problem(_ id: String) -> String? {
        if id.isEmpty { return "track_id is missing or empty" }
        if id.utf8.count > maxBytes {
            return "track_id is \(id.utf8.count) bytes long, more than \(maxBytes); give the track a shorter id"
        }
        if id.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "track_id contains control characters; remove them from the id"
        }
        return nil
    }

    /// The id as messages name it: nil when empty or too long to print.
    public static func shown(_ id: String) -> String? {
        id.isEmpty || id.utf8.count > maxBytes ? nil : id
    }
}

/// What Foundation's JSON parsers say went wrong, in their own words ("Too many nested arrays or
/// dictionaries around character 513", "Invalid value around character 1"), or nil.
public enum JSONParseError {
    public static func explanation(_ error: any Error) -> String? {
        (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
    }

    /// Why `data` is not JSON (nil when it is), from JSONSerialization, which refuses nesting
    /// deeper than 512 levels rather than recursing.
    public static func explanation(parsing data: Data) -> String? {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return nil
        } catch {
            return explanation(error) ?? "not valid JSON"
        }
    }
}

/// The manifest keys of one JSONL row; numbers may be given as JSON numbers or strings.
struct JSONManifestFields: Decodable {
    struct FieldError: Error { var message: String }
    var values: [String: String] = [:]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for name in ["track_id", "path", "start_s", "end_s", "split"] {
            let key = Key(stringValue: name)
            guard container.contains(key), try !container.decodeNil(forKey: key) else { continue }
            if let s = try? container.decode(String.self, forKey: key) {
                values[name] = s
            } else if name == "start_s" || name == "end_s",
                      let n = try? container.decode(Double.self, forKey: key) {
                values[name] = "\(n)"
            } else {
                let expected = (name == "start_s" || name == "end_s") ? "a number" : "a string"
                throw FieldError(message: "\(name) must be \(expected)")
            }
        }
    }
}
