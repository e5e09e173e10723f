import Foundation
import MulanCore
import MulanFormats

/// The configuration of `mulan-filter`, per source, with documented defaults
/// (manifests/filters.toml shows every key). Loaded from TOML; unknown keys are errors.
public struct FilterConfig: Sendable {
    public struct Tags: Sendable {
        public var minFrequency = 2
        public var maxPerTrack = 20
        public var maxTokens = 16
        public var stoplist: [String] = ["favorite", "favorites", "favourite", "seen live", "check out", "awesome",
                                         "love", "loved", "my favorite", "good", "cool", "best", "amazing",
                                         "beautiful", "albums i own", "spotify", "youtube", "music", "song",
                                         "songs", "other", "misc", "unknown", "none", "n a"]
        public var stopPatterns: [String] = [#"^\d{4}s?$"#, #"^\d+$"#, #"^\d0s$"#, #"^(https?|www) "#,
                                             #"^(under|over) \d+ listeners$"#]
        public var synonyms: [String: [String]] = [
            "hip hop": ["hip-hop", "hiphop", "hip hop music"],
            "rnb": ["r&b", "r and b", "rhythm and blues"],
            "drum and bass": ["dnb", "drum n bass", "drum'n'bass", "drumnbass"],
            "electronic": ["electronica", "electronic music"],
            "rock": ["rock music", "rock n roll", "rock'n'roll"],
            "classical": ["classical music", "classic"],
            "female vocals": ["female vocal", "female vocalist", "female vocalists", "female singer", "woman singing"],
            "male vocals": ["male vocal", "male vocalist", "male vocalists", "male singer", "man singing"],
        ]
    }

    public struct Descriptions: Sendable {
        public var minTokens = 4
        public var maxTokens = 128
        /// Allowed dominant scripts of a sentence (ICU names: "Latin", "Cyrillic", …); empty: any.
        public var scripts: [String] = []
        public var boilerplatePatterns: [String] = [
            #"https?://|www\.\S+"#,                                  // links
            #"[\w.+-]+@[\w-]+\.[\w.]+"#,                             // e-mail
            #"(^|\s)@\w{2,}"#,                                       // social handles
            #"(?i)\b(subscribe|follow (me|us)|like and share|link in (the )?bio|out now on|stream it|buy it)\b"#,
            #"(?i)(©|\(c\)|copyright|all rights reserved|℗)"#,     // copyright lines
            #"^\s*(\d{1,2}:)?\d{1,2}:\d{2}\b"#,                      // timestamped track lists
            #"(?i)^\s*(track ?list|tracklist|lyrics)\s*:?\s*$"#,
        ]
        /// The relevance model (see `mulan-filter train-relevance`); relative paths are resolved
        /// against the configuration file's folder. Empty: no relevance filter.
        public var relevanceModel = "relevance-model.json"
        public var relevanceThreshold = 0.5
        public var dedupe = true
        public var nearDuplicateThreshold = 0.8
        public var minhashPermutations = 64
        public var minhashBands = 16
        public var shingleWords = 3
    }

    public struct Playlists: Sendable {
        public var minTracks = 2
        public var maxTracks = 5000
        public var maxTokens = 32
        public var genericTitles: [String] = ["my mix", "mix", "playlist", "my playlist", "new playlist", "favorites",
                                              "favourites", "my favorites", "liked songs", "untitled", "music",
                                              "songs", "stuff", "random", "misc", "good songs", "best songs",
                                              "my songs", "car", "gym", "party", "chill", "on repeat", "mixtape"]
        public var genericPatterns: [String] = [#"^(my )?(playlist|mix|mixtape|favorites?|favourites?|songs?|music|list)( ?#?\d+)?$"#,
                                                #"^[\d\W_]+$"#]
    }

    public struct Aset: Sendable {
        /// ontology.json (or class_labels_indices.csv, without subtree rules); relative to the file.
        public var ontology = ""
        public var root = "/m/04rlf"  // Music
        public var dropRestricted: [String] = ["abstract", "blacklist"]
        public var addAncestors = false
    }

    public var tags = Tags()
    public var descriptions = Descriptions()
    public var playlists = Playlists()
    public var aset = Aset()
    /// The folder relative paths in the configuration are resolved against.
    public var baseDirectory = "."

    public init() {}

    /// Reads a TOML configuration; keys not given keep their defaults.
    public static func load(path: String) throws(MulanError) -> FilterConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw MulanError(.usage, "cannot read the filter configuration \(path)", cause: error)
        }
        var config = try parse(text, source: path)
        config.baseDirectory = (Paths.absolute(path) as NSString).deletingLastPathComponent
        return config
    }

