import MulanCore

/// FMA's `tracks.csv` (fma_metadata): quoted CSV whose header is two rows, the group of each
/// column (`album`, `artist`, `set`, `track`) and its field (`title`, `genre_top`, `tags`, …), then
/// in the published file a third line holding only the index name (`track_id`, what pandas'
/// `header=[0,1], index_col=0` consumes); the first column is the track id. List columns
/// (`genres`, `genres_all`, `tags`) are Python list literals: `[21, 811]`, `['indie', 'rock']`.
///
/// Per track, as `tags` texts: `track/genre_top` (field `genre_top`), the names of the ids in
/// `track/genres_all` from `genres.csv` (field `genres_all`), each of `track/tags` (field `tags`) and
/// `track/title` (field `title`, as container titles are). A genre id missing from genres.csv is
/// rejected (`unknown-label`), a list that is not a literal is rejected (`invalid-row`); the track's
/// other texts are kept. Columns are named `group/field` for `--track-id-format` (`{track_id}` is the
/// index).
final class FMATracksReader: TextRecordReader {
    let path: String
    let settings: TextReadSettings
    let genres: FMAGenres
    private let csv: CSVReader
    private var groups: [String]?
    /// `group/field` names of the columns (the first is `track_id`), once both header rows are read.
    private var columns: [String]?
    /// Whether the line after the two header rows has been looked at (the index-name line).
    private var sawIndexLine = false

    init(path: String, settings: TextReadSettings, genres: FMAGenres) throws(MulanError) {
        self.path = path
        self.settings = settings
        self.genres = genres
        csv = try CSVReader(path: path)
    }

    func next() throws(MulanError) -> TextRecordResult? {
        while let record = try csv.next() {
            if record.isBlank { continue }
            guard let groups else { self.groups = record.fields; continue }
            guard let columns else {
                self.columns = try Self.columns(groups: groups, fields: record.fields,
                                                at: SourceLocation(file: path, line: record.line))
                continue
            }
            if !sawIndexLine {
                sawIndexLine = true
                // The index name alone: `track_id` and empty fields.
                if record.fields.first == "track_id" && record.fields.dropFirst().allSatisfy(\.isEmpty) { continue }
            }
            return row(record, columns: columns)
        }
        return nil
    }

    static let needed = ["track/genre_top", "track/genres_all", "track/tags", "track/title"]

    /// `group/field` for each column, checking the header is FMA's.
    static func columns(groups: [String], fields: [String], at location: SourceLocation) throws(MulanError) -> [String] {
        var names = ["track_id"]
        for (group, field) in zip(groups, fields).dropFirst() { names.append(group + "/" + field) }
        let missing = needed.filter { !names.contains($0) }
        guard groups.count == fields.count, missing.isEmpty else {
            throw MulanError(.manifest, "the header of this fma file is not tracks.csv's two rows (group, then field): "
                             + (missing.isEmpty ? "the two rows have \(groups.count) and \(fields.count) fields"
                                                : "no \(missing.joined(separator: ", ")) column"),
                             location: location,
                             hint: "pass fma_metadata/tracks.csv as published (read by its authors with header=[0,1]); "
                                 + "is --format right for this file?")
        }
        return names
    }

    private func row(_ record: CSVRecord, columns: [String]) -> TextRecordResult {
        let here = SourceLocation(file: path, line: record.line)
        if let problem = record.problem(under: settings.invalidUTF8) {
            return .rejected(here, problem.reason, problem.detail, raw: record.raw)
        }
        guard record.fields.count == columns.count else {
            return .rejected(here, .invalidRow, "expected \(columns.count) fields, found \(record.fields.count)", raw: record.raw)
        }
        let row = Dictionary(zip(columns, record.fields), uniquingKeysWith: { first, _ in first })
        let track: String, origin: SourceLocation
        switch settings.trackID(row, defaultColumns: ["track_id"], missing: "the first column is empty", origin: here, raw: record.raw) {
        case .failure(let rejected): return rejected.result
        case .success(let found): (track, origin) = found
        }
        var result = TextRecordResult()
        if let top = row["track/genre_top"], !top.isEmpty {
            result.add([top], source: .tags, field: "genre_top", at: origin)
        }
        if let list = row["track/genres_all"], !list.isEmpty {
            if let ids = PythonListLiteral.parseIntegers(list) {
                for id in ids {
                    if let title = genres.titles[id] {
                        result.add([title], source: .tags, field: "genres_all", at: origin)
                    } else {
                        result.reject(origin, .unknownLabel, "genre id \(id) of genres_all is not in --genres \(genres.path); "
                                      + "pass the genres.csv of the same FMA release", raw: list)
                    }
                }
            } else {
                result.reject(origin, .invalidRow, "track/genres_all is not a list literal of genre ids like [21, 811]", raw: list)
            }
        }
        if let list = row["track/tags"], !list.isEmpty {
            if let tags = PythonListLiteral.parse(list) {
                result.add(tags, source: .tags, field: "tags", at: origin)
            } else {
                result.reject(origin, .invalidRow, "track/tags is not a list literal like ['indie', 'rock']", raw: list)
            }
        }
        if let title = row["track/title"], !title.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            result.add([title], source: .tags, field: "title", at: origin)
        }
        if result.annotations.isEmpty && result.rejects.isEmpty {
            return .rejected(origin, .emptyText, "track \(track) has no genre, tags or title", raw: record.raw)
        }
        if record.error != nil { result.markRepaired() }
        return result
    }
}

/// FMA's `genres.csv` (`genre_id,#tracks,parent,title,top_level`): genre id → title. A row that
/// cannot be read stops the load with its line: the file is small and every genre id depends on it.
public struct FMAGenres: Sendable {
    public let path: String
    public private(set) var titles: [Int: String] = [:]

    public init(path: String, titles: [Int: String]) {
        self.path = path
        self.titles = titles
    }

    public static func load(path: String) throws(MulanError) -> FMAGenres {
        var genres = FMAGenres(path: path, titles: [:])
        func fail(_ line: Int, _ what: String) -> MulanError {
            MulanError(.usage, "cannot read the FMA genres file: \(what)", location: SourceLocation(file: path, line: line),
                       hint: "pass fma_metadata/genres.csv (genre_id,#tracks,parent,title,top_level)")
        }
        try CSVReader.loadTable(path: path, required: ["genre_id", "title"], fail: fail) { (row, line) throws(MulanError) in
            guard let id = row["genre_id"].flatMap({ Int($0) }) else {
                throw fail(line, "genre_id \"\(row["genre_id"] ?? "")\" is not an integer")
            }
            let title = row["title"] ?? ""
            if title.isEmpty { throw fail(line, "genre \(id) has no title") }
            if let other = genres.titles[id], other != title {
                throw fail(line, "genre \(id) is listed twice (\"\(other)\" and \"\(title)\")")
            }
            genres.titles[id] = title
        }
        return genres
    }
}
