import Foundation
import MulanCore

/// A slice of the Spotify Million Playlist Dataset (`mpd.slice.A-B.json`): ONE JSON object,
/// `{"info": {…}, "playlists": [{"name", "pid", "description"?, "tracks": [{"track_uri", …}], …}]}`,
/// pretty-printed in the published files (about 33 MB for 1,000 playlists).
///
/// `MPDPlaylists` cuts the `playlists` array into its elements as it reads, so memory is bounded
/// by one playlist and each has the line it starts on. Each playlist, parsed alone, gives a
/// `playlists` text (field `name`, and `description` when present) to each of its tracks whose
/// `track_uri` the track map knows, grouped as `mpd:<pid>`. Tracks the map does not know are the
/// rule (the dataset has 2.2 M tracks and no audio): they are counted, and the file's last
/// playlist carries one `unmapped-track` reject with the counts and the first few URIs, on the
/// line of the first playlist that had one.
final class MPDSliceReader: TextRecordReader {
    static let sampleSize = 5

    let path: String
    let settings: TextReadSettings
    let trackMap: TrackURIMap
    private var playlists: MPDPlaylists
    /// The next playlist, read ahead so the last one can carry the file's unmapped-track count.
    private var pending: MPDPlaylists.Element?
    private var started = false

    private var unmappedURIs = 0
    private var unmappedDistinct: Set<String> = []
    private var playlistsWithUnmapped = 0
    private var playlistsWithNoMappedTrack = 0
    private var playlistCount = 0
    private var firstUnmappedLine: Int?
    private var sample: [String] = []

    init(path: String, settings: TextReadSettings, trackMap: TrackURIMap) throws(MulanError) {
        self.path = path
        self.settings = settings
        self.trackMap = trackMap
        playlists = try MPDPlaylists(path: path, maxElementBytes: max(settings.maxLineBytes, 64 << 20))
    }

    func next() throws(MulanError) -> TextRecordResult? {
        if !started {
            started = true
            pending = try playlists.next()
        }
        guard let current = pending else { return nil }
        pending = try playlists.next()
        var result = playlist(current)
        if pending == nil, unmappedURIs > 0 {
            result.reject(SourceLocation(file: path, line: firstUnmappedLine ?? current.line), .unmappedTrack,
                          "\(unmappedURIs) track URIs (\(unmappedDistinct.count) distinct) in \(playlistsWithUnmapped) of "
                          + "\(playlistCount) playlists are not in --track-map \(trackMap.path), so those tracks get no "
                          + "playlist text; \(playlistsWithNoMappedTrack) playlists had no mapped track at all. "
                          + "First unmapped: \(sample.joined(separator: ", ")). Add rows track_uri,track_id for "
                          + "tracks you have audio for", raw: sample.joined(separator: "\n"))
        }
        return result
    }