    public static func parse(_ text: String, source: String) throws(MulanError) -> FilterConfig {
        let root = try TOMLParser.parse(text, source: source)
        var c = FilterConfig()
        let r = Reader(source: source)
        try r.keys(root, allowed: ["tags", "descriptions", "playlists", "aset"], in: "")
        if let t = root["tags"] {
            let t = try r.table(t, "tags")
            try r.keys(t, allowed: ["min_frequency", "max_per_track", "max_tokens", "stoplist", "stop_patterns", "synonyms"],
                       in: "tags")
            c.tags.minFrequency = try r.int(t["min_frequency"], "tags.min_frequency") ?? c.tags.minFrequency
            c.tags.maxPerTrack = try r.int(t["max_per_track"], "tags.max_per_track") ?? c.tags.maxPerTrack
            c.tags.maxTokens = try r.int(t["max_tokens"], "tags.max_tokens") ?? c.tags.maxTokens
            c.tags.stoplist = try r.strings(t["stoplist"], "tags.stoplist") ?? c.tags.stoplist
            c.tags.stopPatterns = try r.strings(t["stop_patterns"], "tags.stop_patterns") ?? c.tags.stopPatterns
            if let s = t["synonyms"] {
                var map: [String: [String]] = [:]
                for (k, v) in try r.table(s, "tags.synonyms") {
                    map[k] = try r.strings(v, "tags.synonyms.\(k)")
                }
                c.tags.synonyms = map
            }
        }
        if let d = root["descriptions"] {
            let d = try r.table(d, "descriptions")
            try r.keys(d, allowed: ["min_tokens", "max_tokens", "scripts", "boilerplate_patterns", "relevance_model",
                                    "relevance_threshold", "dedupe", "near_duplicate_threshold", "minhash_permutations",
                                    "minhash_bands", "shingle_words"], in: "descriptions")
            c.descriptions.minTokens = try r.int(d["min_tokens"], "descriptions.min_tokens") ?? c.descriptions.minTokens
            c.descriptions.maxTokens = try r.int(d["max_tokens"], "descriptions.max_tokens") ?? c.descriptions.maxTokens
            c.descriptions.scripts = try r.strings(d["scripts"], "descriptions.scripts") ?? c.descriptions.scripts
            c.descriptions.boilerplatePatterns = try r.strings(d["boilerplate_patterns"], "descriptions.boilerplate_patterns")
                ?? c.descriptions.boilerplatePatterns
            c.descriptions.relevanceModel = try r.string(d["relevance_model"], "descriptions.relevance_model")
                ?? c.descriptions.relevanceModel
            c.descriptions.relevanceThreshold = try r.double(d["relevance_threshold"], "descriptions.relevance_threshold")
                ?? c.descriptions.relevanceThreshold
            c.descriptions.dedupe = try r.bool(d["dedupe"], "descriptions.dedupe") ?? c.descriptions.dedupe
            c.descriptions.nearDuplicateThreshold = try r.double(d["near_duplicate_threshold"],
                                                                 "descriptions.near_duplicate_threshold")
                ?? c.descriptions.nearDuplicateThreshold
            c.descriptions.minhashPermutations = try r.int(d["minhash_permutations"], "descriptions.minhash_permutations")
                ?? c.descriptions.minhashPermutations
            c.descriptions.minhashBands = try r.int(d["minhash_bands"], "descriptions.minhash_bands")
                ?? c.descriptions.minhashBands
            c.descriptions.shingleWords = try r.int(d["shingle_words"], "descriptions.shingle_words")
                ?? c.descriptions.shingleWords
            if c.descriptions.minhashPermutations % max(c.descriptions.minhashBands, 1) != 0 {
                throw MulanError(.usage, "descriptions.minhash_permutations must be a multiple of minhash_bands",
                                 location: SourceLocation(file: source))
            }
        }
        if let p = root["playlists"] {
            let p = try r.table(p, "playlists")
            try r.keys(p, allowed: ["min_tracks", "max_tracks", "max_tokens", "generic_titles", "generic_patterns"],
                       in: "playlists")
            c.playlists.minTracks = try r.int(p["min_tracks"], "playlists.min_tracks") ?? c.playlists.minTracks
            c.playlists.maxTracks = try r.int(p["max_tracks"], "playlists.max_tracks") ?? c.playlists.maxTracks
            c.playlists.maxTokens = try r.int(p["max_tokens"], "playlists.max_tokens") ?? c.playlists.maxTokens
            c.playlists.genericTitles = try r.strings(p["generic_titles"], "playlists.generic_titles") ?? c.playlists.genericTitles
            c.playlists.genericPatterns = try r.strings(p["generic_patterns"], "playlists.generic_patterns")
                ?? c.playlists.genericPatterns
        }
        if let a = root["aset"] {
            let a = try r.table(a, "aset")
            try r.keys(a, allowed: ["ontology", "root", "drop_restricted", "add_ancestors"], in: "aset")
            c.aset.ontology = try r.string(a["ontology"], "aset.ontology") ?? c.aset.ontology
            c.aset.root = try r.string(a["root"], "aset.root") ?? c.aset.root
            c.aset.dropRestricted = try r.strings(a["drop_restricted"], "aset.drop_restricted") ?? c.aset.dropRestricted
            c.aset.addAncestors = try r.bool(a["add_ancestors"], "aset.add_ancestors") ?? c.aset.addAncestors
        }
        return c
    }

