import Foundation
import MulanCore
import MulanFormats

/// A linear classifier of "is this sentence about the music?" over hashed WordPiece n-grams
/// (unigrams and bigrams of the BERT ids, FNV-1a hashed into 2^18 buckets, presence features),
/// trained by logistic regression with AdaGrad. Training is deterministic for a seed.
public struct RelevanceModel: Sendable {
    public static let format = "mulan-relevance-v1"
    public var buckets = 1 << 18
    public var bias: Float = 0
    public var weights: [Float]
    public var threshold = 0.5
    public var vocabularySHA256 = ""
    public var metrics: [String: Double] = [:]
    public var trainedOn: [String: String] = [:]

    public init(buckets: Int = 1 << 18) {
        self.buckets = buckets
        weights = [Float](repeating: 0, count: buckets)
    }

    /// The feature buckets of a token id sequence.
    public static func features(_ ids: [Int32], buckets: Int) -> [Int] {
        var out = Set<Int>()
        func hash(_ values: [Int32]) -> Int {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for v in values {
                var x = UInt32(bitPattern: v)
                for _ in 0..<4 {
                    h ^= UInt64(x & 0xFF)
                    h = h &* 0x0000_0100_0000_01B3
                    x >>= 8
                }
                h ^= 0xFF
                h = h &* 0x0000_0100_0000_01B3
            }
            return Int(h % UInt64(buckets))
        }
        for (i, id) in ids.enumerated() {
            out.insert(hash([id]))
            if i + 1 < ids.count { out.insert(hash([id, ids[i + 1]])) }
        }
        return out.sorted()
    }

    /// The probability that the sentence is music-descriptive.
    public func score(_ features: [Int]) -> Double {
        var z = bias
        for f in features { z += weights[f] }
        return 1 / (1 + exp(-Double(z)))
    }

    public struct Example: Sendable {
        public var features: [Int]
        public var label: Bool
        public init(features: [Int], label: Bool) {
            self.features = features
            self.label = label
        }
    }

    /// Trains on `examples` (epochs of AdaGrad, L2 `l2`), in an order shuffled by `seed`.
    public static func train(_ examples: [Example], buckets: Int = 1 << 18, epochs: Int = 20,
                             learningRate: Float = 0.5, l2: Float = 1e-5, seed: UInt64 = 1) -> RelevanceModel {
        var model = RelevanceModel(buckets: buckets)
        var g2 = [Float](repeating: 1e-6, count: buckets)
        var biasG2: Float = 1e-6
        var order = Array(examples.indices)
        var rng = SplitMix64(seed: seed)
        for _ in 0..<epochs {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            for i in order {
                let e = examples[i]
                let p = Float(model.score(e.features))
                let grad = p - (e.label ? 1 : 0)
                for f in e.features {
                    let g = grad + l2 * model.weights[f]
                    g2[f] += g * g
                    model.weights[f] -= learningRate * g / g2[f].squareRoot()
                }
                biasG2 += grad * grad
                model.bias -= learningRate * grad / biasG2.squareRoot()
            }
        }
        return model
    }

    /// Precision, recall and F1 at the model's threshold on labeled examples.
    public func evaluate(_ examples: [Example]) -> [String: Double] {
        var tp = 0.0, fp = 0.0, fn = 0.0, tn = 0.0
        for e in examples {
            let predicted = score(e.features) >= threshold
            switch (predicted, e.label) {
            case (true, true): tp += 1
            case (true, false): fp += 1
            case (false, true): fn += 1
            case (false, false): tn += 1
            }
        }
        let precision = tp + fp > 0 ? tp / (tp + fp) : 0
        let recall = tp + fn > 0 ? tp / (tp + fn) : 0
        let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        return ["precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / max(1, tp + tn + fp + fn),
                "examples": Double(examples.count)]
    }

    // MARK: File format (JSON; weights stored sparsely)

