import Foundation
import MulanCore

/// The annotation file formats `mulan-ingest text` reads.
public enum TextFormat: String, Sendable, CaseIterable, Codable {
    /// JSONL: `{"track_id", "source", "text"}` or `{"track_id", "tags": [...], "descriptions": [...], ...}`.
    case generic
    /// JSONL: `{"playlist_id", "title", "description"?, "track_ids": [...]}`.
    case playlists
    /// MusicCaps `musiccaps-public.csv`.
    case musiccaps
    /// MagnaTagATune `annotations_final.csv` (tab-separated, binary tag columns).
    case mtat
    /// AudioSet segment CSV (`# ` comments, `YTID, start_seconds, end_seconds, positive_labels`).
    case audioset
    /// Song Describer `song_describer.csv` (`caption_id, track_id, caption, is_valid_subset,
    /// familiarity, artist_id, album_id, path, duration`): several captions per track.
    case songDescriber = "song-describer"
    /// MTG-Jamendo autotagging TSVs (`TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`, one field per
    /// `category---tag`): JamendoTagsReader.
    case jamendo
    /// FMA `tracks.csv` (two header rows, list literals) with `genres.csv`: FMATracksReader.
    case fma
    /// Spotify Million Playlist Dataset slices with a track URI map: MPDSliceReader.
    case mpd
    /// LP-MusicCaps exports, JSON Lines or CSV: LPMusicCapsReader.
    case lpMusicCaps = "lp-musiccaps"
}

/// What to do with a record that is not valid UTF-8.
public enum InvalidUTF8Policy: String, Sendable, CaseIterable, Codable {
    /// Replace bad bytes with U+FFFD, keep the text and flag it as repaired.
    case replace
    /// Reject the record (reason `invalid-utf8`).
    case reject
}

/// Streams an annotation file record by record, turning each into texts and rejects.
/// Memory stays bounded by one record. The formats of turn 1 are read here; jamendo, fma, mpd and
/// lp-musiccaps by their own readers (JamendoTagsReader, …), made at the first record.
public final class TextFormatReader {
    public let path: String
    public let format: TextFormat
    public var invalidUTF8: InvalidUTF8Policy = .replace
    /// Builds a track id from a CSV record's columns: `{ytid}`, `{clip_id}`, `{YTID}_{start_seconds}`, …
    public var trackIDTemplate: String?
    public var maxLineBytes = 1 << 20
    let labels: AudioSetLabels?
    let references: TextReferences
    /// The reader of a format that has its own (jamendo, fma, mpd, lp-musiccaps).
    private var formatReader: (any TextRecordReader)?

    private var lines: ByteReader?
    private var csv: CSVReader?
    private var header: [String]?
    private var lineNumber = 0
    /// Song Describer: the line each caption id was first read on.
    private var captionLines: [String: Int] = [:]

    public convenience init(path: String, format: TextFormat, labels: AudioSetLabels? = nil) throws(MulanError) {
        try self.init(path: path, format: format, references: TextReferences(labels: labels))
    }

    public init(path: String, format: TextFormat, references: TextReferences) throws(MulanError) {
        self.path = path
        self.format = format
        self.labels = references.labels
        self.references = references
        switch format {
        case .generic, .playlists:
            if MPDSliceReader.looksLikeSlice(path: path) {
                throw MulanError(.manifest, "this file looks like a Spotify Million Playlist Dataset slice (one JSON object "
                                 + "with info and playlists), not JSON Lines", location: SourceLocation(file: path, line: 1),
                                 hint: "use --format mpd --track-map FILE.csv (track_uri,track_id)")
            }
            lines = try ByteReader(path: path)
        case .musiccaps, .songDescriber:
            csv = try CSVReader(path: path)
        case .mtat:
            csv = try CSVReader(path: path, delimiter: 0x09)
        case .audioset:
            csv = try CSVReader(path: path, skipInitialSpace: true, comment: 0x23)
            header = ["YTID", "start_seconds", "end_seconds", "positive_labels"]
        case .jamendo, .fma, .mpd, .lpMusicCaps:
            break
        }
        if (format == .musiccaps || format == .audioset), labels == nil {
            throw MulanError(.usage, "the \(format.rawValue) format maps AudioSet label ids to names",
                             hint: "pass --labels ontology.json (or class_labels_indices.csv)")
        }
        if format == .fma, references.genres == nil {
            throw MulanError(.usage, "the fma format maps genre ids to names", hint: "pass --genres genres.csv")
        }
        if format == .mpd, references.trackMap == nil {
            throw MulanError(.usage, "the mpd format maps Spotify track URIs to track ids",
                             hint: "pass --track-map FILE.csv (track_uri,track_id)")
        }
    }

