import Foundation
import MulanCore

// The published corpora's own rules — official splits, subsets, tag syntax, how audio files are
// named — in one place, so that `mulan-ingest manifest`, the text readers and `mulan-eval
// --benchmark` apply the same ones.

/// MagnaTagATune (`annotations_final.csv`).
public enum MTATConventions {
    /// The usual split by the first folder of `mp3_path`: `0`–`b` train, `c` valid, `d`–`f` test;
    /// nil when the path does not start with such a folder.
    public static func split(mp3Path path: String) -> String? {
        guard let folder = path.split(separator: "/").first, folder.count == 1, let c = folder.first?.lowercased().first else { return nil }
        switch c {
        case "0"..."9", "a", "b": return "train"
        case "c": return "valid"
        case "d", "e", "f": return "test"
        default: return nil
        }
    }

    /// The `n` most frequent tags of `counts` (tag → clips carrying it), most frequent first, ties by
    /// name: with `n` = 50 over the whole annotations file, the standard top-50 tags.
    public static func mostFrequent(_ counts: [String: Int], _ n: Int) -> [String] {
        Array(counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(n).map(\.key))
    }
}

/// MTG-Jamendo (`autotagging*.tsv`, `splits/split-N/…`).
public enum JamendoConventions {
    /// The tag categories of the autotagging files.
    public static let categories: Set<String> = ["genre", "instrument", "mood/theme"]

    /// A tag field `category---name` (`genre---rock`) as (category, name); nil without `---`.
    public static func tag(_ field: String) -> (category: String, name: String)? {
        guard let separator = field.range(of: "---") else { return nil }
        return (String(field[..<separator.lowerBound]), String(field[separator.upperBound...]))
    }

    /// The split a file holds, from its name: `train.tsv` / `autotagging_genre-train.tsv` → train,
    /// `validation.tsv` / `…-validation.tsv` → valid, `test.tsv` / `…-test.tsv` → test; nil for
    /// other files (`raw_30s_cleantags.tsv`, `autotagging.tsv`).
    public static func split(fileName: String) -> String? {
        let name = (fileName as NSString).lastPathComponent.lowercased()
        for (suffix, split) in [("train.tsv", "train"), ("validation.tsv", "valid"), ("test.tsv", "test")]
        where name == suffix || name.hasSuffix("-" + suffix) {
            return split
        }
        return nil
    }

    /// The audio files a `PATH` may name below the audio root: the full-quality file, then its
    /// `.low.mp3` twin (the dataset's low-quality download).
    public static func audioPaths(_ path: String) -> [String] {
        path.hasSuffix(".mp3") && !path.hasSuffix(".low.mp3") ? [path, String(path.dropLast(4)) + ".low.mp3"] : [path]
    }
}

/// MusicCaps (`musiccaps-public.csv`).
public enum MusicCapsConventions {
    /// Whether an `is_audioset_eval` value is true (`True`, `true`, `1`): the row is in the test split.
    public static func isAudioSetEval(_ value: String) -> Bool {
        ["true", "1"].contains(value.trimmingCharacters(in: .whitespaces).lowercased())
    }
}

/// AudioSet (segment CSVs, ontology).
public enum AudioSetConventions {
    /// "Music" and its child "Music genre" in the ontology.
    public static let music = "/m/04rlf"
    public static let musicGenre = "/m/0kpv1t"
    /// "Music role" (background music, jingle, wedding music, …): uses of music, not sounds.
    public static let musicRole = "/t/dd00028"

    /// File names tried for a segment's audio (any extension), `{ytid}`, `{start}`, `{end}` filled in.
    public static let audioNames = ["{ytid}", "Y{ytid}", "{ytid}_{start}", "{ytid}_{start}-{end}", "{ytid}_{start}_{end}"]

    /// The split of a segment file, from its name: `eval_segments.csv` → test, else train.
    public static func split(fileName: String) -> String {
        (fileName as NSString).lastPathComponent.lowercased().contains("eval") ? "test" : "train"
    }

    /// The label ids of a `positive_labels` field (`/m/04rlf,/m/0kpv1t`).
    public static func labelIDs(_ list: String) -> [String] {
        list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The names a segment's file may have (`templates` filled in).
    public static func audioNames(ytid: String, start: Double, end: Double, templates: [String] = audioNames) -> [String] {
        templates.map {
            $0.replacingOccurrences(of: "{ytid}", with: ytid).replacingOccurrences(of: "{start}", with: seconds(start))
                .replacingOccurrences(of: "{end}", with: seconds(end))
        }
    }

    /// Seconds as written in a file name or manifest: `30` for a whole number, else the shortest decimal.
    public static func seconds(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }

    /// One row of a segment CSV (`YTID, start_seconds, end_seconds, "labels"`), read with
    /// `CSVReader(path:, skipInitialSpace: true, comment: 0x23)`: nil for a blank or header line,
    /// else the segment or why the row is not one.
    public static func segment(_ record: CSVRecord) -> Result<Segment, SegmentError>? {
        if record.fields.count == 1 && record.fields[0].isEmpty { return nil }
        if record.fields.first == "YTID" { return nil }   // a header line without '#'
        guard record.error == nil, record.fields.count >= 3, !record.fields[0].isEmpty,
              let start = Double(record.fields[1]), let end = Double(record.fields[2]), 0 <= start, start < end else {
            return .failure(SegmentError(detail: record.error ?? "expected YTID, start_seconds, end_seconds, labels"))
        }
        return .success(Segment(ytid: record.fields[0], start: start, end: end,
                                labels: record.fields.count > 3 ? labelIDs(record.fields[3]) : [], line: record.line))
    }

    public struct Segment: Sendable {
        public var ytid: String
        public var start: Double
        public var end: Double
        public var labels: [String]
        public var line: Int
    }

    public struct SegmentError: Error, Sendable {
        public var detail: String
    }
}
