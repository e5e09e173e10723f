import Foundation

/// The symmetric contrastive loss of two batches of L2-normalized embeddings with a learnable
/// temperature τ, as MuLan trains: logits S = A·Tᵀ/τ, cross-entropy of each row (audio→text) and
/// each column (text→audio) towards its diagonal, averaged over both directions.
///
/// With `decoupled` (MuLan's choice, the default) the positive is left out of each denominator:
/// ℓᵢ = −Sᵢᵢ + log Σ_{j≠i} exp Sᵢⱼ. A collapsed model (all similarities equal) then scores
/// exactly ln(B−1); the standard InfoNCE form (positive included) scores ln B.
///
/// τ is stored as log τ (`logTemperature`) and kept in (0, 1] by `clampTemperature()`.
public final class ContrastiveLoss: Module {
    public let logTemperature: Parameter
    public let decoupled: Bool
    private var a = Tensor(shape: [0]), t = Tensor(shape: [0])
    private var dLogits: [Float] = []

    public init(initialTemperature: Float = 0.1, decoupled: Bool = true) {
        precondition(initialTemperature > 0 && initialTemperature <= 1, "the temperature must be in (0, 1]")
        logTemperature = Parameter(Tensor(shape: [1], [Foundation.log(initialTemperature)]), decays: false)
        self.decoupled = decoupled
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [("log_temperature", logTemperature)] }

    public var temperature: Float { Foundation.exp(logTemperature.value.storage[0]) }

    /// Keeps τ ≤ 1 (log τ ≤ 0) after an optimizer step.
    public func clampTemperature() {
        logTemperature.value.storage[0] = min(0, logTemperature.value.storage[0])
    }

    /// The loss of audio embeddings `audio` [B, D] against text embeddings `text` [B, D] (row i of
    /// each is a positive pair). Keeps what `backward()` needs.
    public func forward(audio: Tensor, text: Tensor) -> Float {
        let b = audio.shape[0], d = audio.count / max(b, 1)
        precondition(text.shape[0] == b && text.count == audio.count, "audio \(audio.shape) and text \(text.shape) differ")
        precondition(b >= (decoupled ? 3 : 2), "a contrastive batch needs at least \(decoupled ? 3 : 2) pairs")
        a = audio
        t = text
        let tau = temperature
        var s = [Float](repeating: 0, count: b * b)
        audio.withUnsafePointer { ap in text.withUnsafePointer { tp in s.withUnsafeMutableBufferPointer { sp in
            BLAS.gemm(transB: true, m: b, n: b, k: d, alpha: 1 / tau, a: ap, lda: d, b: tp, ldb: d, c: sp.baseAddress!, ldc: b)
        } } }
        var grad = [Float](repeating: 0, count: b * b)
        var total = 0.0
        let scale = 1 / Float(2 * b)
        // Rows (audio → text), then columns (text → audio).
        for direction in 0..<2 {
            for i in 0..<b {
                @inline(__always) func at(_ j: Int) -> Int { direction == 0 ? i * b + j : j * b + i }
                var m = -Float.infinity
                for j in 0..<b where !(decoupled && j == i) { m = max(m, s[at(j)]) }
                var z = 0.0
                for j in 0..<b where !(decoupled && j == i) { z += Double(Foundation.exp(s[at(j)] - m)) }
                let lse = Double(m) + Foundation.log(z)
                total += lse - Double(s[at(i)])
                for j in 0..<b where !(decoupled && j == i) {
                    grad[at(j)] += scale * Float(Foundation.exp(Double(s[at(j)] - m)) / z)
                }
                grad[at(i)] -= scale
            }
        }
        // dL/d log τ = Σ dL/dS_ij · ∂S_ij/∂log τ = Σ dL/dS_ij · (−S_ij)
        var dLogTau: Float = 0
        for k in 0..<(b * b) { dLogTau -= grad[k] * s[k] }
        logTemperature.grad.storage[0] += dLogTau
        dLogits = grad
        return Float(total / Double(2 * b))
    }

    /// Gradients with respect to the audio and text embeddings of the last `forward`.
    public func backward() -> (audio: Tensor, text: Tensor) {
        let b = a.shape[0], d = a.count / max(b, 1)
        let inv = 1 / temperature
        var da = Tensor(shape: a.shape), dt = Tensor(shape: t.shape)
        dLogits.withUnsafeBufferPointer { gp in
            t.withUnsafePointer { tp in da.withUnsafeMutablePointer { dap in
                BLAS.gemm(m: b, n: d, k: b, alpha: inv, a: gp.baseAddress!, lda: b, b: tp, ldb: d, c: dap, ldc: d)
            } }
            a.withUnsafePointer { ap in dt.withUnsafeMutablePointer { dtp in
                BLAS.gemm(transA: true, m: b, n: d, k: b, alpha: inv, a: gp.baseAddress!, lda: b, b: ap, ldb: d, c: dtp, ldc: d)
            } }
        }
        return (da, dt)
    }
}

/// Cosine-similarity matrix helper: S = A·Bᵀ for row-normalized A [n, d] and B [m, d].
public func similarityMatrix(_ a: Tensor, _ b: Tensor) -> [Float] {
    let n = a.shape[0], m = b.shape[0], d = a.count / max(n, 1)
    precondition(b.count / max(m, 1) == d, "embedding widths differ")
    var s = [Float](repeating: 0, count: n * m)
    a.withUnsafePointer { ap in b.withUnsafePointer { bp in s.withUnsafeMutableBufferPointer { sp in
        BLAS.parallelGemm(transB: true, m: n, n: m, k: d, a: ap, lda: d, b: bp, ldb: d, c: sp.baseAddress!, ldc: m)
    } } }
    return s
}
