import MulanCore

/// The fields of the LAION audio-dataset standard that LAION-CLAP's loader reads from a sample's
/// JSON (`training/data.py`): `text`, a list of caption strings of which it picks one at random
/// (`select_text`, then `random.choice`), and `tag`, the class labels it matches against a class
/// index (`class_label`). mulan makes them from the sample's kept texts (docs/shards.md):
///
/// 1. every kept **description**, as it is (its kept sentences);
/// 2. the kept **tags** joined into one caption, `"jazz, piano, calm"`;
/// 3. every kept **playlist** text, as it is (title, and description when it had one);
/// 4. the kept **AudioSet** label names joined into one caption, `"Jazz, Piano"`.
///
/// In that order, each caption once (an exact repeat is left out). `tag` is the kept tags, each once,
/// in the order of `texts.tags`. A sample always has kept text, so `text` is never empty.
public enum ClapFields {
    /// The captions of a sample's kept texts (`text`).
    public static func captions(_ texts: [String: [SampleRecord.Text]]) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        func add(_ caption: String) {
            if !caption.isEmpty && seen.insert(caption).inserted { out.append(caption) }
        }
        for t in texts[TextSource.descriptions.rawValue] ?? [] { add(t.text) }
        let tagList = tags(texts)
        if !tagList.isEmpty { add(tagList.joined(separator: ", ")) }
        for t in texts[TextSource.playlists.rawValue] ?? [] { add(t.text) }
        let labels = unique((texts[TextSource.aset.rawValue] ?? []).map(\.text))
        if !labels.isEmpty { add(labels.joined(separator: ", ")) }
        return out
    }

    /// The kept tags, each once (`tag`).
    public static func tags(_ texts: [String: [SampleRecord.Text]]) -> [String] {
        unique((texts[TextSource.tags.rawValue] ?? []).map(\.text))
    }

    static func unique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
