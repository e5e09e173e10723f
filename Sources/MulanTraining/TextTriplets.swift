import Foundation
import MulanCore
import MulanRecords
import MulanTensor
import MulanText

/// Text triplet classification (the MuLan paper's test of music-language understanding): JSONL
/// lines of `anchor`, `positive` and `negative` texts (and optionally the `attribute` the triplet
/// asks about); a text model gets a triplet right when cos(anchor, positive) > cos(anchor, negative).
public struct TextTriplets: Sendable {
    public struct Triplet: Sendable, Equatable {
        public var anchor: String
        public var positive: String
        public var negative: String
        public var attribute: String?
        public var line: Int

        public init(anchor: String, positive: String, negative: String, attribute: String? = nil, line: Int = 0) {
            self.anchor = anchor
            self.positive = positive
            self.negative = negative
            self.attribute = attribute
            self.line = line
        }
    }

    public var file: String
    public var triplets: [Triplet]

    public init(file: String, triplets: [Triplet]) {
        self.file = file
        self.triplets = triplets
    }

    /// Reads a triplets file; a line that is not a JSON object with the three non-empty strings is
    /// an error at its file:line.
    public init(path: String) throws(MulanError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MulanError(.io, "cannot read \(path)", hint: "check --triplets (a JSONL file)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw MulanError(.data, "\(path) is not UTF-8 text", hint: "pass a UTF-8 JSONL file of {\"anchor\", \"positive\", \"negative\"}")
        }
        let hint = "one {\"anchor\": …, \"positive\": …, \"negative\": …} object per line (\"attribute\" optional)"
        var triplets: [Triplet] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let location = SourceLocation(file: path, line: i + 1)
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw MulanError(.data, "not a JSON object", location: location, hint: hint)
            }
            var texts: [String] = []
            for key in ["anchor", "positive", "negative"] {
                guard let value = object[key] else {
                    throw MulanError(.data, "no \"\(key)\"", location: location, hint: hint)
                }
                guard let s = value as? String, !s.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw MulanError(.data, "\"\(key)\" is not a non-empty string", location: location, hint: hint)
                }
                texts.append(s)
            }
            var attribute: String?
            if let a = object["attribute"] {
                guard let s = a as? String else {
                    throw MulanError(.data, "\"attribute\" is not a string", location: location, hint: hint)
                }
                attribute = s
            }
            triplets.append(Triplet(anchor: texts[0], positive: texts[1], negative: texts[2], attribute: attribute,
                                    line: i + 1))
        }
        guard !triplets.isEmpty else {
            throw MulanError(.usage, "\(path) holds no triplet", hint: hint)
        }
        file = path
        self.triplets = triplets
    }

    /// The texts to embed, anchor, positive and negative of each triplet in turn.
    public var texts: [String] { triplets.flatMap { [$0.anchor, $0.positive, $0.negative] } }

    /// The accuracy given the embeddings of `texts` ([3·count × dim], row-major, any norm): cosine
    /// similarities, a tie counting as wrong (so a constant model scores 0).
    public func accuracy(embeddings e: [Float], dim: Int) -> TripletAccuracy {
        precondition(e.count == triplets.count * 3 * dim)
        func cosine(_ a: Int, _ b: Int) -> Double {
            var ab = 0.0, aa = 0.0, bb = 0.0
            for j in 0..<dim {
                let x = Double(e[a * dim + j]), y = Double(e[b * dim + j])
                ab += x * y
                aa += x * x
                bb += y * y
            }
            return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : 0
        }
        var correct = 0
        var counts: [String: (Int, Int)] = [:]
        for (k, t) in triplets.enumerated() {
            let right = cosine(3 * k, 3 * k + 1) > cosine(3 * k, 3 * k + 2)
            if right { correct += 1 }
            if let a = t.attribute {
                let c = counts[a] ?? (0, 0)
                counts[a] = (c.0 + 1, c.1 + (right ? 1 : 0))
            }
        }
        return TripletAccuracy(triplets: triplets.count, correct: correct,
                               byAttribute: counts.mapValues { .init(triplets: $0.0, correct: $0.1) })
    }
}

/// The text model a run's text tower was warm-started from (`mulan-train --text-init`), as a
/// sentence embedding: the pooled last hidden states of the pretrained encoder, before any
/// projection, with the run's pooling.
public final class WarmStartText {
    public let directory: String
    private let tower: TextTower
    private let tokenizer: BertTokenizer
    private let maxLength: Int

    /// Loads `directory` (a Hugging Face BERT folder) the way the trainer did for `config`.
    public init(directory: String, config: TrainingConfig) throws(MulanError) {
        var random = RandomSource(seed: 0)
        let loaded = try PretrainedText.load(directory: directory, maxLength: config.text.maxLength,
                                             embeddingDim: config.text.embeddingDim, pooling: config.text.pooling,
                                             random: &random)
        self.directory = Paths.absolute(directory)
        tower = loaded.tower
        tokenizer = BertTokenizer(vocabulary: loaded.vocabulary)
        maxLength = config.text.maxLength
    }

    /// The width of the sentence embeddings.
    public var dim: Int { tower.config.width }

    /// Sentence embeddings of `texts`, in order, [texts.count × dim] row-major (not normalised).
    public func embed(texts: [String], batchSize: Int = 32) -> [Float] {
        let ids = texts.map { tokenizer.encode($0) }
        let d = dim
        var out = [Float](repeating: 0, count: texts.count * d)
        for rows in TextTower.lengthSortedBatches(lengths: ids.map(\.count), batchSize: batchSize) {
            let p = tower.pooled(TokenBatch(sequences: rows.map { ids[$0] }, maxLength: maxLength))
            for (k, row) in rows.enumerated() {
                for j in 0..<d { out[row * d + j] = p.storage[k * d + j] }
            }
        }
        return out
    }
}
