import MulanCore

/// MTG-Jamendo's autotagging TSVs (`raw_30s_cleantags.tsv`, `autotagging*.tsv`, and the split files
/// `splits/split-N/{train,validation,test}.tsv`, whose lines end with CRLF): a header
/// `TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`, then ragged rows: after the fixed fields, one
/// tab-separated field per tag, `category---name` (`genre---rock`, `instrument---piano`,
/// `mood/theme---happy`).
///
/// Each tag becomes a `tags` text holding the name (`rock`), its field the category (`genre`,
/// `instrument`, `mood/theme`). A tag of another category is rejected (`unknown-category`), one
/// without `---` is rejected (`invalid-row`); the row's other tags are kept. Track ids are TRACK_ID
/// as given (`track_0000214`).
final class JamendoTagsReader: TextRecordReader {
    static var categories: Set<String> { JamendoConventions.categories }

    let path: String
    let settings: TextReadSettings
    private let csv: CSVReader
    /// The fixed columns' names (the header before TAGS); the tags start at `fixed.count`.
    private var fixed: [String]?

    init(path: String, settings: TextReadSettings) throws(MulanError) {
        self.path = path
        self.settings = settings
        csv = try CSVReader(path: path, delimiter: 0x09)
    }

    func next() throws(MulanError) -> TextRecordResult? {
        while let record = try csv.next() {
            if record.isBlank { continue }
            guard let fixed else {
                guard let tags = record.fields.firstIndex(of: "TAGS"), record.fields.contains("TRACK_ID") else {
                    throw MulanError(.manifest, "the header of this jamendo file has no TRACK_ID and TAGS columns",
                                     location: SourceLocation(file: path, line: record.line),
                                     hint: "pass an MTG-Jamendo autotagging TSV (TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS); "
                                         + "is --format right for this file?")
                }
                self.fixed = Array(record.fields[..<tags])
                continue
            }
            return row(record, fixed: fixed)
        }
        return nil
    }

    private func row(_ record: CSVRecord, fixed: [String]) -> TextRecordResult {
        let here = SourceLocation(file: path, line: record.line)
        if let problem = record.problem(under: settings.invalidUTF8) {
            return .rejected(here, problem.reason, problem.detail, raw: record.raw)
        }
        guard record.fields.count >= fixed.count else {
            return .rejected(here, .invalidRow, "expected the \(fixed.count) fields \(fixed.joined(separator: " ")) and "
                             + "then the tags, found \(record.fields.count) fields; is the file tab-separated?", raw: record.raw)
        }
        let row = Dictionary(zip(fixed, record.fields), uniquingKeysWith: { first, _ in first })
        let track: String, origin: SourceLocation
        switch settings.trackID(row, defaultColumns: ["TRACK_ID"], missing: "TRACK_ID is empty", origin: here, raw: record.raw) {
        case .failure(let rejected): return rejected.result
        case .success(let found): (track, origin) = found
        }
        let tags = record.fields[fixed.count...].filter { !$0.isEmpty }
        if tags.isEmpty {
            return .rejected(origin, .emptyText, "track \(track) has no tags (no field after \(fixed.last ?? "the fixed fields"))",
                             raw: record.raw)
        }
        var result = TextRecordResult()
        for tag in tags {
            guard let (category, name) = JamendoConventions.tag(tag) else {
                result.reject(origin, .invalidRow, "tag \"\(tag)\" is not category---name (e.g. genre---rock); it is left out",
                              raw: tag)
                continue
            }
            guard Self.categories.contains(category) else {
                result.reject(origin, .unknownCategory, "tag \"\(tag)\": category \"\(category)\" is not genre, instrument "
                              + "or mood/theme; the tag is left out (fix the file, or load such tags as generic JSONL)",
                              raw: tag)
                continue
            }
            result.add([name], source: .tags, field: category, at: origin)
        }
        if record.error != nil { result.markRepaired() }
        return result
    }
}