    private func playlist(_ element: MPDPlaylists.Element) -> TextRecordResult {
        let here = SourceLocation(file: path, line: element.line)
        if let problem = element.problem {
            return .rejected(here, .invalidRow, problem, raw: element.bytes)
        }
        var data = Data(element.bytes)
        var repaired = false
        if String(validating: element.bytes, as: UTF8.self) == nil {
            if settings.invalidUTF8 == .reject {
                return .rejected(here, .invalidUTF8, "the playlist is not valid UTF-8 (rejected by --invalid-utf8 reject)",
                                 raw: element.bytes)
            }
            data = Data(String(decoding: element.bytes, as: UTF8.self).utf8)
            repaired = true
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            return .rejected(here, .invalidRow, "this playlist is not valid JSON: "
                             + (JSONParseError.explanation(error) ?? error.localizedDescription), raw: element.bytes)
        }
        guard let dict = object as? [String: Any] else {
            return .rejected(here, .invalidRow, "an element of playlists is not a JSON object", raw: element.bytes)
        }
        guard let pid = (dict["pid"] as? NSNumber).map({ "\($0)" }) ?? dict["pid"] as? String, !pid.isEmpty else {
            return .rejected(here, .invalidRow, "the playlist has no pid", raw: element.bytes)
        }
        playlistCount += 1
        let name = dict["name"] as? String ?? ""
        let description = dict["description"] as? String ?? ""
        if name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            && description.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return .rejected(here, .emptyText, "playlist \(pid) has no name or description", raw: element.bytes)
        }
        guard let tracks = dict["tracks"] as? [Any] else {
            return .rejected(here, .invalidRow, "playlist \(pid) has no tracks list", raw: element.bytes)
        }
        var result = TextRecordResult()
        var members: [String] = []
        var seen: Set<String> = []
        var unmappedHere = 0
        var withoutURI = 0
        for track in tracks {
            guard let uri = (track as? [String: Any])?["track_uri"] as? String, !uri.isEmpty else {
                withoutURI += 1
                continue
            }
            guard let id = trackMap.trackIDs[uri] else {
                unmappedHere += 1
                if unmappedDistinct.insert(uri).inserted, sample.count < Self.sampleSize { sample.append(uri) }
                continue
            }
            // A track listed twice in a playlist gets its texts once.
            if seen.insert(id).inserted { members.append(id) }
        }
        if withoutURI > 0 {
            result.reject(here, .invalidRow, "\(withoutURI) tracks of playlist \(pid) have no track_uri; they are left out",
                          raw: String(decoding: element.bytes.prefix(4096), as: UTF8.self))
        }
        if unmappedHere > 0 {
            unmappedURIs += unmappedHere
            playlistsWithUnmapped += 1
            if firstUnmappedLine == nil { firstUnmappedLine = element.line }
        }
        if members.isEmpty && !tracks.isEmpty && withoutURI < tracks.count { playlistsWithNoMappedTrack += 1 }
        for member in members {
            let origin = SourceLocation(file: path, line: element.line, trackID: member)
            for (field, text) in [("name", name), ("description", description)]
            where !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                result.annotations.append(TextAnnotation(trackID: member, source: .playlists, field: field, text: text,
                                                         group: "mpd:" + pid, origin: origin))
            }
        }
        if repaired { result.markRepaired() }
        return result
    }

    /// Whether the file starts like an MPD slice (a JSON object with `playlists` and `info` or
    /// `pid` in its first 4 KiB, and no `playlist_id`): the JSON Lines readers refuse it whole
    /// instead of failing on every line.
    static func looksLikeSlice(path: String) -> Bool {
        guard let reader = try? ByteReader(path: path) else { return false }
        var head: [UInt8] = []
        while head.count < 4096, let byte = try? reader.next() { head.append(byte) }
        guard let first = head.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }), first == 0x7B else { return false }
        let text = String(decoding: head, as: UTF8.self)
        return text.contains("\"playlists\"") && (text.contains("\"info\"") || text.contains("\"pid\""))
            && !text.contains("\"playlist_id\"")
    }
}

/// The elements of the top-level object's `playlists` array, cut from the byte stream by a
/// structural scan (strings and escapes skipped, nesting counted), each with the line it starts
/// on. The elements are parsed by JSONSerialization one at a time; this only finds their bounds.
struct MPDPlaylists {
    struct Element {
        var bytes: [UInt8]
        var line: Int
        /// Why the element could not be cut out whole (the file ends inside it, it is too long).
        var problem: String?
    }

    private let reader: ByteReader
    let path: String
    let maxElementBytes: Int
    private var line = 1
    private var depth = 0
    private var inString = false
    private var escaped = false
    /// At depth 1: whether the next string is a key, the key being read, and the last key read.
    private var expectingKey = false
    private var key: [UInt8]?
    private var lastKey: [UInt8] = []
    private var inPlaylists = false
    private var sawPlaylists = false
    private var finished = false

    init(path: String, maxElementBytes: Int) throws(MulanError) {
        self.path = path
        self.maxElementBytes = maxElementBytes
        reader = try ByteReader(path: path)
    }

    private static let playlistsKey = Array("playlists".utf8)

    private func notASlice(_ why: String) -> MulanError {
        MulanError(.manifest, "this file is not a Million Playlist Dataset slice: \(why)",
                   location: SourceLocation(file: path, line: line),
                   hint: "pass mpd.slice.*.json files as published (one JSON object with a playlists array); "
                       + "is --format right for this file?")
    }

