import Foundation
@testable import MulanTensor
import Testing

/// The attention's row kernels (softmax, its backward pass, the eight-lane maximum and dot product)
/// against Double references, and the blocked attention (sequences longer than
/// `MultiHeadSelfAttention.queryBlock`, so that a task walks several blocks of queries) against an
/// attention and its gradients computed in Double straight from the definition.
@Suite("Attention kernels and query blocks", .serialized)
struct AttentionKernelTests {
    /// Rows of every length up to 40 and a few long ones (the AST's 1,189 included), their largest
    /// value anywhere (the tail after the last full lane included).
    static let lengths = Array(1...40) + [63, 64, 65, 255, 1189]

    static func row(_ n: Int, spread: Float, random: inout RandomSource) -> [Float] {
        (0..<n).map { _ in random.normal() * spread }
    }

    @Test func softmaxRowMatchesDoubleAndLeavesTheRestOfTheRow() {
        var random = RandomSource(seed: 40)
        var worst = 0.0
        for n in Self.lengths {
            for spread: Float in [0.01, 1, 8, 40] {
                var values = Self.row(n, spread: spread, random: &random)
                // Far below the maximum: exponentials that underflow (also −∞, a masked key) or flush to
                // the clamp of `expNonPositive`.
                if n > 3 {
                    values[1] = -1e4
                    values[n - 2] = -.infinity
                    values[n / 2] = -Float.greatestFiniteMagnitude
                }
                // The maximum in the last position (after every full lane).
                if n > 1 && n % 3 == 0 { values[n - 1] = (values.max() ?? 0) + 1 }
                let sentinel: Float = 12345
                var buffer = values + [sentinel, sentinel]
                buffer.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, n) }
                let m = values.map(Double.init).max()!
                let e = values.map { exp(Double($0) - m) }
                let z = e.reduce(0, +)
                for j in 0..<n {
                    let reference = e[j] / z
                    #expect(buffer[j].isFinite && buffer[j] >= 0, "n \(n) [\(j)] = \(buffer[j])")
                    worst = max(worst, abs(Double(buffer[j]) - reference) / max(reference, 1e-6))
                }
                #expect(buffer[n] == sentinel && buffer[n + 1] == sentinel, "n \(n): wrote past the row")
            }
        }
        #expect(worst < 1e-5, "largest relative difference \(worst)")
    }

    @Test func laneMaxIsTheExactMaximumAndLaneDotMatchesDouble() {
        var random = RandomSource(seed: 41)
        for n in Self.lengths {
            for trial in 0..<4 {
                var a = Self.row(n, spread: 3, random: &random)
                let b = Self.row(n, spread: 3, random: &random)
                // The maximum at the first, last, and a lane's position, and everything negative.
                if trial == 1 { a[n - 1] = 100 }
                if trial == 2 { a[0] = 100 }
                if trial == 3 { a = a.map { -abs($0) - 1 } }
                let m = a.withUnsafeBufferPointer { laneMax($0.baseAddress!, n) }
                #expect(m == a.max()!, "n \(n), trial \(trial)")
                let dot = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { laneDot(ap.baseAddress!, $0.baseAddress!, n) } }
                let reference = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let magnitude = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                // Float summation in eight lanes of at most 149 terms each: well within 2e-5 of Σ|a·b|.
                #expect(abs(Double(dot) - reference) <= 2e-5 * magnitude, "n \(n): \(dot) vs \(reference)")
            }
        }
    }

    @Test func softmaxBackwardRowMatchesDouble() {
        var random = RandomSource(seed: 42)
        var worst = 0.0
        for n in Self.lengths {
            var p = Self.row(n, spread: 2, random: &random)
            p.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, n) }
            let dp = Self.row(n, spread: 1, random: &random)
            var ds = dp
            let scale: Float = 0.17
            p.withUnsafeBufferPointer { pp in
                ds.withUnsafeMutableBufferPointer { softmaxBackwardRow(pp.baseAddress!, $0.baseAddress!, n, scale: scale) }
            }
            let dot = zip(p, dp).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            for j in 0..<n {
                let reference = Double(scale) * Double(p[j]) * (Double(dp[j]) - dot)
                worst = max(worst, abs(Double(ds[j]) - reference) / max(abs(reference), Double(p[j]) * 1e-3, 1e-9))
            }
        }
        #expect(worst < 1e-4, "largest relative difference \(worst)")
    }

    /// Attention's output and gradients (input and the four layers' weights and biases) for `dy`, in
    /// Double straight from the definition: P = softmax(Q·Kᵀ/√d) over each sequence's valid keys.
    static func naiveGradients(_ x: Tensor, lengths: [Int], dy: Tensor, _ a: MultiHeadSelfAttention)
        -> (y: [Double], dx: [Double], grads: [[Double]]) {
        let b = x.shape[0], l = x.shape[1], w = a.width, h = a.heads, d = a.headDim, rows = b * l
        let xs = x.storage.map(Double.init), g = dy.storage.map(Double.init)
        func weights(_ layer: Linear) -> [Double] { layer.weight.value.storage.map(Double.init) }
        func project(_ input: [Double], _ layer: Linear) -> [Double] {
            let wt = weights(layer), bias = layer.bias!.value.storage
            var out = [Double](repeating: 0, count: rows * w)
            for r in 0..<rows {
                for o in 0..<w {
                    var s = Double(bias[o])
                    for i in 0..<w { s += input[r * w + i] * wt[o * w + i] }
                    out[r * w + o] = s
                }
            }
            return out
        }
        let q = project(xs, a.query), k = project(xs, a.key), v = project(xs, a.value)
        let scale = 1 / Double(d).squareRoot()
        var context = [Double](repeating: 0, count: rows * w)
        var probabilities = [[Double]](repeating: [], count: b * h * l)
        for s in 0..<b {
            for head in 0..<h {
                for i in 0..<l {
                    let n = lengths[s], qi = (s * l + i) * w + head * d
                    var scores = [Double](repeating: 0, count: n)
                    for j in 0..<n {
                        var dot = 0.0
                        for c in 0..<d { dot += q[qi + c] * k[(s * l + j) * w + head * d + c] }
                        scores[j] = dot * scale
                    }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    let p = e.map { $0 / z }
                    probabilities[(s * h + head) * l + i] = p
                    for c in 0..<d {
                        var sum = 0.0
                        for j in 0..<n { sum += p[j] * v[(s * l + j) * w + head * d + c] }
                        context[qi + c] = sum
                    }
                }
            }
        }
        let y = project(context, a.output)
        // y = C·Woᵀ + bo: dWo = dyᵀ·C, dbo = Σ dy, dC = dy·Wo.
        func linearBackward(_ input: [Double], _ dOut: [Double], _ layer: Linear) -> (dIn: [Double], dW: [Double], db: [Double]) {
            let wt = weights(layer)
            var dIn = [Double](repeating: 0, count: rows * w), dW = [Double](repeating: 0, count: w * w)
            var db = [Double](repeating: 0, count: w)
            for r in 0..<rows {
                for o in 0..<w {
                    let go = dOut[r * w + o]
                    db[o] += go
                    for i in 0..<w {
                        dW[o * w + i] += go * input[r * w + i]
                        dIn[r * w + i] += go * wt[o * w + i]
                    }
                }
            }
            return (dIn, dW, db)
        }
        let outputGrads = linearBackward(context, g, a.output)
        let dc = outputGrads.dIn
        var dq = [Double](repeating: 0, count: rows * w), dk = dq, dv = dq
        for s in 0..<b {
            for head in 0..<h {
                for i in 0..<l {
                    let n = lengths[s], qi = (s * l + i) * w + head * d
                    let p = probabilities[(s * h + head) * l + i]
                    var dp = [Double](repeating: 0, count: n)
                    for j in 0..<n {
                        let kj = (s * l + j) * w + head * d
                        for c in 0..<d {
                            dp[j] += dc[qi + c] * v[kj + c]
                            dv[kj + c] += p[j] * dc[qi + c]
                        }
                    }
                    let dot = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for j in 0..<n {
                        let dsij = p[j] * (dp[j] - dot) * scale, kj = (s * l + j) * w + head * d
                        for c in 0..<d {
                            dq[qi + c] += dsij * k[kj + c]
                            dk[kj + c] += dsij * q[qi + c]
                        }
                    }
                }
            }
        }
        let qg = linearBackward(xs, dq, a.query), kg = linearBackward(xs, dk, a.key), vg = linearBackward(xs, dv, a.value)
        var dx = qg.dIn
        for i in dx.indices { dx[i] += kg.dIn[i] + vg.dIn[i] }
        return (y, dx, [qg.dW, qg.db, kg.dW, kg.db, vg.dW, vg.db, outputGrads.dW, outputGrads.db])
    }

    /// Largest |a − b| over the largest |b| (1 when b is all 0).
    static func relativeDifference(_ a: [Float], _ b: [Double]) -> Double {
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        return zip(a, b).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) } / scale
    }

    @Test func blockedAttentionMatchesDoubleForwardAndBackward() {
        var random = RandomSource(seed: 43)
        let attention = MultiHeadSelfAttention(width: 8, heads: 2, random: &random)
        TransformerLayerTests.randomize(attention, std: 0.4, random: &random)
        // 150 positions: query blocks of 64, 64 and 22; one sequence shorter than a block, one padded.
        let l = 150
        #expect(MultiHeadSelfAttention.queryBlock < l / 2)
        let lengths = [150, 37, 129]
        let x = Tensor.normal(shape: [3, l, 8], std: 1, using: &random)
        let dy = Tensor.normal(shape: [3, l, 8], std: 1, using: &random)
        attention.zeroGrads()
        let y = attention.forward(x, lengths: lengths)
        let dx = attention.backward(dy)
        let reference = Self.naiveGradients(x, lengths: lengths, dy: dy, attention)
        #expect(Self.relativeDifference(y.storage, reference.y) < 1e-5)
        #expect(Self.relativeDifference(dx.storage, reference.dx) < 1e-4)
        let names = ["query.weight", "query.bias", "key.weight", "key.bias", "value.weight", "value.bias",
                     "output.weight", "output.bias"]
        let named = Dictionary(uniqueKeysWithValues: attention.namedParameters.map { ($0.name, $0.parameter) })
        for (name, expected) in zip(names, reference.grads) where name != "key.bias" {
            let difference = Self.relativeDifference(named[name]!.grad.storage, expected)
            #expect(difference < 1e-4, "\(name): \(difference)")
        }
        // The key bias's true gradient is 0 (it shifts a query's scores alike): rounding noise only.
        let keyScale = max(1, attention.key.weight.grad.storage.map(abs).max()!)
        #expect(attention.key.bias!.grad.storage.allSatisfy { abs($0) < 1e-4 * keyScale })
        // Inference computes each block in a scratch block: the same values, bit for bit.
        #expect(attention.forward(x, lengths: lengths, training: false) == y)
    }

    @Test func blockedAttentionDoesNotDependOnThreadCount() {
        var random = RandomSource(seed: 44)
        let layer = TransformerEncoderLayer(width: 16, heads: 2, feedForward: 32, random: &random)
        TransformerLayerTests.randomize(layer, std: 0.2, random: &random)
        let lengths = [150, 37, 129, 1, 64, 65]
        let x = Tensor.normal(shape: [6, 150, 16], std: 1, using: &random)
        let dy = Tensor.normal(shape: [6, 150, 16], std: 1, using: &random)
        func run(threads: Int) -> (y: Tensor, dx: Tensor, grads: [Tensor]) {
            BLAS.threads = threads
            defer { BLAS.threads = 1 }
            layer.zeroGrads()
            let y = layer.forward(x, lengths: lengths)
            let dx = layer.backward(dy)
            return (y, dx, layer.parameters.map(\.grad))
        }
        let one = run(threads: 1), two = run(threads: 2)
        #expect(one.y == two.y)
        #expect(one.dx == two.dx)
        #expect(one.grads == two.grads)
    }
}
