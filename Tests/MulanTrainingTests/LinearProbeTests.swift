import Foundation
import MulanCore
import MulanRecords
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

@Suite("linear probe and text triplets")
struct LinearProbeTests {
    /// `n` unit-norm `dim`-d embeddings and their tags: "signal" when the embedding leans towards a
    /// fixed direction (linearly separable, with a margin), "noise" at random (independent of the
    /// embedding), "rare" on the first item only with `rare`. The direction is the same for every
    /// seed (the splits of one problem).
    static func planted(n: Int, dim: Int, seed: UInt64, rare: Bool = false) -> LinearProbe.Split {
        var fixed = RandomSource(seed: 1000 + UInt64(dim))
        var direction = (0..<dim).map { _ in fixed.normal() }
        var random = RandomSource(seed: seed)
        let norm = direction.map { $0 * $0 }.reduce(0, +).squareRoot()
        direction = direction.map { $0 / norm }
        var features: [Float] = []
        var labels: [Set<String>] = []
        while labels.count < n {
            var x = (0..<dim).map { _ in random.normal() }
            let xn = x.map { $0 * $0 }.reduce(0, +).squareRoot()
            x = x.map { $0 / xn }
            let projection = zip(x, direction).map { $0 * $1 }.reduce(0, +)
            if abs(projection) < 0.05 { continue }   // a margin
            var tags: Set<String> = []
            if projection > 0 { tags.insert("signal") }
            if random.unitFloat() < 0.4 { tags.insert("noise") }
            if rare && labels.isEmpty { tags.insert("rare") }
            features += x
            labels.append(tags)
        }
        return LinearProbe.Split(features: features, labels: labels)
    }

    @Test func recoversAPlantedLinearSignalAndNotNoise() throws {
        let dim = 16
        let train = Self.planted(n: 400, dim: dim, seed: 1, rare: true), valid = Self.planted(n: 200, dim: dim, seed: 2)
        let test = Self.planted(n: 400, dim: dim, seed: 3)
        let report = try LinearProbe.evaluate(tags: ["signal", "noise", "rare"], train: train, valid: valid, test: test, dim: dim)
        let byTag = Dictionary(uniqueKeysWithValues: report.test.perTag.map { ($0.tag, $0) })
        let signal = try #require(byTag["signal"]?.rocAUC), noise = try #require(byTag["noise"]?.rocAUC)
        #expect(signal > 0.98, "signal ROC-AUC \(signal)")
        #expect(abs(noise - 0.5) < 0.1, "noise ROC-AUC \(noise)")
        #expect((byTag["signal"]?.averagePrecision ?? 0) > 0.97)
        // "rare" has one positive in train (a classifier) but none in test: not scored.
        #expect(report.tagsUntrained.isEmpty && report.test.tagsSkipped == ["rare"] && report.test.tagsScored == 2)
        #expect(report.trainItems == 400 && report.validItems == 200 && report.testItems == 400 && report.refitOn == "train+valid")
        #expect(report.candidates.map(\.lambda) == LinearProbe.defaultGrid)
    }

    @Test func theSolverReachesTheRegularisedOptimum() throws {
        let dim = 8
        let data = Self.planted(n: 120, dim: dim, seed: 5)
        for lambda in [1e-4, 1e-2, 1.0] {
            let labels = data.labels.map { $0.contains("noise") }
            let c = try #require(LinearProbe.fit(features: data.features, dim: dim, labels: labels, lambda: lambda))
            // The gradient of mean log-loss + λ/2·|w|² vanishes at the solution.
            var gradient = [Double](repeating: 0, count: dim + 1)
            let scores = c.scores(data.features, dim: dim)
            for i in 0..<labels.count {
                var z = c.bias
                for j in 0..<dim { z += c.weights[j] * Double(data.features[i * dim + j]) }
                #expect(abs(Float(z) - scores[i]) < 1e-5)
                let r = (1 / (1 + exp(-z)) - (labels[i] ? 1 : 0)) / Double(labels.count)
                for j in 0..<dim { gradient[j] += r * Double(data.features[i * dim + j]) }
                gradient[dim] += r
            }
            for j in 0..<dim { gradient[j] += lambda * c.weights[j] }
            let norm = gradient.map { $0 * $0 }.reduce(0, +).squareRoot()
            #expect(norm < 1e-6, "λ \(lambda): |∇| \(norm) after \(c.iterations) iterations")
        }
        // Stronger regularisation shrinks the weights.
        let labels = data.labels.map { $0.contains("signal") }
        let weak = try #require(LinearProbe.fit(features: data.features, dim: dim, labels: labels, lambda: 1e-4))
        let strong = try #require(LinearProbe.fit(features: data.features, dim: dim, labels: labels, lambda: 1))
        func size(_ c: LinearProbe.Classifier) -> Double { c.weights.map { $0 * $0 }.reduce(0, +) }
        #expect(size(strong) < size(weak) / 10)
        // One class only: nothing to fit.
        #expect(LinearProbe.fit(features: data.features, dim: dim, labels: labels.map { _ in true }, lambda: 1) == nil)
    }

