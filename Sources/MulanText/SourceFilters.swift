import Foundation
import MulanCore
import MulanFormats

/// One filtering decision for one raw text.
public struct TextDecision: Sendable {
    public var kept: Bool
    public var reason: String
    public var normalized: String
    public var tokenIDs: [Int32] = []
    /// JSON with per-sentence decisions (descriptions) or other detail.
    public var details: String?
    /// Per-sentence reasons, for statistics (descriptions only).
    public var sentenceReasons: [String] = []

    public init(kept: Bool, reason: String, normalized: String) {
        self.kept = kept
        self.reason = reason
        self.normalized = normalized
    }
}

/// Compiled regular expressions (ICU, through Foundation) with errors that name the setting.
struct PatternSet {
    let patterns: [(source: String, regex: NSRegularExpression)]

    init(_ sources: [String], key: String) throws(MulanError) {
        var compiled: [(String, NSRegularExpression)] = []
        for s in sources {
            do {
                compiled.append((s, try NSRegularExpression(pattern: s)))
            } catch {
                throw MulanError(.usage, "\(key): \"\(s)\" is not a valid regular expression",
                                 hint: "patterns use ICU regular expression syntax")
            }
        }
        patterns = compiled
    }

    func firstMatch(_ text: String) -> String? {
        let range = NSRange(text.startIndex..., in: text)
        return patterns.first { $0.regex.firstMatch(in: text, range: range) != nil }?.source
    }
}

/// The canonical form of a short text (tags, playlist titles): NFKC case-folded, punctuation and
/// symbols turned into spaces (apostrophes removed), whitespace folded.
public func canonicalShortText(_ text: String) -> String {
    let folded = (try? UnicodeNormalizer.normalize(TextNormalizer.normalize(text), form: .nfkcCasefold)) ?? text.lowercased()
    var out = String.UnicodeScalarView()
    var space = false
    for s in folded.unicodeScalars {
        if s == "'" || s == "’" { continue }
        let c = s.properties.generalCategory
        let isWord = s.properties.isAlphabetic || c == .decimalNumber || c == .nonspacingMark || s == "&"
            || c == .otherSymbol  // emoji stay, so emoji-only titles can be recognized
        if !isWord {
            space = !out.isEmpty
            continue
        }
        if space { out.append(" "); space = false }
        out.append(s)
    }
    return String(out)
}

/// Short-form tags: canonical form, synonyms, stoplist and patterns, length in tokens. Corpus-level
/// rules (minimum frequency, duplicates, maximum per track) are applied by the filter job.
public final class TagFilter {
    let config: FilterConfig.Tags
    let tokenizer: BertTokenizer
    let stop: Set<String>
    let patterns: PatternSet
    let synonyms: [String: String]

    public init(config: FilterConfig.Tags, tokenizer: BertTokenizer) throws(MulanError) {
        self.config = config
        self.tokenizer = tokenizer
        stop = Set(config.stoplist.map(canonicalShortText))
        patterns = try PatternSet(config.stopPatterns, key: "tags.stop_patterns")
        var map: [String: String] = [:]
        for (canonical, variants) in config.synonyms {
            let c = canonicalShortText(canonical)
            for v in variants { map[canonicalShortText(v)] = c }
        }
        synonyms = map
    }

    public func decide(_ text: String, unfiltered: Bool) -> TextDecision {
        var canonical = canonicalShortText(text)
        if let mapped = synonyms[canonical] { canonical = mapped }
        var d = TextDecision(kept: false, reason: "empty", normalized: canonical)
        if canonical.isEmpty { return d }
        d.tokenIDs = tokenizer.encode(canonical)
        if !unfiltered {
            if stop.contains(canonical) { d.reason = "stoplist"; return d }
            if patterns.firstMatch(canonical) != nil { d.reason = "stop-pattern"; return d }
            if d.tokenIDs.count > config.maxTokens { d.reason = "too-long"; return d }
        }
        d.kept = true
        d.reason = "kept"
        return d
    }
}

/// Playlist titles: generic titles (stoplist and patterns), length; size and duplicate rules are
/// applied by the filter job.
public final class PlaylistFilter {
    let config: FilterConfig.Playlists
    let tokenizer: BertTokenizer
    let generic: Set<String>
    let patterns: PatternSet

    public init(config: FilterConfig.Playlists, tokenizer: BertTokenizer) throws(MulanError) {
        self.config = config
        self.tokenizer = tokenizer
        generic = Set(config.genericTitles.map(canonicalShortText))
        patterns = try PatternSet(config.genericPatterns, key: "playlists.generic_patterns")
    }

    public func decide(_ text: String, unfiltered: Bool) -> TextDecision {
        let normalized = TextNormalizer.normalize(text)
        let canonical = canonicalShortText(text)
        var d = TextDecision(kept: false, reason: "empty", normalized: normalized)
        if normalized.isEmpty { return d }
        d.tokenIDs = tokenizer.encode(normalized)
        if !unfiltered {
            if canonical.isEmpty || generic.contains(canonical) { d.reason = "generic-title"; return d }
            if patterns.firstMatch(canonical) != nil || patterns.firstMatch(normalized) != nil {
                d.reason = "generic-title"
                return d
            }
            if d.tokenIDs.count > config.maxTokens { d.reason = "too-long"; return d }
        }
        d.kept = true
        d.reason = "kept"
        return d
    }
}

