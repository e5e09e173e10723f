// Fuzzes the readers of `mulan-ingest text`: TextFormatReader over generic JSONL, playlists,
// MusicCaps, MagnaTagATune and AudioSet files (both invalid-UTF-8 policies, with and without a
// track id template), the MusicCaps aspect_list parser, and the AudioSet label files
// (class_labels_indices.csv and ontology.json).
import FuzzSupport
import MulanCore

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

let templates: [String?] = [nil, "{ytid}", "{YTID}_{start_seconds}", "{clip_id}-{mp3_path}", "{", "x{missing}y", "{}", "a}{"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = FuzzInput(data, size)
    // Selector: bits 0–2 the format (0 generic, 1 playlists, 2 musiccaps, 3 mtat, 4 audioset; 5 an
    // AudioSet class_labels_indices.csv and a Python list literal; 6 an ontology.json; 7 generic),
    // bit 3 --invalid-utf8 reject, bits 4–6 a track id template (none for "0"…"7"), bit 7 a 64-byte line cap.
    let formats = TextFormat.allCases
    let mode = Int(input.selector & 7) == 7 ? 0 : Int(input.selector & 7)

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
    guard let reader = try? TextFormatReader(path: path, format: format, labels: labels) else { return 0 }
    reader.invalidUTF8 = input.selector & 0x08 != 0 ? .reject : .replace
    reader.trackIDTemplate = templates[(Int((input.selector >> 4) & 7) + 5) % templates.count]
    if input.selector & 0x80 != 0 { reader.maxLineBytes = 64 }
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
