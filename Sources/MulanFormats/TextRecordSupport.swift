import Foundation
import MulanCore

/// The options of `mulan-ingest text` that every format's reader applies.
public struct TextReadSettings: Sendable {
    /// What to do with a record that is not valid UTF-8.
    public var invalidUTF8: InvalidUTF8Policy = .replace
    /// Builds a track id from a record's columns: `{ytid}`, `{clip_id}`, `{YTID}_{start_seconds}`, …
    public var trackIDTemplate: String?
    /// The longest JSON Lines line accepted, in bytes.
    public var maxLineBytes = 1 << 20

    public init() {}
}

/// What a format reads besides the annotation file: label and genre maps, a track map, opt-ins.
public struct TextReferences: Sendable {
    /// AudioSet label names (`--labels`): musiccaps, audioset, generic's aset.
    public var labels: AudioSetLabels?
    /// FMA's `genres.csv` (`--genres`): fma.
    public var genres: FMAGenres?
    /// Track URI → track id (`--track-map`): mpd.
    public var trackMap: TrackURIMap?
    /// lp-musiccaps: also load `caption_attribute_prediction` (its authors advise against it).
    public var attributePrediction = false

    public init(labels: AudioSetLabels? = nil, genres: FMAGenres? = nil, trackMap: TrackURIMap? = nil,
                attributePrediction: Bool = false) {
        self.labels = labels
        self.genres = genres
        self.trackMap = trackMap
        self.attributePrediction = attributePrediction
    }
}

/// One annotation format's reader: the next record's texts and rejects, or nil at the end.
protocol TextRecordReader: AnyObject {
    func next() throws(MulanError) -> TextRecordResult?
}

extension TextRecordResult {
    /// A record rejected whole.
    static func rejected(_ origin: SourceLocation, _ reason: FailureReason, _ detail: String,
                         raw: some Collection<UInt8>) -> TextRecordResult {
        var r = TextRecordResult()
        r.reject(origin, reason, detail, raw: String(decoding: raw.prefix(4096), as: UTF8.self))
        return r
    }

    /// Records one bad part of a record (the rest of it is kept).
    mutating func reject(_ origin: SourceLocation, _ reason: FailureReason, _ detail: String, raw: String) {
        rejects.append(RejectedRow(origin: origin, reason: reason, detail: detail,
                                   raw: String(decoding: Array(raw.utf8.prefix(4096)), as: UTF8.self)))
    }

    /// Adds each text for `origin`'s track; an empty one is rejected (`empty-text`) and the others kept.
    mutating func add(_ texts: [String], source: TextSource, field: String, group: String? = nil,
                      at origin: SourceLocation) {
        for text in texts {
            if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                reject(origin, .emptyText, "an empty \(field) text", raw: text)
            } else {
                annotations.append(TextAnnotation(trackID: origin.trackID ?? "", source: source, field: field,
                                                  text: text, group: group, origin: origin))
            }
        }
    }

    /// Flags every text as repaired (its record had invalid UTF-8 replaced by U+FFFD).
    mutating func markRepaired() {
        for i in annotations.indices { annotations[i].repaired = true }
    }
}

extension CSVRecord {
    /// Why this record cannot be read under `policy`, or nil when it can (with invalid UTF-8
    /// under `replace`, its fields hold U+FFFD and its texts are to be flagged repaired).
    func problem(under policy: InvalidUTF8Policy) -> (reason: FailureReason, detail: String)? {
        guard let error else { return nil }
        if error.contains("UTF-8") {
            return policy == .replace ? nil : (.invalidUTF8, error)
        }
        return (.invalidRow, error)
    }

    /// Whether the record is a blank line.
    public var isBlank: Bool { fields.count == 1 && fields[0].isEmpty }
}

/// Track ids built from a record's columns with `--track-id-format`.
enum TrackIDTemplate {
    /// The template with each `{column}` replaced by the row's value, or, without a template, the
    /// row's `defaultColumns` (the first non-empty one); nil when the id cannot be built.
    static func trackID(_ row: [String: String], template: String?, defaultColumns: [String]) -> String? {
        guard let template else {
            for column in defaultColumns { if let value = row[column], !value.isEmpty { return value } }
            return nil
        }
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { return nil }
            guard let value = row[String(rest[rest.index(after: open)..<close])] else { return nil }
            out += value
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out.isEmpty ? nil : out
    }
}

extension JSONText {
    /// Strings of a parsed JSON value that is a string or an array of strings; nil for anything else.
    static func strings(_ value: Any) -> [String]? {
        if let s = value as? String { return [s] }
        if let a = value as? [Any] {
            let s = a.compactMap { $0 as? String }
            return s.count == a.count ? s : nil
        }
        return nil
    }
}

/// One line of a JSON Lines text file, parsed under the `--invalid-utf8` policy: a JSON object
/// (with whether invalid UTF-8 was replaced by U+FFFD), or why the line is rejected.
enum JSONLineObject {
    case object([String: Any], repaired: Bool)
    case rejected(FailureReason, String)

    static func parse(_ bytes: [UInt8], invalidUTF8: InvalidUTF8Policy) -> JSONLineObject {
        var data = Data(bytes)
        var repaired = false
        if String(validating: bytes, as: UTF8.self) == nil {
            if invalidUTF8 == .reject { return .rejected(.invalidUTF8, "the line is not valid UTF-8 (rejected by --invalid-utf8 reject)") }
            data = Data(String(decoding: bytes, as: UTF8.self).utf8)
            repaired = true
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            return .rejected(.invalidRow, "not valid JSON: \(JSONParseError.explanation(error) ?? error.localizedDescription)")
        }
        guard let dict = object as? [String: Any] else { return .rejected(.invalidRow, "expected a JSON object") }
        return .object(dict, repaired: repaired)
    }
}

extension TextReadSettings {
    /// A record's track id (from `--track-id-format`, else the first of `defaultColumns` with a value),
    /// checked against `TrackIDRules`; or the rejection to return for the record: `missing` says what
    /// was empty. `origin` is where the record is (file and line); the id is added on success.
    func trackID(_ row: [String: String], defaultColumns: [String], missing: String, origin: SourceLocation,
                 raw: some Collection<UInt8>) -> Result<(String, SourceLocation), RejectedTextRecord> {
        guard let track = TrackIDTemplate.trackID(row, template: trackIDTemplate, defaultColumns: defaultColumns) else {
            return .failure(RejectedTextRecord(result: .rejected(origin, .invalidRow,
                "no track id (\(missing) or --track-id-format names a missing column)", raw: raw)))
        }
        var here = origin
        if let problem = TrackIDRules.problem(track) {
            here.trackID = TrackIDRules.shown(track)
            return .failure(RejectedTextRecord(result: .rejected(here, .invalidRow, problem, raw: raw)))
        }
        here.trackID = track
        return .success((track, here))
    }
}

/// A record rejected while reading its track id (the `TextRecordResult` to hand back).
struct RejectedTextRecord: Error {
    var result: TextRecordResult
}