/// AudioSet label names: kept under the configured ontology subtree, abstract and blacklisted
/// classes dropped, ancestors optionally added.
public final class AsetFilter {
    let config: FilterConfig.Aset
    let tokenizer: BertTokenizer
    let labels: AudioSetLabels?
    let byName: [String: String]
    let allowed: Set<String>?

    public init(config: FilterConfig.Aset, labels: AudioSetLabels?, tokenizer: BertTokenizer) {
        self.config = config
        self.tokenizer = tokenizer
        self.labels = labels
        var names: [String: String] = [:]
        for l in labels?.labels.values.sorted(by: { $0.id < $1.id }) ?? [] where names[l.name.lowercased()] == nil {
            names[l.name.lowercased()] = l.id
        }
        byName = names
        if let labels, !config.root.isEmpty, labels.labels[config.root] != nil {
            allowed = labels.subtree(config.root)
        } else {
            allowed = nil
        }
    }

    public func decide(_ text: String, unfiltered: Bool) -> TextDecision {
        let normalized = TextNormalizer.normalize(text)
        var d = TextDecision(kept: false, reason: "empty", normalized: normalized)
        if normalized.isEmpty { return d }
        let id = byName[normalized.lowercased()]
        if !unfiltered, labels != nil {
            guard let id, let label = labels?.labels[id] else { d.reason = "unknown-label"; return d }
            if let restricted = label.restrictions.first(where: { config.dropRestricted.contains($0) }) {
                d.reason = "restricted-\(restricted)"
                return d
            }
            if let allowed, !allowed.contains(id) { d.reason = "outside-subtree"; return d }
        }
        if config.addAncestors, let id, let labels {
            let ancestors = labels.ancestors(of: id).compactMap { labels.name(of: $0) }
            if !ancestors.isEmpty { d.normalized = ([normalized] + ancestors).joined(separator: ", ") }
        }
        d.tokenIDs = tokenizer.encode(d.normalized)
        d.kept = true
        d.reason = "kept"
        return d
    }
}

/// What the description filter needs to find duplicates across the whole source (kept on disk by
/// the filter job, so memory stays bounded).
public protocol SentenceIndex {
    /// Whether an identical sentence was recorded before; records it when not.
    func seenExact(_ hash: UInt64) throws -> Bool
    /// Whether a recorded sentence shares a band and is at least `threshold` similar; records
    /// this one when not.
    func nearDuplicate(signature: [UInt64], bands: [UInt64], threshold: Double) throws -> Bool
}

/// Long-form descriptions: ICU sentences, boilerplate patterns, script, length in tokens,
/// relevance (a trained linear model), exact and near duplicates across tracks.
public final class DescriptionFilter {
    let config: FilterConfig.Descriptions
    let tokenizer: BertTokenizer
    let boilerplate: PatternSet
    let model: RelevanceModel?
    let minhash: MinHasher
    let index: SentenceIndex?

    public init(config: FilterConfig.Descriptions, tokenizer: BertTokenizer, model: RelevanceModel?,
                index: SentenceIndex?) throws(MulanError) {
        self.config = config
        self.tokenizer = tokenizer
        self.model = model
        self.index = index
        boilerplate = try PatternSet(config.boilerplatePatterns, key: "descriptions.boilerplate_patterns")
        minhash = MinHasher(permutations: config.minhashPermutations, shingleWords: config.shingleWords)
    }

    public func decide(_ text: String, unfiltered: Bool) throws -> TextDecision {
        let sentences = TextNormalizer.sentences(text)
        var kept: [String] = []
        var details: [String] = []
        var reasons: [String] = []
        for sentence in sentences {
            var reason = "kept"
            var score: Double?
            let ids = tokenizer.encode(sentence)
            if !unfiltered {
                if boilerplate.firstMatch(sentence) != nil {
                    reason = "boilerplate"
                } else if !config.scripts.isEmpty, !config.scripts.contains(TextNormalizer.dominantScript(sentence)) {
                    reason = "script"
                } else if ids.count < config.minTokens {
                    reason = "too-short"
                } else if ids.count > config.maxTokens {
                    reason = "too-long"
                } else if let model {
                    let s = model.score(RelevanceModel.features(ids, buckets: model.buckets))
                    score = s
                    if s < config.relevanceThreshold { reason = "not-relevant" }
                }
                if reason == "kept", config.dedupe, let index {
                    let exact = MinHasher.fnv(canonicalShortText(sentence))
                    if try index.seenExact(exact) {
                        reason = "duplicate"
                    } else {
                        let signature = minhash.signature(sentence)
                        if try index.nearDuplicate(signature: signature,
                                                   bands: MinHasher.bands(signature, count: config.minhashBands),
                                                   threshold: config.nearDuplicateThreshold) {
                            reason = "near-duplicate"
                        }
                    }
                }
            }
            reasons.append(reason)
            if reason == "kept" { kept.append(sentence) }
            var item = "{\"sentence\":\(JSONText.quote(sentence)),\"reason\":\"\(reason)\""
            if let score { item += String(format: ",\"relevance\":%.4f", score) }
            details.append(item + "}")
        }
        let joined = kept.joined(separator: " ")
        var d = TextDecision(kept: !kept.isEmpty, reason: kept.isEmpty ? (sentences.isEmpty ? "empty" : "no-sentence-kept") : "kept",
                             normalized: joined.isEmpty ? TextNormalizer.normalize(text) : joined)
        if d.kept { d.tokenIDs = tokenizer.encode(joined) }
        d.details = "[" + details.joined(separator: ",") + "]"
        d.sentenceReasons = reasons
        return d
    }
}