    /// The reader of a format that has its own, with this reader's settings.
    private func makeFormatReader() throws(MulanError) -> any TextRecordReader {
        var settings = TextReadSettings()
        settings.invalidUTF8 = invalidUTF8
        settings.trackIDTemplate = trackIDTemplate
        settings.maxLineBytes = maxLineBytes
        switch format {
        case .jamendo:
            return try JamendoTagsReader(path: path, settings: settings)
        case .fma:
            guard let genres = references.genres else { throw MulanError(.usage, "--genres is missing") }
            return try FMATracksReader(path: path, settings: settings, genres: genres)
        case .mpd:
            guard let trackMap = references.trackMap else { throw MulanError(.usage, "--track-map is missing") }
            return try MPDSliceReader(path: path, settings: settings, trackMap: trackMap)
        default:
            return try LPMusicCapsReader(path: path, settings: settings, attributePrediction: references.attributePrediction)
        }
    }

    private func location(_ line: Int, _ track: String? = nil) -> SourceLocation {
        SourceLocation(file: path, line: line, trackID: track)
    }

    private func reject(_ line: Int, _ reason: FailureReason, _ detail: String, raw: some Collection<UInt8>,
                        track: String? = nil) -> TextRecordResult {
        .rejected(location(line, track), reason, detail, raw: raw)
    }

    /// The next record's result, or nil at the end of the file.
    public func next() throws(MulanError) -> TextRecordResult? {
        switch format {
        case .generic, .playlists: return try nextJSONL()
        case .musiccaps, .mtat, .audioset, .songDescriber: return try nextCSV()
        case .jamendo, .fma, .mpd, .lpMusicCaps:
            if formatReader == nil { formatReader = try makeFormatReader() }
            return try formatReader!.next()
        }
    }

    // MARK: JSONL formats

    private func nextJSONL() throws(MulanError) -> TextRecordResult? {
        while let (bytes, overlong) = try lines!.nextLine(maxLength: maxLineBytes) {
            lineNumber += 1
            let line = lineNumber
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            if overlong {
                return reject(line, .lineTooLong, "the line is longer than \(maxLineBytes) bytes; split the record "
                              + "or raise --max-line-bytes", raw: bytes)
            }
            let dict: [String: Any], repaired: Bool
            switch JSONLineObject.parse(bytes, invalidUTF8: invalidUTF8) {
            case .rejected(let reason, let detail): return reject(line, reason, detail, raw: bytes)
            case .object(let d, let r): (dict, repaired) = (d, r)
            }
            var result = format == .generic ? generic(dict, line: line, raw: bytes)
                                            : playlist(dict, line: line, raw: bytes)
            if repaired { for i in result.annotations.indices { result.annotations[i].repaired = true } }
            return result
        }
        return nil
    }

