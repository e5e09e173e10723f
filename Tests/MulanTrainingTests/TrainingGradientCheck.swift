import MulanTensor

/// Central-difference gradient checks for the training tests (MulanTensorTests' GradientCheck
/// lives in a target these tests cannot import): the analytic gradients of L = Σ y·r, for a fixed
/// random r, against (L(v + ε) − L(v − ε)) / 2ε in Double from Float forwards, at up to `samples`
/// coordinates of the input (when `input` gradients are given) and of each trainable parameter.
enum TrainingGradientCheck {
    static func check(input: Tensor, parameters: [(name: String, parameter: Parameter)],
                      forward: (Tensor) -> Tensor, backward: (Tensor) -> Tensor?,
                      epsilon: Float = 1e-2, tolerance: Double = 2e-2, samples: Int = 30,
                      seed: UInt64 = 7) -> [String] {
        var random = RandomSource(seed: seed)
        let r = Tensor.normal(shape: forward(input).shape, std: 1, using: &random)
        func loss(_ y: Tensor) -> Double { zip(y.storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
        for (_, p) in parameters { p.zeroGrad() }
        _ = forward(input)
        let dx = backward(r)
        let grads = parameters.map(\.parameter.grad)
        func scale(_ t: Tensor) -> Double { max(1e-3, t.storage.reduce(0.0) { $0 + Double(abs($1)) } / Double(max(t.count, 1))) }
        func picks(_ n: Int) -> [Int] { n <= samples ? Array(0..<n) : (0..<samples).map { _ in Int(random.next() % UInt64(n)) } }
        var bad: [String] = []
        func compare(_ what: String, _ i: Int, _ analytic: Float, _ lp: Double, _ lm: Double, _ floor: Double) {
            let numeric = (lp - lm) / (2 * Double(epsilon))
            if abs(Double(analytic) - numeric) > tolerance * max(abs(numeric), abs(Double(analytic)), floor) {
                bad.append("\(what)[\(i)]: analytic \(analytic), numeric \(numeric)")
            }
        }
        if let dx {
            var x = input
            for i in picks(input.count) {
                let v = x.storage[i]
                x.storage[i] = v + epsilon; let lp = loss(forward(x))
                x.storage[i] = v - epsilon; let lm = loss(forward(x))
                x.storage[i] = v
                compare("input", i, dx.storage[i], lp, lm, scale(dx))
            }
        }
        for (k, (name, p)) in parameters.enumerated() where p.trainable {
            for i in picks(p.value.count) {
                let v = p.value.storage[i]
                p.value.storage[i] = v + epsilon; let lp = loss(forward(input))
                p.value.storage[i] = v - epsilon; let lm = loss(forward(input))
                p.value.storage[i] = v
                compare(name, i, grads[k].storage[i], lp, lm, scale(grads[k]))
            }
        }
        return bad
    }
}