    @Test func theStrengthIsChosenOnTheValidationSplitAndRefitOnTrainAndValid() throws {
        let dim = 32
        // Few training items in many dimensions, with label noise: the λ matters.
        var train = Self.planted(n: 40, dim: dim, seed: 11), valid = Self.planted(n: 300, dim: dim, seed: 12)
        let test = Self.planted(n: 300, dim: dim, seed: 13)
        var random = RandomSource(seed: 14)
        for i in train.labels.indices where random.unitFloat() < 0.2 {
            if train.labels[i].contains("signal") { train.labels[i].remove("signal") } else { train.labels[i].insert("signal") }
        }
        let grid = [1e-5, 1e-3, 1e-1, 10]
        let report = try LinearProbe.evaluate(tags: ["signal"], train: train, valid: valid, test: test, dim: dim, grid: grid)
        // Each candidate's figure is the validation ROC-AUC of a classifier fitted on train alone.
        for c in report.candidates {
            let fitted = try #require(LinearProbe.fit(features: train.features, dim: dim,
                                                      labels: train.labels.map { $0.contains("signal") }, lambda: c.lambda))
            let auc = RetrievalMetrics.rocAUC(scores: fitted.scores(valid.features, dim: dim),
                                              labels: valid.labels.map { $0.contains("signal") })
            #expect(c.validROCAUC == auc, "λ \(c.lambda)")
        }
        let best = report.candidates.compactMap(\.validROCAUC).max()
        #expect(report.candidates.first { $0.lambda == report.lambda }?.validROCAUC == best)
        let aucs = Set(report.candidates.compactMap(\.validROCAUC))
        #expect(aucs.count > 1, "the grid should matter here: \(report.candidates)")
        // The test figures come from the chosen λ refitted on train + valid.
        let refit = try #require(LinearProbe.fit(features: train.features + valid.features, dim: dim,
                                                 labels: (train.labels + valid.labels).map { $0.contains("signal") },
                                                 lambda: report.lambda))
        let testAUC = RetrievalMetrics.rocAUC(scores: refit.scores(test.features, dim: dim),
                                              labels: test.labels.map { $0.contains("signal") })
        #expect(report.test.macroROCAUC == testAUC)
        // A validation split that cannot tell the strengths apart (one class only) takes the largest λ.
        var flat = valid
        flat.labels = flat.labels.map { _ in ["signal"] }
        let tie = try LinearProbe.evaluate(tags: ["signal"], train: train, valid: flat, test: test, dim: dim, grid: grid)
        #expect(tie.lambda == 10 && tie.candidates.allSatisfy { $0.validROCAUC == nil })
    }

    @Test func theProbeIsDeterministic() throws {
        let dim = 16
        let train = Self.planted(n: 200, dim: dim, seed: 21), valid = Self.planted(n: 100, dim: dim, seed: 22)
        let test = Self.planted(n: 100, dim: dim, seed: 23)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var runs: [Data] = []
        for threads in [1, 2, 1] {
            BLAS.threads = threads
            runs.append(try encoder.encode(try LinearProbe.evaluate(tags: ["signal", "noise"], train: train, valid: valid,
                                                                    test: test, dim: dim)))
        }
        BLAS.threads = 1
        #expect(runs[0] == runs[1] && runs[1] == runs[2])
    }

    @Test func badProbeInputsAreRefused() throws {
        let data = Self.planted(n: 20, dim: 4, seed: 31)
        let empty = LinearProbe.Split(features: [], labels: [])
        #expect(throws: MulanError.self) { try LinearProbe.evaluate(tags: ["signal"], train: data, valid: empty, test: data, dim: 4) }
        #expect(throws: MulanError.self) {
            try LinearProbe.evaluate(tags: ["signal"], train: data, valid: data, test: data, dim: 4, grid: [0.1, -1])
        }
        // A tag without negatives in train gets no classifier and is listed.
        var all = data
        all.labels = all.labels.map { $0.union(["everywhere"]) }
        let r = try LinearProbe.evaluate(tags: ["signal", "everywhere"], train: all, valid: data, test: data, dim: 4)
        #expect(r.tagsUntrained == ["everywhere"] && r.test.perTag[1].rocAUC == nil && r.test.tagsScored == 1)
    }

    // MARK: Text triplets

    @Test func tripletAccuracyOnConstructedEmbeddings() throws {
        let set = TextTriplets(file: "t.jsonl", triplets: [
            .init(anchor: "a", positive: "b", negative: "c", attribute: "tempo"),
            .init(anchor: "a", positive: "b", negative: "c", attribute: "tempo"),
            .init(anchor: "a", positive: "b", negative: "c", attribute: "mode"),
            .init(anchor: "a", positive: "b", negative: "c"),
        ])
        #expect(set.texts.count == 12 && set.texts[3] == "a" && set.texts[5] == "c")
        // 2-d rows: (anchor, positive, negative) per triplet. Scale must not matter (cosine).
        let e: [Float] = [
            1, 0, 3, 0.1, 0, 1,         // right
            1, 1, 0, 5, 2, 2.2,         // wrong: the negative is parallel to the anchor
            2, 0, 1, 1, 1, 1,           // a tie: wrong
            0, 1, 0, 2, 1, 0,           // right
        ]
        let a = set.accuracy(embeddings: e, dim: 2)
        #expect(a.triplets == 4 && a.correct == 2 && a.accuracy == 0.5)
        #expect(a.byAttribute["tempo"] == .init(triplets: 2, correct: 1))
        #expect(a.byAttribute["mode"] == .init(triplets: 1, correct: 0))
        #expect(a.byAttribute.count == 2)
        // A constant model gets nothing right.
        #expect(set.accuracy(embeddings: [Float](repeating: 1, count: 24), dim: 2).correct == 0)
    }

    @Test func tripletFilesAndTheirErrors() throws {
        let dir = TempDir("mulan-triplets")
        let good = try dir.write("good.jsonl", """
            {"anchor": "a slow piano piece", "positive": "slow piano", "negative": "fast piano", "attribute": "tempo"}

            {"anchor": "x", "positive": "y", "negative": "z"}
            """)
        let set = try TextTriplets(path: good)
        #expect(set.triplets.count == 2 && set.triplets[0].attribute == "tempo" && set.triplets[1].line == 3)
        func message(_ text: String) -> String {
            let path = try! dir.write("bad.jsonl", text)
            do { _ = try TextTriplets(path: path); return "" } catch { return "\(error)" }
        }
        let first = #"{"anchor": "a", "positive": "b", "negative": "c"}"# + "\n"
        #expect(message(first + "not json\n").contains("bad.jsonl:2"))
        #expect(message(first + "not json\n").contains("not a JSON object"))
        #expect(message(first + first + #"{"anchor": "a", "positive": "b"}"#).contains("bad.jsonl:3"))
        #expect(message(#"{"anchor": "a", "positive": "b"}"#).contains("\"negative\""))
        #expect(message(#"{"anchor": "a", "positive": 3, "negative": "c"}"#).contains("\"positive\" is not a non-empty string"))
        #expect(message(#"{"anchor": "", "positive": "b", "negative": "c"}"#).contains("bad.jsonl:1"))
        #expect(message(#"{"anchor": "a", "positive": "b", "negative": "c", "attribute": 1}"#).contains("\"attribute\""))
        #expect(message("\n\n").contains("holds no triplet"))
        do { _ = try TextTriplets(path: dir.file("none.jsonl")); Issue.record("no error") } catch {
            #expect("\(error)".contains("none.jsonl"))
        }
    }
}