    public func json() -> String {
        var parts = [
            "\"format\":\(JSONText.quote(Self.format))", "\"buckets\":\(buckets)", "\"ngram\":2",
            "\"bias\":\(bias)", "\"threshold\":\(threshold)", "\"vocab_sha256\":\(JSONText.quote(vocabularySHA256))",
        ]
        parts.append("\"metrics\":{" + metrics.keys.sorted().map { "\(JSONText.quote($0)):\(metrics[$0]!)" }.joined(separator: ",") + "}")
        parts.append("\"trained_on\":{" + trainedOn.keys.sorted().map { "\(JSONText.quote($0)):\(JSONText.quote(trainedOn[$0]!))" }
            .joined(separator: ",") + "}")
        let nonzero = weights.indices.filter { weights[$0] != 0 }.map { "[\($0),\(weights[$0])]" }
        parts.append("\"weights\":[\n" + nonzero.joined(separator: ",\n") + "\n]")
        return "{" + parts.joined(separator: ",\n") + "}\n"
    }

    public static func load(path: String) throws(MulanError) -> RelevanceModel {
        struct File: Decodable {
            var format: String
            var buckets: Int
            var bias: Float
            var threshold: Double
            var vocab_sha256: String
            var metrics: [String: Double]?
            var trained_on: [String: String]?
            var weights: [[Double]]
        }
        do {
            let f = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            guard f.format == format, f.buckets > 0 else {
                throw MulanError(.usage, "\(path) is not a \(format) model")
            }
            var m = RelevanceModel(buckets: f.buckets)
            m.bias = f.bias
            m.threshold = f.threshold
            m.vocabularySHA256 = f.vocab_sha256
            m.metrics = f.metrics ?? [:]
            m.trainedOn = f.trained_on ?? [:]
            for pair in f.weights where pair.count == 2 {
                let i = Int(pair[0])
                if i >= 0 && i < f.buckets { m.weights[i] = Float(pair[1]) }
            }
            return m
        } catch let e as MulanError {
            throw e
        } catch {
            throw MulanError(.usage, "cannot read the relevance model \(path)",
                             hint: "train one with mulan-filter train-relevance", cause: error)
        }
    }
}

/// MinHash signatures of word shingles, for near-duplicate detection with LSH banding.
public struct MinHasher: Sendable {
    public let permutations: Int
    public let shingleWords: Int
    private let a: [UInt64]
    private let b: [UInt64]

    public init(permutations: Int, shingleWords: Int, seed: UInt64 = 0x6D75_6C61_6E00) {
        self.permutations = permutations
        self.shingleWords = max(1, shingleWords)
        var rng = SplitMix64(seed: seed)
        a = (0..<permutations).map { _ in rng.next() | 1 }
        b = (0..<permutations).map { _ in rng.next() }
    }

    /// The signature of `text` (lowercased words; texts shorter than a shingle are one shingle).
    public func signature(_ text: String) -> [UInt64] {
        let words = text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map(String.init)
        var shingles = Set<UInt64>()
        if words.count < shingleWords {
            shingles.insert(Self.fnv(words.joined(separator: " ")))
        } else {
            for i in 0...(words.count - shingleWords) {
                shingles.insert(Self.fnv(words[i..<(i + shingleWords)].joined(separator: " ")))
            }
        }
        return (0..<permutations).map { k in
            shingles.reduce(UInt64.max) { min($0, $1 &* a[k] &+ b[k]) }
        }
    }

    /// The estimated Jaccard similarity of two signatures.
    public static func similarity(_ x: [UInt64], _ y: [UInt64]) -> Double {
        guard x.count == y.count, !x.isEmpty else { return 0 }
        return Double(zip(x, y).filter { $0 == $1 }.count) / Double(x.count)
    }

    /// The LSH band keys of a signature.
    public static func bands(_ signature: [UInt64], count: Int) -> [UInt64] {
        let rows = signature.count / max(count, 1)
        return (0..<count).map { band in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(band)
            for v in signature[(band * rows)..<((band + 1) * rows)] { h = (h ^ v) &* 0x0000_0100_0000_01B3 }
            return h
        }
    }

    static func fnv(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}
