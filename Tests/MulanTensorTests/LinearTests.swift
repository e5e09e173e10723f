import MulanTensor
import Testing

@Suite("Tensor core: Linear, activations, GEMM")
struct LinearTests {
    @Test func gemmMatchesNaiveLoop() {
        var random = RandomSource(seed: 1)
        for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = 37, n = 23, k = 19
            let a = Tensor.normal(shape: [m * k], std: 1, using: &random)
            let b = Tensor.normal(shape: [k * n], std: 1, using: &random)
            var c = Tensor(shape: [m * n])
            let lda = transA ? m : k, ldb = transB ? k : n
            BLAS.threads = 2
            a.withUnsafePointer { ap in b.withUnsafePointer { bp in c.withUnsafeMutablePointer { cp in
                BLAS.parallelGemm(transA: transA, transB: transB, m: m, n: n, k: k, a: ap, lda: lda, b: bp, ldb: ldb,
                                  c: cp, ldc: n)
            } } }
            for i in 0..<m {
                for j in 0..<n {
                    var s: Float = 0
                    for p in 0..<k {
                        let av = transA ? a.storage[p * lda + i] : a.storage[i * lda + p]
                        let bv = transB ? b.storage[j * ldb + p] : b.storage[p * ldb + j]
                        s += av * bv
                    }
                    #expect(abs(c.storage[i * n + j] - s) < 1e-4, "trans \(transA) \(transB) at \(i),\(j)")
                }
            }
            BLAS.threads = 1
        }
    }

    @Test func linearGradients() {
        var random = RandomSource(seed: 2)
        let layer = Linear(7, 5, random: &random)
        let x = Tensor.normal(shape: [3, 4, 7], std: 1, using: &random)
        let bad = GradientCheck.check(input: x, parameters: layer.namedParameters,
                                      forward: { layer.forward($0) }, backward: { layer.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func reluAndL2NormalizeGradients() {
        var random = RandomSource(seed: 3)
        let relu = ReLU(), norm = L2Normalize()
        // Keep inputs away from the kink at 0, where finite differences are meaningless.
        var x = Tensor.normal(shape: [4, 6], std: 1, using: &random)
        for i in x.storage.indices where abs(x.storage[i]) < 0.05 { x.storage[i] = 0.3 }
        #expect(GradientCheck.check(input: x, parameters: [], forward: { relu.forward($0) },
                                    backward: { relu.backward($0) }).isEmpty)
        let bad = GradientCheck.check(input: x, parameters: [], forward: { norm.forward($0) },
                                      backward: { norm.backward($0) }, epsilon: 1e-3)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func parameterNamesNest() {
        var random = RandomSource(seed: 4)
        final class Pair: Module {
            let a: Linear, b: Linear
            init(_ r: inout RandomSource) { a = Linear(2, 3, random: &r); b = Linear(3, 1, bias: false, random: &r) }
            var namedParameters: [(name: String, parameter: Parameter)] { nest("a", a) + nest("b", b) }
        }
        let m = Pair(&random)
        #expect(m.namedParameters.map(\.name) == ["a.weight", "a.bias", "b.weight"])
        #expect(m.parameterCount == 2 * 3 + 3 + 3)
    }
}