    /// Resolves a path from the configuration against its folder.
    public func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path)
    }

    /// The canonical text of one source's settings (for the filter version).
    public func canonical(_ source: TextSource) -> String {
        func list(_ a: [String]) -> String { "[" + a.map(JSONText.quote).joined(separator: ",") + "]" }
        switch source {
        case .tags:
            let syn = tags.synonyms.keys.sorted().map { JSONText.quote($0) + ":" + list(tags.synonyms[$0]!.sorted()) }
            return "{\"min_frequency\":\(tags.minFrequency),\"max_per_track\":\(tags.maxPerTrack),\"max_tokens\":\(tags.maxTokens),"
                + "\"stoplist\":\(list(tags.stoplist.sorted())),\"stop_patterns\":\(list(tags.stopPatterns)),"
                + "\"synonyms\":{\(syn.joined(separator: ","))}}"
        case .descriptions:
            let d = descriptions
            return "{\"min_tokens\":\(d.minTokens),\"max_tokens\":\(d.maxTokens),\"scripts\":\(list(d.scripts.sorted())),"
                + "\"boilerplate_patterns\":\(list(d.boilerplatePatterns)),\"relevance_model\":\(JSONText.quote(d.relevanceModel)),"
                + "\"relevance_threshold\":\(d.relevanceThreshold),\"dedupe\":\(d.dedupe),"
                + "\"near_duplicate_threshold\":\(d.nearDuplicateThreshold),\"minhash_permutations\":\(d.minhashPermutations),"
                + "\"minhash_bands\":\(d.minhashBands),\"shingle_words\":\(d.shingleWords)}"
        case .playlists:
            let p = playlists
            return "{\"min_tracks\":\(p.minTracks),\"max_tracks\":\(p.maxTracks),\"max_tokens\":\(p.maxTokens),"
                + "\"generic_titles\":\(list(p.genericTitles.sorted())),\"generic_patterns\":\(list(p.genericPatterns))}"
        case .aset:
            return "{\"ontology\":\(JSONText.quote(aset.ontology)),\"root\":\(JSONText.quote(aset.root)),"
                + "\"drop_restricted\":\(list(aset.dropRestricted.sorted())),\"add_ancestors\":\(aset.addAncestors)}"
        }
    }

    /// Typed access with errors that name the key.
    struct Reader {
        let source: String
        func fail(_ key: String, _ expected: String) -> MulanError {
            MulanError(.usage, "\(key) must be \(expected)", location: SourceLocation(file: source),
                       hint: "see manifests/filters.toml for every key and its default")
        }
        func keys(_ t: [String: TOMLValue], allowed: [String], in section: String) throws(MulanError) {
            for k in t.keys where !allowed.contains(k) {
                throw MulanError(.usage, "unknown key \(section.isEmpty ? k : section + "." + k)",
                                 location: SourceLocation(file: source),
                                 hint: "known keys: \(allowed.joined(separator: ", "))")
            }
        }
        func table(_ v: TOMLValue, _ key: String) throws(MulanError) -> [String: TOMLValue] {
            guard let t = v.table else { throw fail(key, "a table") }
            return t
        }
        func int(_ v: TOMLValue?, _ key: String) throws(MulanError) -> Int? {
            guard let v else { return nil }
            guard let i = v.int, i >= 0 else { throw fail(key, "a whole number ≥ 0") }
            return i
        }
        func double(_ v: TOMLValue?, _ key: String) throws(MulanError) -> Double? {
            guard let v else { return nil }
            guard let d = v.double, d.isFinite else { throw fail(key, "a number") }
            return d
        }
        func bool(_ v: TOMLValue?, _ key: String) throws(MulanError) -> Bool? {
            guard let v else { return nil }
            guard let b = v.bool else { throw fail(key, "true or false") }
            return b
        }
        func string(_ v: TOMLValue?, _ key: String) throws(MulanError) -> String? {
            guard let v else { return nil }
            guard let s = v.string else { throw fail(key, "a string") }
            return s
        }
        func strings(_ v: TOMLValue?, _ key: String) throws(MulanError) -> [String]? {
            guard let v else { return nil }
            guard let a = v.array, case let s = a.compactMap(\.string), s.count == a.count else {
                throw fail(key, "a list of strings")
            }
            return s
        }
    }
}
