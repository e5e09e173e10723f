import Foundation
import MulanCore

/// LP-MusicCaps exports (the MSD, MTT and MC subsets) as JSON Lines (`Dataset.to_json`, one object
/// a line) or CSV (`Dataset.to_csv`), told apart by the first byte (`{` is JSON Lines). Parquet, the
/// form the Hub serves, is refused with how to convert it: reading it needs a library mulan does not
/// have.
///
/// Each of `caption_writing`, `caption_summary`, `caption_paraphrase` becomes a `descriptions`
/// text (field: the column); `caption_attribute_prediction` only with `attributePrediction` (its
/// authors advise against using it). `caption_ground_truth` (MC: MusicCaps' own caption) is left to
/// the musiccaps reader. The track id is `track_id`, or, in the MusicCaps subset, which has none,
/// `ytid`, as the musiccaps reader keys its rows (`fname` is a file name, not that id); any columns
/// with `--track-id-format`. A caption that is empty or not text is rejected; the row's others are kept.
final class LPMusicCapsReader: TextRecordReader {
    static let captionColumns = ["caption_writing", "caption_summary", "caption_paraphrase"]
    static let attributeColumn = "caption_attribute_prediction"
    static let idColumns = ["track_id", "ytid"]

    let path: String
    let settings: TextReadSettings
    let columns: [String]
    private var lines: ByteReader?
    private var csv: CSVReader?
    private var header: [String]?
    private var lineNumber = 0

    init(path: String, settings: TextReadSettings, attributePrediction: Bool) throws(MulanError) {
        self.path = path
        self.settings = settings
        columns = Self.captionColumns + (attributePrediction ? [Self.attributeColumn] : [])
        let head = try ByteReader(path: path)
        var magic: [UInt8] = []
        var first: UInt8?
        while let byte = try head.next() {
            if magic.count < 4 { magic.append(byte) }
            if first == nil && ![0x20, 0x09, 0x0A, 0x0D].contains(byte) { first = byte }
            if magic.count == 4 && first != nil { break }
        }
        if magic == Array("PAR1".utf8) {
            throw MulanError(.usage, "\(path) is Parquet, which mulan cannot read (it has no Parquet library)",
                             hint: "export JSON Lines or CSV first, e.g. python -c \"import pandas as p; "
                                 + "p.read_parquet('IN.parquet').to_json('OUT.jsonl', orient='records', lines=True)\"")
        }
        if first == 0x5B {
            throw MulanError(.usage, "\(path) is one JSON array; the lp-musiccaps reader takes JSON Lines (one object a line) or CSV",
                             hint: "export with Dataset.to_json(path) (JSON Lines by default) or to_json(..., lines=True)")
        }
        if first == 0x7B { lines = try ByteReader(path: path) } else { csv = try CSVReader(path: path) }
    }

    func next() throws(MulanError) -> TextRecordResult? {
        lines != nil ? try nextJSONL() : try nextCSV()
    }

    private func nextJSONL() throws(MulanError) -> TextRecordResult? {
        while let (bytes, overlong) = try lines!.nextLine(maxLength: settings.maxLineBytes) {
            lineNumber += 1
            let here = SourceLocation(file: path, line: lineNumber)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            if overlong {
                return .rejected(here, .lineTooLong, "the line is longer than \(settings.maxLineBytes) bytes; split the record "
                                 + "or raise --max-line-bytes", raw: bytes)
            }
            let dict: [String: Any], repaired: Bool
            switch JSONLineObject.parse(bytes, invalidUTF8: settings.invalidUTF8) {
            case .rejected(let reason, let detail): return .rejected(here, reason, detail, raw: bytes)
            case .object(let d, let r): (dict, repaired) = (d, r)
            }
            // Scalars as text for the track id; captions as strings or lists of strings.
            var row: [String: String] = [:]
            var captions: [String: [String]?] = [:]
            for (key, value) in dict {
                if let s = value as? String { row[key] = s } else if let n = value as? NSNumber { row[key] = "\(n)" }
                if columns.contains(key) { captions.updateValue(value is NSNull ? [] : JSONText.strings(value), forKey: key) }
            }
            var result = record(row: row, captions: captions, line: lineNumber, raw: bytes)
            if repaired { result.markRepaired() }
            return result
        }
        return nil
    }

    private func nextCSV() throws(MulanError) -> TextRecordResult? {
        while let record = try csv!.next() {
            if record.isBlank { continue }
            guard let header else {
                let missing = (columns.contains(where: record.fields.contains) ? [] : ["caption_writing/summary/paraphrase"])
                    + (settings.trackIDTemplate != nil || Self.idColumns.contains(where: record.fields.contains) ? [] : ["track_id or ytid"])
                if !missing.isEmpty {
                    throw MulanError(.manifest, "the header of this lp-musiccaps file has no \(missing.joined(separator: ", ")) column",
                                     location: SourceLocation(file: path, line: record.line),
                                     hint: "is --format right for this file?")
                }
                self.header = record.fields
                continue
            }
            let here = SourceLocation(file: path, line: record.line)
            if let problem = record.problem(under: settings.invalidUTF8) {
                return .rejected(here, problem.reason, problem.detail, raw: record.raw)
            }
            guard record.fields.count == header.count else {
                return .rejected(here, .invalidRow, "expected \(header.count) fields, found \(record.fields.count)", raw: record.raw)
            }
            let row = Dictionary(zip(header, record.fields), uniquingKeysWith: { first, _ in first })
            var captions: [String: [String]?] = [:]
            for column in columns { if let value = row[column] { captions.updateValue([value], forKey: column) } }
            var result = self.record(row: row, captions: captions, line: record.line, raw: record.raw)
            if record.error != nil { result.markRepaired() }
            return result
        }
        return nil
    }

    /// One row's captions (by column; nil: not text) for its track.
    private func record(row: [String: String], captions: [String: [String]?], line: Int,
                        raw: [UInt8]) -> TextRecordResult {
        let here = SourceLocation(file: path, line: line)
        let origin: SourceLocation
        switch settings.trackID(row, defaultColumns: Self.idColumns,
                                missing: "track_id, or in the MusicCaps subset ytid, is missing or empty", origin: here, raw: raw) {
        case .failure(let rejected): return rejected.result
        case .success(let found): origin = found.1
        }
        var result = TextRecordResult()
        for column in columns {
            guard let value = captions[column] else { continue }
            guard let texts = value else {
                result.reject(origin, .invalidRow, "\(column) must be a string or a list of strings", raw: "")
                continue
            }
            result.add(texts.isEmpty ? [""] : texts, source: .descriptions, field: column, at: origin)
        }
        if result.annotations.isEmpty && result.rejects.isEmpty {
            return .rejected(origin, .emptyText, "no caption: none of \(columns.joined(separator: ", ")) is present", raw: raw)
        }
        return result
    }
}
