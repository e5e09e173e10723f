// Fuzzes the readers of `mulan-ingest text`: TextFormatReader over every format (generic JSONL,
// playlists, MusicCaps, MagnaTagATune, AudioSet, Song Describer, MTG-Jamendo, FMA with a fixed
// genres.csv, MPD slices with a fixed track map, LP-MusicCaps; both invalid-UTF-8 policies, with and
// without a track id template), the MusicCaps aspect_list parser, and the AudioSet label files
// (class_labels_indices.csv and ontology.json).
import FuzzSupport
import MulanCore
import MulanFormats

let labels: AudioSetLabels = {
    // A small ontology, with a cycle (Music → Keyboard → Music) as a hostile file could hold.
    let ontology = """
    [{"id": "/m/04rlf", "name": "Music", "child_ids": ["/m/0342h", "/m/05148p4"]},
     {"id": "/m/0342h", "name": "Guitar", "child_ids": []},
     {"id": "/m/05148p4", "name": "Keyboard (musical)", "child_ids": ["/m/04rlf"]},
     {"id": "/t/dd00004", "name": "Whispering, soft", "restrictions": ["abstract"]}]
    """
    let bytes = Array(ontology.utf8)
    let path = bytes.withUnsafeBufferPointer { FuzzScratch.write($0, name: "fixed-ontology.json") }
    return try! AudioSetLabels.ontology(path: path)
}()

/// FMA's genres.csv and an MPD track map, small and fixed (their loaders refuse bad files as a whole).
let references: TextReferences = {
    func fixed(_ text: String, _ name: String) -> String {
        Array(text.utf8).withUnsafeBufferPointer { FuzzScratch.write($0, name: name) }
    }
    let genres = try! FMAGenres.load(path: fixed("genre_id,#tracks,parent,title,top_level\n12,3,0,Rock,12\n21,2,0,Hip-Hop,21\n",
                                                 "fixed-genres.csv"))
    let map = try! TrackURIMap.load(path: fixed("track_uri,track_id\nspotify:track:0UaMYEvWZi0ZqiDOoHU3YI,t1\n"
                                                + "spotify:track:6I9VzXrHxO9rA9A5euc8Ak,t2\n", "fixed-map.csv"))
    return TextReferences(labels: labels, genres: genres, trackMap: map)
}()

let templates: [String?] = [nil, "{ytid}", "{YTID}_{start_seconds}", "{clip_id}-{mp3_path}", "{", "x{missing}y", "{}", "a}{"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // Selector: bits 0–3 the mode (TextFormat.allCases in order; then an AudioSet
    // class_labels_indices.csv and a Python list literal; then an ontology.json; the values above
    // that read generic JSONL with a 64-byte line cap), bit 4 --invalid-utf8 reject, bits 5–7 a track
    // id template (none for most of the ASCII digits and letters a seed file starts with).
    let formats = TextFormat.allCases
    let nibble = Int(input.selector & 0x0F)
    let mode = nibble < formats.count + 2 ? nibble : 0

    if mode == formats.count {
        // AudioSet label files, and the Python list literal parser on the same bytes.
        let csvPath = FuzzScratch.write(input.rest, name: "labels.csv")
        if let l = try? AudioSetLabels.load(path: csvPath) {
            for id in l.labels.keys.prefix(8) { _ = l.subtree(id); _ = l.ancestors(of: id) }
        }
        let text = String(decoding: input.rest, as: UTF8.self)
        if let items = PythonListLiteral.parse(text) { precondition(items.count <= text.unicodeScalars.count) }
        return 0
    }
    if mode == formats.count + 1 {
        let jsonPath = FuzzScratch.write(input.rest, name: "ontology.json")
        if let l = try? AudioSetLabels.load(path: jsonPath) {
            for id in l.labels.keys.prefix(8) { _ = l.subtree(id); _ = l.ancestors(of: id) }
        }
        return 0
    }

    let format = formats[mode]
    let path = FuzzScratch.write(input.rest, name: "texts.\(format.rawValue)")
    guard let reader = try? TextFormatReader(path: path, format: format, references: references) else { return 0 }
    reader.invalidUTF8 = input.selector & 0x10 != 0 ? .reject : .replace
    reader.trackIDTemplate = templates[(Int(input.selector >> 5) + 7) % templates.count]
    if nibble >= formats.count + 2 { reader.maxLineBytes = 64 }
    var records = 0
    while true {
        let result: TextRecordResult?
        do { result = try reader.next() } catch { break }
        guard let result else { break }
        records += 1
        for a in result.annotations {
            precondition(!a.trackID.isEmpty || format == .playlists, "an annotation without a track id")
            precondition(a.origin.line != nil, "an annotation without a line")
        }
        for r in result.rejects { precondition(r.origin.line != nil, "a reject without a line") }
        precondition(records <= input.rest.count + 1, "more records than bytes")
    }
    return 0
}