    private func generic(_ dict: [String: Any], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let track = dict["track_id"] as? String, !track.trimmingCharacters(in: .whitespaces).isEmpty else {
            return reject(line, .invalidRow, "track_id is missing, empty or not a string", raw: raw)
        }
        if let problem = TrackIDRules.problem(track) {
            return reject(line, .invalidRow, problem, raw: raw, track: TrackIDRules.shown(track))
        }
        var result = TextRecordResult()
        var any = false
        if let sourceName = dict["source"] {
            guard let name = sourceName as? String, let source = TextSource(rawValue: name) else {
                return reject(line, .invalidRow, "source must be one of tags, descriptions, playlists, aset",
                              raw: raw, track: track)
            }
            guard let value = dict["text"], let texts = JSONText.strings(value) else {
                return reject(line, .invalidRow, "text must be a string or a list of strings", raw: raw, track: track)
            }
            any = true
            add(texts, source: source, field: "text", track: track, line: line, into: &result)
        }
        let keys: [(String, TextSource)] = [("tags", .tags), ("tag", .tags), ("descriptions", .descriptions),
                                            ("description", .descriptions), ("caption", .descriptions),
                                            ("playlists", .playlists), ("playlist", .playlists), ("aset", .aset)]
        for (key, source) in keys {
            guard let value = dict[key] else { continue }
            guard let texts = JSONText.strings(value) else {
                result.rejects.append(RejectedRow(origin: location(line, track), reason: .invalidRow,
                                                  detail: "\(key) must be a string or a list of strings",
                                                  raw: String(decoding: raw.prefix(4096), as: UTF8.self)))
                continue
            }
            any = true
            if source == .aset, let labels {
                // Label ids are mapped to names; names pass through.
                let mapped = texts.map { labels.name(of: $0) ?? $0 }
                add(mapped, source: source, field: key, track: track, line: line, into: &result)
            } else {
                add(texts, source: source, field: key, track: track, line: line, into: &result)
            }
        }
        if !any && result.rejects.isEmpty {
            return reject(line, .emptyText, "no text: give source and text, or tags/descriptions/playlists/aset",
                          raw: raw, track: track)
        }
        return result
    }

