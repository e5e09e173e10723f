import Foundation
import MulanTensor
import MulanTestSupport
import Testing

@Suite("Contrastive loss, AdamW, schedule, safetensors")
struct LossAndOptimizerTests {
    static func normalizedRows(_ n: Int, _ d: Int, _ random: inout RandomSource) -> Tensor {
        var t = Tensor.normal(shape: [n, d], std: 1, using: &random)
        for r in 0..<n {
            let norm = (0..<d).reduce(Float(0)) { $0 + t.storage[r * d + $1] * t.storage[r * d + $1] }.squareRoot()
            for j in 0..<d { t.storage[r * d + j] /= norm }
        }
        return t
    }

    /// The loss against a direct evaluation of its definition, in Double.
    static func reference(_ a: Tensor, _ t: Tensor, tau: Double, decoupled: Bool) -> Double {
        let b = a.shape[0], d = a.shape[1]
        func s(_ i: Int, _ j: Int) -> Double {
            (0..<d).reduce(0.0) { $0 + Double(a.storage[i * d + $1]) * Double(t.storage[j * d + $1]) } / tau
        }
        var total = 0.0
        for i in 0..<b {
            let rows = (0..<b).filter { !(decoupled && $0 == i) }
            total += -s(i, i) + log(rows.reduce(0.0) { $0 + exp(s(i, $1)) })
            total += -s(i, i) + log(rows.reduce(0.0) { $0 + exp(s($1, i)) })
        }
        return total / Double(2 * b)
    }

    @Test(arguments: [true, false]) func lossMatchesDefinitionAndGradientsCheck(decoupled: Bool) {
        var random = RandomSource(seed: 11)
        let a = Self.normalizedRows(6, 5, &random), t = Self.normalizedRows(6, 5, &random)
        let loss = ContrastiveLoss(initialTemperature: 0.3, decoupled: decoupled)
        let value = loss.forward(audio: a, text: t)
        #expect(abs(Double(value) - Self.reference(a, t, tau: 0.3, decoupled: decoupled)) < 1e-4)

        // Gradients with respect to both inputs and log τ, by central differences.
        loss.logTemperature.zeroGrad()
        _ = loss.forward(audio: a, text: t)
        let (da, dt) = loss.backward()
        let dLogTau = Double(loss.logTemperature.grad.storage[0])
        let eps: Float = 1e-2
        func numeric(_ f: (inout Tensor, inout Tensor) -> Void) -> Double {
            var a1 = a, t1 = t, a2 = a, t2 = t
            f(&a1, &t1)
            let plus = Self.reference(a1, t1, tau: 0.3, decoupled: decoupled)
            _ = f  // symmetric step below
            for i in a2.storage.indices { a2.storage[i] = 2 * a.storage[i] - a1.storage[i] }
            for i in t2.storage.indices { t2.storage[i] = 2 * t.storage[i] - t1.storage[i] }
            let minus = Self.reference(a2, t2, tau: 0.3, decoupled: decoupled)
            return (plus - minus) / (2 * Double(eps))
        }
        for i in stride(from: 0, to: 30, by: 7) {
            let na = numeric { x, _ in x.storage[i] += eps }
            let nt = numeric { _, y in y.storage[i] += eps }
            #expect(abs(na - Double(da.storage[i])) < 2e-3 + 1e-2 * abs(na), "audio[\(i)]")
            #expect(abs(nt - Double(dt.storage[i])) < 2e-3 + 1e-2 * abs(nt), "text[\(i)]")
        }
        let h = 1e-3
        let numericTau = (Self.reference(a, t, tau: 0.3 * exp(h), decoupled: decoupled)
                          - Self.reference(a, t, tau: 0.3 * exp(-h), decoupled: decoupled)) / (2 * h)
        #expect(abs(numericTau - dLogTau) < 1e-3 + 1e-2 * abs(numericTau))
    }

    @Test func collapsedModelScoresLogBMinusOne() {
        // All embeddings equal: the decoupled loss is exactly ln(B−1), the standard one ln(B).
        let b = 8
        let same = Tensor(shape: [b, 4], (0..<b).flatMap { _ in [Float(0.5), 0.5, 0.5, 0.5] })
        let decoupled = ContrastiveLoss(initialTemperature: 0.1).forward(audio: same, text: same)
        let standard = ContrastiveLoss(initialTemperature: 0.1, decoupled: false).forward(audio: same, text: same)
        #expect(abs(Double(decoupled) - log(Double(b - 1))) < 1e-5)
        #expect(abs(Double(standard) - log(Double(b))) < 1e-5)
    }

    @Test func temperatureStaysInRange() {
        let loss = ContrastiveLoss(initialTemperature: 0.1)
        #expect(abs(loss.temperature - 0.1) < 1e-6)
        loss.logTemperature.value.storage[0] = 0.7
        loss.clampTemperature()
        #expect(loss.temperature == 1)
    }