    /// The next playlist, or nil after the last one.
    mutating func next() throws(MulanError) -> Element? {
        if finished { return nil }
        var element: [UInt8]?
        var elementLine = 0
        var elementTooLong = false
        var strayLine: Int?
        while let byte = try reader.next() {
            if element != nil {
                if element!.count < maxElementBytes { element!.append(byte) } else { elementTooLong = true }
            }
            if byte == 0x0A { line += 1 }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == 0x5C {
                    escaped = true
                } else if byte == 0x22 {
                    inString = false
                    if let k = key { lastKey = k; key = nil }
                } else if key != nil {
                    key!.append(byte)
                }
                continue
            }
            switch byte {
            case 0x20, 0x09, 0x0A, 0x0D:
                break
            case 0x22:
                inString = true
                if depth == 1 && expectingKey { key = [] }
                if depth == 2 && inPlaylists && element == nil { strayLine = strayLine ?? line }
            case 0x3A where depth == 1:
                expectingKey = false
            case 0x2C where depth == 1:
                expectingKey = true
            case 0x2C where depth == 2 && inPlaylists:
                if let stray = strayLine { return Element(bytes: [], line: stray, problem: "an element of playlists is not a JSON object") }
            case 0x7B, 0x5B:
                if depth == 0 && byte != 0x7B { throw notASlice("it does not start with a JSON object") }
                if depth == 0 { expectingKey = true }
                if depth == 1 && byte == 0x5B && lastKey == Self.playlistsKey { inPlaylists = true; sawPlaylists = true }
                if depth == 2 && inPlaylists && element == nil {
                    element = [byte]
                    elementLine = line
                }
                depth += 1
            case 0x7D, 0x5D:
                depth -= 1
                if depth == 2, let bytes = element {
                    return Element(bytes: bytes, line: elementLine,
                                   problem: elementTooLong ? "the playlist is longer than \(maxElementBytes) bytes" : nil)
                }
                if depth == 1 && inPlaylists {
                    inPlaylists = false
                    if let stray = strayLine { return Element(bytes: [], line: stray, problem: "an element of playlists is not a JSON object") }
                }
                if depth <= 0 {
                    finished = true
                    if !sawPlaylists { throw notASlice("its object has no playlists array") }
                    return nil
                }
            default:
                if depth == 0 { throw notASlice("it does not start with a JSON object") }
                if depth == 2 && inPlaylists && element == nil { strayLine = strayLine ?? line }
            }
        }
        finished = true
        if let element {
            return Element(bytes: element, line: elementLine, problem: "the file ends inside this playlist (is it truncated?)")
        }
        if !sawPlaylists { throw notASlice(depth == 0 ? "it is empty" : "its object has no playlists array") }
        if depth > 0 {
            return Element(bytes: [], line: line, problem: "the file ends before the slice object is closed (is it truncated?)")
        }
        return nil
    }
}

/// Spotify track URI → our track id, from a CSV `track_uri,track_id` (`--track-map`). A row that
/// cannot be read stops the load with its line (the map decides which tracks get text).
public struct TrackURIMap: Sendable {
    public let path: String
    public private(set) var trackIDs: [String: String] = [:]

    public init(path: String, trackIDs: [String: String]) {
        self.path = path
        self.trackIDs = trackIDs
    }

    public static func load(path: String) throws(MulanError) -> TrackURIMap {
        var map = TrackURIMap(path: path, trackIDs: [:])
        func fail(_ line: Int, _ what: String) -> MulanError {
            MulanError(.usage, "cannot read the track map: \(what)", location: SourceLocation(file: path, line: line),
                       hint: "pass a CSV with the header track_uri,track_id and one row per track you have audio for")
        }
        try CSVReader.loadTable(path: path, required: ["track_uri", "track_id"], fail: fail) { (row, line) throws(MulanError) in
            let uri = row["track_uri"] ?? "", id = row["track_id"] ?? ""
            if uri.isEmpty { throw fail(line, "track_uri is empty") }
            if let problem = TrackIDRules.problem(id) { throw fail(line, problem) }
            if let other = map.trackIDs[uri], other != id {
                throw fail(line, "\(uri) is mapped twice (to \(other) and \(id))")
            }
            map.trackIDs[uri] = id
        }
        return map
    }
}