    private func playlist(_ dict: [String: Any], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let id = dict["playlist_id"].map({ "\($0)" }), !id.isEmpty else {
            return reject(line, .invalidRow, "playlist_id is missing", raw: raw)
        }
        guard let members = dict["track_ids"] as? [Any] else {
            return reject(line, .invalidRow, "track_ids must be a list of track ids", raw: raw)
        }
        let title = dict["title"] as? String ?? ""
        let description = dict["description"] as? String ?? ""
        if title.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            && description.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return reject(line, .emptyText, "playlist \(id) has no title or description", raw: raw)
        }
        var result = TextRecordResult()
        for member in members {
            guard let track = member as? String ?? (member as? NSNumber).map({ "\($0)" }) else { continue }
            if let problem = TrackIDRules.problem(track) {
                result.rejects.append(RejectedRow(origin: location(line, TrackIDRules.shown(track)), reason: .invalidRow,
                                                  detail: "a member of playlist \(id): \(problem)",
                                                  raw: String(decoding: raw.prefix(4096), as: UTF8.self)))
                continue
            }
            if !title.isEmpty {
                result.annotations.append(TextAnnotation(trackID: track, source: .playlists, field: "title", text: title,
                                                         group: id, origin: location(line, track)))
            }
            if !description.isEmpty {
                result.annotations.append(TextAnnotation(trackID: track, source: .playlists, field: "description",
                                                         text: description, group: id, origin: location(line, track)))
            }
        }
        if result.annotations.isEmpty && result.rejects.isEmpty {
            return reject(line, .emptyText, "playlist \(id) has no member tracks", raw: raw)
        }
        return result
    }

    private func add(_ texts: [String], source: TextSource, field: String, track: String, line: Int,
                     into result: inout TextRecordResult) {
        result.add(texts, source: source, field: field, at: location(line, track))
    }

    // MARK: CSV formats

    private func nextCSV() throws(MulanError) -> TextRecordResult? {
        while let record = try csv!.next() {
            let line = record.line
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            guard let header else {
                self.header = record.fields
                try checkHeader(record.fields, line: line)
                continue
            }
            if let error = record.error {
                if error.contains("UTF-8") && invalidUTF8 == .replace {
                    // Fields were decoded with replacement characters; go on and flag the texts.
                } else {
                    return reject(line, error.contains("UTF-8") ? .invalidUTF8 : .invalidRow, error, raw: record.raw)
                }
            }
            guard record.fields.count >= header.count else {
                return reject(line, .invalidRow, "expected \(header.count) fields, found \(record.fields.count)",
                              raw: record.raw)
            }
            var row: [String: String] = [:]
            for (name, value) in zip(header, record.fields) { row[name] = value }
            var result: TextRecordResult
            switch format {
            case .musiccaps: result = musiccaps(row, line: line, raw: record.raw)
            case .mtat: result = mtat(row, header: header, line: line, raw: record.raw)
            case .songDescriber: result = songDescriber(row, line: line, raw: record.raw)
            default: result = audioset(row, line: line, raw: record.raw)
            }
            if record.error != nil { for i in result.annotations.indices { result.annotations[i].repaired = true } }
            return result
        }
        return nil
    }

    private func checkHeader(_ fields: [String], line: Int) throws(MulanError) {
        let needed: [String]
        switch format {
        case .musiccaps: needed = ["ytid", "aspect_list", "caption"]
        case .mtat: needed = ["clip_id"]
        case .songDescriber: needed = ["caption_id", "track_id", "caption"]
        default: needed = []
        }
        let missing = needed.filter { !fields.contains($0) }
        if !missing.isEmpty {
            throw MulanError(.manifest, "the header of this \(format.rawValue) file has no \(missing.joined(separator: ", ")) column",
                             location: location(line), hint: "is --format right for this file?")
        }
    }

    /// The track id of a CSV row: the template with `{column}` replaced, or the format's default column.
    private func trackID(_ row: [String: String], defaultColumn: String) -> String? {
        TrackIDTemplate.trackID(row, template: trackIDTemplate, defaultColumns: [defaultColumn])
    }

    private func mapLabels(_ list: String, track: String, line: Int, field: String,
                           into result: inout TextRecordResult) {
        for id in AudioSetConventions.labelIDs(list) {
            if let name = labels?.name(of: id) {
                result.annotations.append(TextAnnotation(trackID: track, source: .aset, field: field, text: name,
                                                         origin: location(line, track)))
            } else {
                result.rejects.append(RejectedRow(origin: location(line, track), reason: .unknownLabel,
                                                  detail: "label id \(id) is not in the label map; pass a matching --labels file",
                                                  raw: id))
            }
        }
    }

    private func musiccaps(_ row: [String: String], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let track = trackID(row, defaultColumn: "ytid") else {
            return reject(line, .invalidRow, "no track id (ytid is empty or --track-id-format names a missing column)",
                          raw: raw)
        }
        if let problem = TrackIDRules.problem(track) {
            return reject(line, .invalidRow, problem, raw: raw, track: TrackIDRules.shown(track))
        }
        var result = TextRecordResult()
        if let caption = row["caption"], !caption.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            result.annotations.append(TextAnnotation(trackID: track, source: .descriptions, field: "caption",
                                                     text: caption, origin: location(line, track)))
        }
        if let aspects = row["aspect_list"], !aspects.isEmpty {
            if let list = PythonListLiteral.parse(aspects) {
                add(list, source: .tags, field: "aspect_list", track: track, line: line, into: &result)
            } else {
                result.rejects.append(RejectedRow(origin: location(line, track), reason: .invalidRow,
                                                  detail: "aspect_list is not a list literal like ['a', 'b']", raw: aspects))
            }
        }
        if let labels = row["audioset_positive_labels"] {
            mapLabels(labels, track: track, line: line, field: "audioset_positive_labels", into: &result)
        }
        if result.annotations.isEmpty && result.rejects.isEmpty {
            return reject(line, .emptyText, "no caption, aspects or labels", raw: raw, track: track)
        }
        return result
    }

    /// Song Describer: one caption per row, several rows per track; a caption id seen before in
    /// the file is rejected (its first row was loaded).
    private func songDescriber(_ row: [String: String], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let track = trackID(row, defaultColumn: "track_id") else {
            return reject(line, .invalidRow, "no track id (track_id is empty or --track-id-format names a missing column)",
                          raw: raw)
        }
        if let problem = TrackIDRules.problem(track) {
            return reject(line, .invalidRow, problem, raw: raw, track: TrackIDRules.shown(track))
        }
        let captionID = row["caption_id"] ?? ""
        if captionID.isEmpty {
            return reject(line, .invalidRow, "caption_id is empty", raw: raw, track: track)
        }
        if let first = captionLines[captionID] {
            return reject(line, .invalidRow, "caption_id \(captionID) was already read on line \(first); this row is left out",
                          raw: raw, track: track)
        }
        captionLines[captionID] = line
        var result = TextRecordResult()
        add([row["caption"] ?? ""], source: .descriptions, field: "caption", track: track, line: line, into: &result)
        return result
    }

    private func mtat(_ row: [String: String], header: [String], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let track = trackID(row, defaultColumn: "clip_id") else {
            return reject(line, .invalidRow, "clip_id is empty", raw: raw)
        }
        if let problem = TrackIDRules.problem(track) {
            return reject(line, .invalidRow, problem, raw: raw, track: TrackIDRules.shown(track))
        }
        var result = TextRecordResult()
        for column in header where column != "clip_id" && column != "mp3_path" {
            switch row[column] {
            case "1":
                result.annotations.append(TextAnnotation(trackID: track, source: .tags, field: "mtat", text: column,
                                                         origin: location(line, track)))
            case "0", "", nil:
                break
            case let other?:
                return reject(line, .invalidRow, "tag column \(column) holds \"\(other)\", expected 0 or 1",
                              raw: raw, track: track)
            }
        }
        if result.annotations.isEmpty {
            return reject(line, .emptyText, "clip \(track) has no tag set", raw: raw, track: track)
        }
        return result
    }

    private func audioset(_ row: [String: String], line: Int, raw: [UInt8]) -> TextRecordResult {
        guard let track = trackID(row, defaultColumn: "YTID") else {
            return reject(line, .invalidRow, "YTID is empty", raw: raw)
        }
        if let problem = TrackIDRules.problem(track) {
            return reject(line, .invalidRow, problem, raw: raw, track: TrackIDRules.shown(track))
        }
        var result = TextRecordResult()
        mapLabels(row["positive_labels"] ?? "", track: track, line: line, field: "positive_labels", into: &result)
        if result.annotations.isEmpty && result.rejects.isEmpty {
            return reject(line, .emptyText, "no positive labels", raw: raw, track: track)
        }
        return result
    }
}

