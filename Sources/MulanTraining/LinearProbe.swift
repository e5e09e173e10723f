import Foundation
import MulanCore
import MulanRecords
import MulanTensor

/// The linear probe of the MuLan paper's transfer experiments: on frozen audio embeddings, one
/// L2-regularised logistic regression per tag.
///
/// Each classifier minimises the mean log-loss plus λ/2·|w|² (the bias is not penalised) by Newton's
/// method (iteratively reweighted least squares) with a backtracking line search, from zero: the
/// problem is small and dense (the embedding width plus one unknowns), strictly convex for λ > 0,
/// and the solution does not depend on the thread count or on anything but the inputs. λ is chosen
/// on the validation split from `grid`, one λ for all tags, by the mean validation ROC-AUC (ties: the
/// larger λ); the final classifiers are refitted on train and validation together with it and
/// scored on the test split (per-tag ROC-AUC and average precision, macro over the tags scored).
public enum LinearProbe {
    /// The default grid of λ (mean log-loss + λ/2·|w|²).
    public static let defaultGrid: [Double] = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1]

    /// Items of one split: `features` is [labels.count × dim], row-major.
    public struct Split: Sendable {
        public var features: [Float]
        public var labels: [Set<String>]

        public init(features: [Float], labels: [Set<String>]) {
            self.features = features
            self.labels = labels
        }

        public var count: Int { labels.count }
    }

    /// A fitted classifier: score(x) = w·x + b (the log-odds).
    public struct Classifier: Sendable, Equatable {
        public var weights: [Double]
        public var bias: Double
        /// Newton iterations taken.
        public var iterations: Int

        public func scores(_ features: [Float], dim: Int) -> [Float] {
            let n = features.count / max(dim, 1)
            return (0..<n).map { i in
                var z = bias
                for j in 0..<dim { z += weights[j] * Double(features[i * dim + j]) }
                return Float(z)
            }
        }
    }

    /// Fits one classifier to `features` ([labels.count × dim]) and binary `labels`; nil when the
    /// labels hold a single class (no classifier to learn).
    public static func fit(features: [Float], dim: Int, labels: [Bool], lambda: Double,
                           maxIterations: Int = 100) -> Classifier? {
        let n = labels.count
        precondition(features.count == n * dim && dim > 0 && lambda > 0)
        let positives = labels.filter { $0 }.count
        guard positives > 0, positives < n else { return nil }
        let p = dim + 1
        var beta = [Double](repeating: 0, count: p)
        var z = [Double](repeating: 0, count: n)
        func logistic(_ t: Double) -> Double { t >= 0 ? 1 / (1 + exp(-t)) : exp(t) / (1 + exp(t)) }
        func softplus(_ t: Double) -> Double { t > 0 ? t + log1p(exp(-t)) : log1p(exp(t)) }
        func margins(_ b: [Double]) -> [Double] {
            (0..<n).map { i in
                var s = b[dim]
                for j in 0..<dim { s += b[j] * Double(features[i * dim + j]) }
                return s
            }
        }
        func objective(_ b: [Double], _ m: [Double]) -> Double {
            var loss = 0.0
            for i in 0..<n { loss += softplus(m[i]) - (labels[i] ? m[i] : 0) }
            var penalty = 0.0
            for j in 0..<dim { penalty += b[j] * b[j] }
            return loss / Double(n) + lambda / 2 * penalty
        }
        var f = objective(beta, z)
        var weighted = [Float](repeating: 0, count: n * p)
        var hessian32 = [Float](repeating: 0, count: p * p)
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            // Gradient and Hessian: (1/n) Xᵀ(σ − y) + λw, (1/n) XᵀSX + λI (bias row and column unpenalised).
            var gradient = [Double](repeating: 0, count: p)
            for i in 0..<n {
                let s = logistic(z[i])
                let r = (s - (labels[i] ? 1 : 0)) / Double(n)
                let w = Float((max(s * (1 - s), 1e-12) / Double(n)).squareRoot())
                for j in 0..<dim {
                    gradient[j] += r * Double(features[i * dim + j])
                    weighted[i * p + j] = w * features[i * dim + j]
                }
                gradient[dim] += r
                weighted[i * p + dim] = w
            }
            for j in 0..<dim { gradient[j] += lambda * beta[j] }
            weighted.withUnsafeBufferPointer { a in
                hessian32.withUnsafeMutableBufferPointer { h in
                    BLAS.gemm(transA: true, m: p, n: p, k: n, a: a.baseAddress!, lda: p, b: a.baseAddress!, ldb: p,
                              c: h.baseAddress!, ldc: p)
                }
            }
            var hessian = hessian32.map(Double.init)
            for j in 0..<dim { hessian[j * p + j] += lambda }
            hessian[dim * p + dim] += 1e-10
            guard let step = solveSymmetric(hessian, gradient, size: p) else { break }
            var decrement = 0.0
            for j in 0..<p { decrement += gradient[j] * step[j] }
            if decrement / 2 < 1e-12 { break }
            // Backtracking (Armijo) on the Newton direction.
            var t = 1.0
            var accepted = false
            for _ in 0..<40 {
                let candidate = (0..<p).map { beta[$0] - t * step[$0] }
                let m = margins(candidate)
                let fc = objective(candidate, m)
                if fc <= f - 1e-4 * t * decrement {
                    beta = candidate
                    z = m
                    f = fc
                    accepted = true
                    break
                }
                t /= 2
            }
            if !accepted { break }
        }
        return Classifier(weights: Array(beta[0..<dim]), bias: beta[dim], iterations: iterations)
    }

    /// Solves A x = b for a symmetric positive definite `size`×`size` A (Cholesky); nil when A is not.
    static func solveSymmetric(_ a: [Double], _ b: [Double], size n: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var s = a[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * n + i] = s.squareRoot()
                } else {
                    l[i * n + j] = s / l[j * n + j]
                }
            }
        }
        var y = b
        for i in 0..<n {
            for k in 0..<i { y[i] -= l[i * n + k] * y[k] }
            y[i] /= l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            for k in (i + 1)..<n { y[i] -= l[k * n + i] * y[k] }
            y[i] /= l[i * n + i]
        }
        return y
    }

    /// The whole protocol (see the type): λ from `grid` by the mean validation ROC-AUC, refit on
    /// train + valid, figures on test. Throws when a split is empty or `grid` holds a λ ≤ 0.
    public static func evaluate(tags: [String], train: Split, valid: Split, test: Split, dim: Int,
                                grid: [Double] = defaultGrid) throws(MulanError) -> LinearProbeReport {
        for (name, split) in [("train", train), ("valid", valid), ("test", test)] where split.count == 0 {
            throw MulanError(.usage, "the \(name) split has no embedded item", hint: "the probe needs train, valid and test items")
        }
        guard !grid.isEmpty, grid.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw MulanError(.usage, "the λ grid must hold positive numbers (it is \(grid))")
        }
        let untrained = tags.filter { tag in
            let positives = train.labels.filter { $0.contains(tag) }.count
            return positives == 0 || positives == train.count
        }
        let trainable = tags.filter { !untrained.contains($0) }
        var candidates: [LinearProbeReport.Candidate] = []
        for lambda in grid.sorted() {
            let report = ZeroShotEvaluation.figures(tags: trainable, labels: valid.labels) { k in
                fit(features: train.features, dim: dim, labels: train.labels.map { $0.contains(trainable[k]) },
                    lambda: lambda)?.scores(valid.features, dim: dim)
            }
            candidates.append(.init(lambda: lambda, validROCAUC: report.macroROCAUC, tags: report.tagsScored))
        }
        // The best mean validation ROC-AUC; ties (and a validation split that scores no tag) take the larger λ.
        var chosen = candidates.last!
        for c in candidates.reversed() {
            if let auc = c.validROCAUC, auc > (chosen.validROCAUC ?? -1) { chosen = c }
        }
        let both = Split(features: train.features + valid.features, labels: train.labels + valid.labels)
        let testReport = ZeroShotEvaluation.figures(tags: tags, labels: test.labels) { k in
            guard !untrained.contains(tags[k]) else { return nil }
            return fit(features: both.features, dim: dim, labels: both.labels.map { $0.contains(tags[k]) },
                       lambda: chosen.lambda)?.scores(test.features, dim: dim)
        }
        return LinearProbeReport(dim: dim, trainItems: train.count, validItems: valid.count, testItems: test.count,
                                 candidates: candidates, lambda: chosen.lambda, refitOn: "train+valid",
                                 tagsUntrained: untrained, test: testReport)
    }
}
