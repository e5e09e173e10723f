import MulanTensor
import Testing

/// Finite-difference gradient checks: a layer's analytic gradients (input and parameters) against
/// central differences of L = Σ y·r for a fixed random r, computed in Double from Float forwards.
enum GradientCheck {
    struct Mismatch: CustomStringConvertible {
        let what: String, index: Int, analytic: Double, numeric: Double
        var description: String { "\(what)[\(index)]: analytic \(analytic), numeric \(numeric)" }
    }

    /// Checks `layer` with `forward` (which must run the layer's forward with training: true) and
    /// `backward`. Samples up to `samples` coordinates of the input and of each parameter.
    /// Returns the mismatches beyond `tolerance` (relative, with an absolute floor of `tolerance`·scale).
    static func check(input: Tensor, parameters: [(name: String, parameter: Parameter)],
                      forward: (Tensor) -> Tensor, backward: (Tensor) -> Tensor,
                      epsilon: Float = 1e-2, tolerance: Double = 2e-2, samples: Int = 40,
                      seed: UInt64 = 7) -> [Mismatch] {
        var random = RandomSource(seed: seed)
        let y0 = forward(input)
        let r = Tensor.normal(shape: y0.shape, std: 1, using: &random)
        func loss(_ y: Tensor) -> Double {
            var s = 0.0
            for i in 0..<y.count { s += Double(y.storage[i]) * Double(r.storage[i]) }
            return s
        }
        for (_, p) in parameters { p.zeroGrad() }
        _ = forward(input)
        let dx = backward(r)
        let grads = parameters.map { $0.parameter.grad }

        var mismatches: [Mismatch] = []
        func compare(_ what: String, _ index: Int, _ analytic: Double, _ numeric: Double, scale: Double) {
            let err = abs(analytic - numeric)
            if err > tolerance * max(abs(numeric), abs(analytic), scale) {
                mismatches.append(Mismatch(what: what, index: index, analytic: analytic, numeric: numeric))
            }
        }
        func indices(_ n: Int) -> [Int] {
            if n <= samples { return Array(0..<n) }
            return (0..<samples).map { _ in Int(random.next() % UInt64(n)) }
        }
        // A scale for the absolute floor: the typical gradient magnitude.
        func typical(_ t: Tensor) -> Double {
            t.count == 0 ? 1 : max(1e-3, t.storage.reduce(0.0) { $0 + Double(abs($1)) } / Double(t.count))
        }
        var x = input
        let xScale = typical(dx)
        for i in indices(input.count) {
            let v = x.storage[i]
            x.storage[i] = v + epsilon
            let lp = loss(forward(x))
            x.storage[i] = v - epsilon
            let lm = loss(forward(x))
            x.storage[i] = v
            compare("input", i, Double(dx.storage[i]), (lp - lm) / (2 * Double(epsilon)), scale: xScale)
        }
        for (k, (name, p)) in parameters.enumerated() where p.trainable {
            let scale = typical(grads[k])
            for i in indices(p.value.count) {
                let v = p.value.storage[i]
                p.value.storage[i] = v + epsilon
                let lp = loss(forward(input))
                p.value.storage[i] = v - epsilon
                let lm = loss(forward(input))
                p.value.storage[i] = v
                compare(name, i, Double(grads[k].storage[i]), (lp - lm) / (2 * Double(epsilon)), scale: scale)
            }
        }
        return mismatches
    }
}