/// Parses a Python list literal of strings, as MusicCaps writes aspect_list:
/// `['low quality', "children's song"]`. Returns nil when it is not one.
public enum PythonListLiteral {
    public static func parse(_ text: String) -> [String]? {
        var scalars = Array(text.unicodeScalars)[...]
        func skipSpace() { while let f = scalars.first, f == " " || f == "\t" || f == "\n" { scalars.removeFirst() } }
        skipSpace()
        guard scalars.first == "[" else { return nil }
        scalars.removeFirst()
        var items: [String] = []
        skipSpace()
        if scalars.first == "]" { scalars.removeFirst(); skipSpace(); return scalars.isEmpty ? [] : nil }
        while true {
            skipSpace()
            guard let quote = scalars.first, quote == "'" || quote == "\"" else { return nil }
            scalars.removeFirst()
            var item = String.UnicodeScalarView()
            while true {
                guard let c = scalars.first else { return nil }
                scalars.removeFirst()
                if c == quote { break }
                if c == "\\" {
                    guard let e = scalars.first else { return nil }
                    scalars.removeFirst()
                    switch e {
                    case "n": item.append("\n")
                    case "t": item.append("\t")
                    default: item.append(e)
                    }
                } else {
                    item.append(c)
                }
            }
            items.append(String(item))
            skipSpace()
            guard let sep = scalars.first else { return nil }
            scalars.removeFirst()
            if sep == "]" { break }
            if sep != "," { return nil }
            skipSpace()
            if scalars.first == "]" { scalars.removeFirst(); break }  // trailing comma
        }
        skipSpace()
        return scalars.isEmpty ? items : nil
    }

    /// Parses a Python list literal of integers, as FMA writes genre ids: `[21, 811]`, `[]`.
    /// Returns nil when it is not one.
    public static func parseIntegers(_ text: String) -> [Int]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]"), trimmed.count >= 2 else { return nil }
        let inner = trimmed.dropFirst().dropLast().trimmingCharacters(in: .whitespacesAndNewlines)
        if inner.isEmpty { return [] }
        var parts = inner.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        if parts.count > 1, parts.last == "" { parts.removeLast() }  // a trailing comma
        var items: [Int] = []
        for part in parts {
            guard let value = Int(part) else { return nil }
            items.append(value)
        }
        return items
    }
}