    @Test func adamWMatchesHandComputedSteps() {
        var settings = AdamW.Settings()
        settings.weightDecay = 0.1
        let grads: [[Double]] = [[0.5, -1, 2], [0.25, 0.5, -1], [-0.1, 0.2, 0.3]]
        /// Three updates of `opt` (over x [1, -2] and y [3]) at rate 0.01, and the same computed by hand
        /// with each of the three weights' rate and decay: the hand-computed weights.
        func steps(_ opt: AdamW, _ x: Parameter, _ y: Parameter, lr: [Double], decay: [Double]) -> [Double] {
            var w: [Double] = [1, -2, 3], m = [0.0, 0, 0], v = [0.0, 0, 0]
            for (k, g) in grads.enumerated() {
                x.grad = Tensor(shape: [2], [Float(g[0]), Float(g[1])])
                y.grad = Tensor(shape: [1], [Float(g[2])])
                opt.update(lr: 0.01)
                for i in 0..<3 {
                    m[i] = 0.9 * m[i] + 0.1 * g[i]
                    v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                    let mh = m[i] / (1 - pow(0.9, Double(k + 1))), vh = v[i] / (1 - pow(0.999, Double(k + 1)))
                    w[i] -= lr[i] * (mh / (vh.squareRoot() + 1e-8) + decay[i] * w[i])
                }
            }
            return w
        }
        let p = Parameter(Tensor(shape: [2], [1.0, -2.0]))
        let q = Parameter(Tensor(shape: [1], [3.0]), decays: false)
        let opt = AdamW([("p", p), ("q", q)], settings: settings)
        let w = steps(opt, p, q, lr: [0.01, 0.01, 0.01], decay: [0.1, 0.1, 0])
        #expect(abs(Double(p.value.storage[0]) - w[0]) < 1e-5)
        #expect(abs(Double(p.value.storage[1]) - w[1]) < 1e-5)
        #expect(abs(Double(q.value.storage[0]) - w[2]) < 1e-5)
        #expect(opt.step == 3)

        // A learning-rate scale (mulan-train --pitch-lr-scale) multiplies the step and the decay of
        // the parameters it names, and only theirs.
        let a = Parameter(Tensor(shape: [2], [1.0, -2.0])), b = Parameter(Tensor(shape: [1], [3.0]))
        let scaled = AdamW([("a", a), ("pitch.b", b)], settings: settings,
                           learningRateScale: { $0.hasPrefix("pitch.") ? 4 : 1 })
        #expect(scaled.learningRateScales == [1, 4])
        let u = steps(scaled, a, b, lr: [0.01, 0.01, 0.04], decay: [0.1, 0.1, 0.1])
        for (got, want) in zip(a.value.storage + b.value.storage, u) { #expect(abs(Double(got) - want) < 1e-5) }
        #expect(abs(Double(a.value.storage[0]) - w[0]) < 1e-5, "an unscaled parameter moved differently")
    }

    @Test func clippingBoundsTheGlobalNorm() {
        let p = Parameter(Tensor(shape: [2], [0, 0]))
        p.grad = Tensor(shape: [2], [3, 4])
        let opt = AdamW([("p", p)])
        #expect(opt.clipGradients(maxNorm: 1) == 5)
        #expect(abs(opt.gradientNorm() - 1) < 1e-6)
    }

    @Test func scheduleWarmsUpThenDecays() {
        let s = LearningRateSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minimum: 1e-5)
        #expect(abs(s.rate(at: 0) - 1e-4) < 1e-9)
        #expect(abs(s.rate(at: 9) - 1e-3) < 1e-9)
        #expect(abs(s.rate(at: 60) - (1e-5 + (1e-3 - 1e-5) * 0.5)) < 1e-8)
        #expect(abs(s.rate(at: 110) - 1e-5) < 1e-9)
        #expect((10..<110).allSatisfy { s.rate(at: $0) >= s.rate(at: $0 + 1) })
    }

    @Test func safetensorsRoundTripAndPythonReadsThem() throws {
        let dir = TempDir("mulan-st")
        var random = RandomSource(seed: 5)
        let a = Tensor.normal(shape: [3, 4], std: 1, using: &random)
        let b = Tensor(shape: [5], [1, 2, 3, 4, 5])
        let path = dir.file("x.safetensors")
        try SafeTensors.write([("layer.weight", a), ("bias", b)], metadata: ["step": "7"], to: path)
        let back = try SafeTensors.read(path)
        #expect(back.tensors["layer.weight"] == a)
        #expect(back.tensors["bias"] == b)
        #expect(back.metadata["step"] == "7")
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        // Python's safetensors (numpy) agrees on names, shapes, values and metadata.
        let r = try TestProcess.run(TestPython.path, ["-c", """
            import sys, json
            from safetensors import safe_open
            with safe_open(sys.argv[1], framework="numpy") as f:
                print(json.dumps({"meta": f.metadata(), "keys": sorted(f.keys()),
                                  "w": f.get_tensor("layer.weight").tolist(), "shape": list(f.get_tensor("layer.weight").shape),
                                  "b": f.get_tensor("bias").tolist()}))
            """, path])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [String: Any]
        #expect(obj?["keys"] as? [String] == ["bias", "layer.weight"])
        #expect(obj?["shape"] as? [Int] == [3, 4])
        #expect((obj?["meta"] as? [String: String])?["step"] == "7")
        let w = (obj?["w"] as? [[Double]])?.flatMap { $0 } ?? []
        #expect(w.map(Float.init) == a.storage)
        #expect((obj?["b"] as? [Double])?.map(Float.init) == b.storage)
    }

    @Test func damagedSafetensorsFailClearly() throws {
        let dir = TempDir("mulan-st")
        try dir.write("bad.safetensors", "\u{FF}\u{FF}\u{FF}\u{FF}\u{FF}\u{FF}\u{00}\u{00}{}")
        #expect(throws: SafeTensors.FormatError.self) { try SafeTensors.read(dir.file("bad.safetensors")) }
    }
}
