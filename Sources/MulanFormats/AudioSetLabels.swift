import Foundation
import MulanCore

/// AudioSet label ids (`/m/…`, `/t/…`) and their display names, from the ontology
/// (`ontology.json`) or from `class_labels_indices.csv` (`index,mid,display_name`).
public struct AudioSetLabels: Sendable {
    public struct Label: Sendable, Hashable {
        public var id: String
        public var name: String
        public var children: [String]
        public var restrictions: [String]
    }

    public private(set) var labels: [String: Label] = [:]
    /// The ids in the order of the file (first occurrence).
    public private(set) var order: [String] = []

    public init(labels: [Label]) {
        for l in labels where self.labels[l.id] == nil {
            self.labels[l.id] = l
            order.append(l.id)
        }
    }

    /// Whether the labels carry the ontology's hierarchy (child_ids), as ontology.json does and
    /// class_labels_indices.csv does not.
    public var hasHierarchy: Bool { labels.values.contains { !$0.children.isEmpty } }

    public func name(of id: String) -> String? { labels[id]?.name }

    /// Loads `ontology.json` (a JSON array of objects with id, name, child_ids, restrictions).
    public static func ontology(path: String) throws(MulanError) -> AudioSetLabels {
        struct Entry: Decodable {
            var id: String
            var name: String
            var child_ids: [String]?
            var restrictions: [String]?
        }
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let entries = try JSONDecoder().decode([Entry].self, from: data)
            return AudioSetLabels(labels: entries.map {
                Label(id: $0.id, name: $0.name, children: $0.child_ids ?? [], restrictions: $0.restrictions ?? [])
            })
        } catch {
            throw MulanError(.usage, "cannot read the AudioSet ontology \(path)",
                             hint: "pass the ontology.json of the AudioSet ontology repository", cause: error)
        }
    }

    /// Loads `class_labels_indices.csv` (header `index,mid,display_name`; names may be quoted).
    public static func classLabels(path: String) throws(MulanError) -> AudioSetLabels {
        let csv = try CSVReader(path: path)
        var labels: [Label] = []
        var header: [String]?
        while let record = try csv.next() {
            if record.fields == [""] { continue }
            guard let h = header else { header = record.fields; continue }
            guard let mid = h.firstIndex(of: "mid"), let name = h.firstIndex(of: "display_name"),
                  record.fields.count == h.count, record.error == nil else {
                throw MulanError(.usage, "\(path):\(record.line): expected index,mid,display_name",
                                 hint: "pass AudioSet's class_labels_indices.csv or ontology.json")
            }
            labels.append(Label(id: record.fields[mid], name: record.fields[name], children: [], restrictions: []))
        }
        return AudioSetLabels(labels: labels)
    }

    /// Loads either kind, telling them apart by extension (.json or .csv).
    public static func load(path: String) throws(MulanError) -> AudioSetLabels {
        path.lowercased().hasSuffix(".json") ? try ontology(path: path) : try classLabels(path: path)
    }

    /// Every id in the subtree under `root` (inclusive), following child_ids.
    public func subtree(_ root: String) -> Set<String> {
        var seen: Set<String> = []
        var stack = [root]
        while let id = stack.popLast() {
            if !seen.insert(id).inserted { continue }
            stack += labels[id]?.children ?? []
        }
        return seen
    }

    /// The ancestors of `id` (parents, grandparents, …), nearest first.
    public func ancestors(of id: String) -> [String] {
        var parents: [String: [String]] = [:]
        for l in labels.values { for c in l.children { parents[c, default: []].append(l.id) } }
        var result: [String] = []
        var frontier = parents[id] ?? []
        var seen: Set<String> = []
        while !frontier.isEmpty {
            var next: [String] = []
            for p in frontier.sorted() where seen.insert(p).inserted {
                result.append(p)
                next += parents[p] ?? []
            }
            frontier = next
        }
        return result
    }

    /// Gen-25: the direct children of "Music genre" (pop, hip hop, rock, …; 25 in the ontology), in
    /// the ontology's order. Empty when the ontology lacks "Music genre".
    public func musicGenres() -> [String] {
        (labels[AudioSetConventions.musicGenre]?.children ?? []).filter { labels[$0] != nil }
    }

    /// Mu-141: the labels of the "Music" subtree that are AudioSet classes (`classes`, from
    /// class_labels_indices.csv: 150 of the ontology's 189 music nodes), without the "Music role"
    /// subtree (background music, jingle, wedding music, …: uses of music rather than its sound).
    /// With the published files this leaves 141: Music, Song, the 80 instrument classes, the 52
    /// genre classes and the 7 mood classes. In the order of `classes`.
    public func musicLabels(classes: AudioSetLabels) -> [String] {
        let music = subtree(AudioSetConventions.music).subtracting(subtree(AudioSetConventions.musicRole))
        return classes.order.filter(music.contains)
    }
}
