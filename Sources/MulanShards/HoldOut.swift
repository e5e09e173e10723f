import Foundation
import MulanCore
import MulanFormats

/// Benchmark test tracks that must not be trained on (`mulan-shard --hold-out FILE`): their clips, and
/// the clips of every track in the same mulan-dedupe duplicate group, are kept out of the train split
/// and counted in dataset.json (`held_out`).
///
/// A file is a manifest with a `track_id` column (CSV or TSV with a header, e.g. what `mulan-ingest
/// manifest` writes for the benchmark) whose rows count when they have no `split` column or their
/// split is `test`; or a plain list, one track id per line (no header, no comma or tab); or
/// `FORMAT:FILE`, a corpus's own file read with its official split (`mtat:annotations_final.csv`,
/// `musiccaps:musiccaps-public.csv`, `audioset:eval_segments.csv`, `jamendo:autotagging-test.tsv`,
/// `song-describer:song_describer.csv`, `fma:tracks.csv`): its test tracks, whether or not their
/// audio is at hand (Song Describer's in MTG-Jamendo's ids too).
public struct HoldOut: Sendable {
    public var files: [String]
    public var trackIDs: Set<String>

    public init(files: [String]) throws(MulanError) {
        self.files = []
        trackIDs = []
        for file in files {
            if let colon = file.firstIndex(of: ":"), let format = CorpusFormat(rawValue: String(file[..<colon])) {
                let path = Paths.absolute(String(file[file.index(after: colon)...]))
                guard FileManager.default.fileExists(atPath: path) else {
                    throw MulanError(.usage, "cannot read the hold-out list \(path)", hint: "check --hold-out \(file)")
                }
                self.files.append(format.rawValue + ":" + path)
                trackIDs.formUnion(try CorpusManifestBuilder(format: format, audioRoot: "/").testTracks(files: [path]))
            } else {
                let path = Paths.absolute(file)
                self.files.append(path)
                try read(path)
            }
        }
    }

    private mutating func read(_ file: String) throws(MulanError) {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw MulanError(.usage, "cannot read the hold-out list \(file)", hint: "check --hold-out")
        }
        let text = String(decoding: data, as: UTF8.self)
        let firstLine = text.prefix { $0 != "\n" && $0 != "\r\n" }
        guard firstLine.contains(",") || firstLine.contains("\t") else {
            for line in text.split(whereSeparator: \.isNewline) {
                let id = line.trimmingCharacters(in: .whitespaces)
                if !id.isEmpty { trackIDs.insert(id) }
            }
            return
        }
        let csv = try CSVReader(path: file, delimiter: firstLine.contains("\t") && !firstLine.contains(",") ? 0x09 : 0x2C)
        var header: [String]?
        while let record = try csv.next() {
            if record.fields.count == 1 && record.fields[0].isEmpty { continue }
            guard let columns = header else {
                guard record.fields.contains("track_id") else {
                    throw MulanError(.usage, "the hold-out list \(file) has no track_id column",
                                     location: SourceLocation(file: file, line: record.line),
                                     hint: "pass a manifest with a track_id column (mulan-ingest manifest writes one) or one id per line")
                }
                header = record.fields
                continue
            }
            var row: [String: String] = [:]
            for (k, v) in zip(columns, record.fields) { row[k] = v }
            guard let id = row["track_id"], !id.isEmpty else { continue }
            if let split = row["split"], !split.isEmpty, split != "test" { continue }
            trackIDs.insert(id)
        }
    }
}
