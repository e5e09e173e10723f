import Foundation
import MulanTensor

/// `mulan-train blas`: which OpenBLAS core runs, how fast its single-thread `sgemm` is, and whether
/// the model's computations give the same bits on 1 thread and on N (the promise `BLAS.parallelGemm`
/// keeps on every core). The tests run it under each core they can force (`OPENBLAS_CORETYPE`).
public enum BLASSelfCheck {
    /// One computation compared bit for bit at 1 and N threads.
    public struct Comparison: Codable, Sendable, Equatable {
        public var name: String
        public var identical: Bool
        /// The largest |difference| between the two (0 when identical).
        public var largestDifference: Float

        enum CodingKeys: String, CodingKey { case name, identical, largestDifference = "largest_difference" }
    }

    public struct Report: Codable, Sendable {
        public var blas: BLASCore
        /// `cblas_sgemm` on n×n matrices, one thread, best of 5.
        public var sgemmSize: Int?
        public var sgemmGFLOPS: Double?
        public var threads: Int?
        public var comparisons: [Comparison]?

        public init(blas: BLASCore) { self.blas = blas }

        enum CodingKeys: String, CodingKey {
            case blas, sgemmSize = "sgemm_size", sgemmGFLOPS = "sgemm_gflops", threads, comparisons
        }

        public var allIdentical: Bool { comparisons?.allSatisfy(\.identical) ?? true }
    }

    /// Single-thread `sgemm` throughput on n×n×n, in GFLOP/s (best of `repeats` timed calls).
    public static func sgemmGFLOPS(size n: Int, repeats: Int = 5) -> Double {
        var random = RandomSource(seed: 1)
        let a = Tensor.normal(shape: [n, n], std: 1, using: &random), b = Tensor.normal(shape: [n, n], std: 1, using: &random)
        var c = Tensor(shape: [n, n])
        var best = Double.infinity
        a.withUnsafePointer { ap in
            b.withUnsafePointer { bp in
                c.withUnsafeMutablePointer { cp in
                    for round in 0...repeats {
                        let start = DispatchTime.now().uptimeNanoseconds
                        BLAS.gemm(m: n, n: n, k: n, a: ap, lda: n, b: bp, ldb: n, c: cp, ldc: n)
                        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        if round > 0 { best = min(best, seconds) }  // the first call warms up
                    }
                }
            }
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    /// Runs each computation at 1 thread and at `threads`, and compares every output bit for bit:
    /// products split by rows and by columns (plain, transposed, accumulating), a BERT encoder
    /// layer's training forward and backward and its packed inference, and a ResNet audio tower's
    /// training step.
    public static func compareThreadCounts(_ threads: Int) -> [Comparison] {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        func compare(_ name: String, _ run: () -> [Tensor]) -> Comparison {
            BLAS.threads = 1
            let one = run()
            BLAS.threads = threads
            let many = run()
            var worst: Float = 0
            var identical = one.count == many.count
            for (x, y) in zip(one, many) {
                guard x.shape == y.shape else { identical = false; continue }
                for (u, v) in zip(x.storage, y.storage) where u.bitPattern != v.bitPattern {
                    identical = false
                    worst = max(worst, abs(u - v).isNaN ? .infinity : abs(u - v))
                }
            }
            return Comparison(name: name, identical: identical, largestDifference: worst)
        }
        var comparisons: [Comparison] = []
        // Odd sizes, so that blocks end inside kernel tiles.
        for (m, n, k) in [(203, 77, 64), (61, 1531, 384), (413, 384, 1536), (96, 1152, 384)] {
            comparisons.append(compare("gemm \(m)×\(n)×\(k)") { products(m: m, n: n, k: k) })
        }
        comparisons.append(compare("encoder layer forward and backward") { encoderLayerStep() })
        comparisons.append(compare("encoder layer packed inference") { encoderLayerPacked() })
        comparisons.append(compare("audio tower forward and backward") { audioTowerStep() })
        return comparisons
    }

    static func products(m: Int, n: Int, k: Int) -> [Tensor] {
        var random = RandomSource(seed: UInt64(m * 31 + n * 7 + k))
        let a = Tensor.normal(shape: [m, k], std: 1, using: &random)
        let bRows = Tensor.normal(shape: [n, k], std: 1, using: &random)  // op(B) = Bᵀ
        let bCols = Tensor.normal(shape: [k, n], std: 1, using: &random)  // op(B) = B
        let start = Tensor.normal(shape: [m, n], std: 1, using: &random)
        var outputs: [Tensor] = []
        a.withUnsafePointer { ap in
            for (transB, b) in [(true, bRows), (false, bCols)] {
                b.withUnsafePointer { bp in
                    for splitColumns in [false, true] {
                        for beta: Float in [0, 1] {
                            var c = start
                            c.withUnsafeMutablePointer { cp in
                                BLAS.parallelGemm(transB: transB, m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: transB ? k : n,
                                                  beta: beta, c: cp, ldc: n, splitColumns: splitColumns, prepare: { _, _ in })
                            }
                            outputs.append(c)
                        }
                    }
                }
            }
        }
        return outputs
    }

    static let lengths = [16, 9, 1, 16, 12, 3, 7, 2]

    static func encoderLayer(_ random: inout RandomSource) -> TransformerEncoderLayer {
        let layer = TransformerEncoderLayer(width: 64, heads: 4, feedForward: 256, random: &random)
        for p in layer.parameters { p.value = Tensor.normal(shape: p.value.shape, std: 0.1, using: &random) }
        return layer
    }

    static func encoderLayerStep() -> [Tensor] {
        var random = RandomSource(seed: 11)
        let layer = encoderLayer(&random)
        let x = Tensor.normal(shape: [8, 16, 64], std: 1, using: &random)
        let y = layer.forward(x, lengths: lengths)
        let dx = layer.backward(Tensor.normal(shape: y.shape, std: 1, using: &random))
        return [y, dx] + layer.parameters.map(\.grad)
    }

    static func encoderLayerPacked() -> [Tensor] {
        var random = RandomSource(seed: 12)
        let layer = encoderLayer(&random)
        let x = Tensor.normal(shape: [lengths.reduce(0, +), 64], std: 1, using: &random)
        return [layer.forwardPacked(x, lengths: lengths)]
    }

    /// A ResNet audio tower's training forward and backward, big enough that every layer splits
    /// its work (the stem's activations hold 5·8·32·128 values): outputs, input gradient, weights
    /// and their gradients.
    public static func audioTowerStep() -> [Tensor] {
        var random = RandomSource(seed: 13)
        let tower = AudioTower(AudioTowerConfig(melBands: 64, widths: [8, 8, 16], blocksPerStage: 2, embeddingDim: 5),
                               random: &random)
        let x = Tensor.normal(shape: [5, 64, 256], std: 1, using: &random)
        let y = tower.forward(x, training: true)
        let dx = tower.backward(Tensor.normal(shape: y.shape, std: 1, using: &random), inputGradient: true)
        return [y, dx ?? Tensor(shape: [0])] + tower.parameters.flatMap { [$0.value, $0.grad] }
    }
}
