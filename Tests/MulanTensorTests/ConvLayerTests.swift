import MulanTensor
import Testing

@Suite("Convolution, batch norm and pooling layers")
struct ConvLayerTests {
    /// The textbook convolution (one reference for square and rectangular kernels: AxisLayerTests).
    static func naiveConv(_ x: Tensor, _ conv: Conv2d) -> Tensor { AxisLayerTests.naiveConv(x, conv) }

    /// (in, out, kernel, stride, padding, bias, height, width)
    static let shapes: [(Int, Int, Int, Int, Int, Bool, Int, Int)] = [
        (3, 4, 3, 1, 1, true, 7, 9),
        (2, 5, 3, 2, 1, false, 8, 11),
        (3, 2, 3, 2, 0, true, 9, 6),
        (1, 3, 5, 1, 2, true, 6, 7),
        (2, 3, 2, 3, 1, false, 7, 10),
        (4, 6, 1, 1, 0, true, 5, 6),   // 1×1 stride 1: no im2col
        (4, 3, 1, 2, 0, false, 7, 6),  // 1×1 stride 2: the projection shortcut
        (3, 2, 1, 1, 1, true, 3, 4),   // 1×1 with padding goes through im2col
        // im2col matrices over 1 MiB: computed in bands of output rows (28 of 40, 28 of 31).
        (16, 4, 3, 1, 1, false, 40, 64),
        (16, 3, 3, 2, 1, true, 61, 130),
    ]

    @Test func convForwardMatchesNaiveLoops() {
        var random = RandomSource(seed: 11)
        for (i, (cin, cout, k, s, p, bias, h, w)) in Self.shapes.enumerated() {
            let conv = Conv2d(cin, cout, kernelSize: k, stride: s, padding: p, bias: bias, random: &random)
            let x = Tensor.normal(shape: [3, cin, h, w], std: 1, using: &random)
            let y = conv.forward(x, training: false)
            let expected = Self.naiveConv(x, conv)
            #expect(y.shape == expected.shape, "case \(i)")
            let worst = zip(y.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-4, "case \(i): max error \(worst)")
        }
    }

    @Test func convInitialization() {
        var random = RandomSource(seed: 12)
        let conv = Conv2d(16, 64, kernelSize: 3, bias: false, random: &random)
        #expect(conv.weight.value.shape == [64, 16, 3, 3])
        #expect(conv.namedParameters.map(\.name) == ["weight"])
        let n = Double(conv.weight.value.count)
        let variance = conv.weight.value.storage.reduce(0.0) { $0 + Double($1 * $1) } / n
        let expected = 2.0 / Double(16 * 9)
        #expect(abs(variance / expected - 1) < 0.1, "weight variance \(variance), expected \(expected)")
    }

    @Test func convGradients() {
        var random = RandomSource(seed: 13)
        for (i, (cin, cout, k, s, p, bias, h, w)) in Self.shapes.enumerated() {
            let conv = Conv2d(cin, cout, kernelSize: k, stride: s, padding: p, bias: bias, random: &random)
            let x = Tensor.normal(shape: [2, cin, h, w], std: 1, using: &random)
            let bad = GradientCheck.check(input: x, parameters: conv.namedParameters,
                                          forward: { conv.forward($0) }, backward: { conv.backward($0) })
            #expect(bad.isEmpty, "case \(i): \(bad.prefix(5))")
        }
    }

    @Test func convWithoutInputGradientAddsTheSameParameterGradients() {
        var random = RandomSource(seed: 14)
        let conv = Conv2d(3, 4, kernelSize: 3, stride: 2, padding: 1, random: &random)
        let x = Tensor.normal(shape: [3, 3, 8, 9], std: 1, using: &random)
        let dy = Tensor.normal(shape: conv.forward(x).shape, std: 1, using: &random)
        conv.zeroGrads()
        _ = conv.forward(x)
        #expect(conv.backward(dy, inputGradient: true) != nil)
        let full = conv.parameters.map(\.grad)
        conv.zeroGrads()
        _ = conv.forward(x)
        #expect(conv.backward(dy, inputGradient: false) == nil)
        #expect(conv.parameters.map(\.grad) == full)
    }

    @Test func batchNormTrainingGradients() {
        var random = RandomSource(seed: 21)
        let bn = BatchNorm2d(3)
        for i in 0..<3 {
            bn.weight.value.storage[i] = 0.5 + Float(i)
            bn.bias.value.storage[i] = Float(i) - 1
        }
        let x = Tensor.normal(shape: [4, 3, 3, 5], std: 2, using: &random)
        let bad = GradientCheck.check(input: x, parameters: bn.namedParameters,
                                      forward: { bn.forward($0, training: true) }, backward: { bn.backward($0) },
                                      epsilon: 1e-2)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func batchNormStatistics() {
        var random = RandomSource(seed: 22)
        let bn = BatchNorm2d(2)
        #expect(bn.namedParameters.map(\.name) == ["weight", "bias", "running_mean", "running_var"])
        #expect(bn.namedParameters.map(\.parameter.trainable) == [true, true, false, false])
        #expect(bn.namedParameters.map(\.parameter.decays) == [false, false, false, false])
        var x = Tensor.normal(shape: [3, 2, 4, 5], std: 1, using: &random)
        for i in x.storage.indices { x.storage[i] = x.storage[i] * 3 + 2 }
        let y = bn.forward(x, training: true)
        let area = 20, n = 3 * area
        for c in 0..<2 {
            var values: [Double] = [], outputs: [Double] = []
            for b in 0..<3 {
                for i in 0..<area {
                    values.append(Double(x.storage[(b * 2 + c) * area + i]))
                    outputs.append(Double(y.storage[(b * 2 + c) * area + i]))
                }
            }
            let mean = values.reduce(0, +) / Double(n)
            let biased = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            // Training output: zero mean, unit (biased) variance per channel.
            let outMean = outputs.reduce(0, +) / Double(n)
            let outVar = outputs.reduce(0) { $0 + ($1 - outMean) * ($1 - outMean) } / Double(n)
            #expect(abs(outMean) < 1e-5)
            #expect(abs(outVar - biased / (biased + 1e-5)) < 1e-4)
            // Running statistics: momentum 0.1 from (0, 1), unbiased variance.
            #expect(abs(Double(bn.runningMean.value.storage[c]) - 0.1 * mean) < 1e-5)
            let unbiased = biased * Double(n) / Double(n - 1)
            #expect(abs(Double(bn.runningVar.value.storage[c]) - (0.9 + 0.1 * unbiased)) < 1e-4)
        }
    }

    @Test func batchNormEvalUsesRunningStatistics() {
        var random = RandomSource(seed: 23)
        let bn = BatchNorm2d(3)
        let mean: [Float] = [0.5, -1, 2], variance: [Float] = [4, 0.25, 1], gamma: [Float] = [1, 2, -0.5]
        let beta: [Float] = [0, 0.5, 1]
        bn.runningMean.value = Tensor(shape: [3], mean)
        bn.runningVar.value = Tensor(shape: [3], variance)
        bn.weight.value = Tensor(shape: [3], gamma)
        bn.bias.value = Tensor(shape: [3], beta)
        let x = Tensor.normal(shape: [2, 3, 2, 3], std: 1, using: &random)
        let y = bn.forward(x, training: false)
        for i in 0..<x.count {
            let c = (i / 6) % 3
            let expected = (x.storage[i] - mean[c]) / (variance[c] + 1e-5).squareRoot() * gamma[c] + beta[c]
            #expect(abs(y.storage[i] - expected) < 1e-5)
        }
        // Eval mode leaves the running statistics alone.
        #expect(bn.runningMean.value.storage == mean)
        #expect(bn.runningVar.value.storage == variance)
    }

    @Test func maxPoolForwardAndGradients() {
        var random = RandomSource(seed: 31)
        let pool = MaxPool2d(kernelSize: 2)
        // Distinct values 0.1 apart (a shuffled ramp), so ±0.01 never changes a window's maximum.
        let shape = [2, 3, 5, 7]
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.1 - 10 }
        values.shuffle(using: &random)
        let x = Tensor(shape: shape, values)
        let y = pool.forward(x, training: false)
        #expect(y.shape == [2, 3, 2, 3])
        for p in 0..<6 {
            for r in 0..<2 {
                for c in 0..<3 {
                    let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map { x.storage[p * 35 + (2 * r + $0) * 7 + 2 * c + $1] }
                    #expect(y.storage[p * 6 + r * 3 + c] == window.max()!)
                }
            }
        }
        let bad = GradientCheck.check(input: x, parameters: [], forward: { pool.forward($0) },
                                      backward: { pool.backward($0) }, epsilon: 1e-2, samples: count)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    /// Rectangular windows and strides (musicnn's vgg: 1×4 stride 2×2, 4×4 stride 4×4), including
    /// windows that overlap and rows left over, against a naive loop; gradients by differences.
    @Test(arguments: [((1, 4), (2, 2)), ((4, 4), (4, 4)), ((3, 2), (1, 3))])
    func rectangularMaxPool(kernel: (Int, Int), stride: (Int, Int)) {
        var random = RandomSource(seed: 33)
        let pool = MaxPool2d(kernel: kernel, stride: stride)
        let shape = [2, 2, 9, 11]
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.1 - 10 }
        values.shuffle(using: &random)
        let x = Tensor(shape: shape, values)
        let y = pool.forward(x, training: false)
        let oh = (9 - kernel.0) / stride.0 + 1, ow = (11 - kernel.1) / stride.1 + 1
        #expect(y.shape == [2, 2, oh, ow] && pool.outputSize(height: 9, width: 11) == (oh, ow))
        for p in 0..<4 {
            for r in 0..<oh {
                for c in 0..<ow {
                    var best = -Float.infinity
                    for i in 0..<kernel.0 { for j in 0..<kernel.1 { best = max(best, x.storage[p * 99 + (r * stride.0 + i) * 11 + c * stride.1 + j]) } }
                    #expect(y.storage[(p * oh + r) * ow + c] == best)
                }
            }
        }
        let bad = GradientCheck.check(input: x, parameters: [], forward: { pool.forward($0) },
                                      backward: { pool.backward($0) }, epsilon: 1e-2, samples: count)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func globalAveragePool() {
        var random = RandomSource(seed: 32)
        let gap = GlobalAveragePool()
        let x = Tensor.normal(shape: [2, 3, 4, 5], std: 1, using: &random)
        let y = gap.forward(x)
        #expect(y.shape == [2, 3])
        for p in 0..<6 {
            let mean = x.storage[(p * 20)..<(p * 20 + 20)].reduce(0, +) / 20
            #expect(abs(y.storage[p] - mean) < 1e-5)
        }
        let bad = GradientCheck.check(input: x, parameters: [], forward: { gap.forward($0) },
                                      backward: { gap.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    /// Conv → BN → MaxPool → GAP forward and backward, run once per thread count.
    static func pipeline(threads: Int) -> [Tensor] {
        BLAS.threads = threads
        defer { BLAS.threads = 1 }
        var random = RandomSource(seed: 41)
        let conv = Conv2d(3, 8, kernelSize: 3, stride: 2, padding: 1, random: &random)
        let conv2 = Conv2d(8, 8, kernelSize: 1, random: &random)
        let bn = BatchNorm2d(8), pool = MaxPool2d(), gap = GlobalAveragePool()
        let x = Tensor.normal(shape: [5, 3, 20, 30], std: 1, using: &random)
        let y = gap.forward(pool.forward(bn.forward(conv2.forward(conv.forward(x)))))
        let dy = Tensor.normal(shape: y.shape, std: 1, using: &random)
        let dx = conv.backward(conv2.backward(bn.backward(pool.backward(gap.backward(dy)))))
        return [y, dx] + (conv.parameters + conv2.parameters + bn.parameters).flatMap { [$0.value, $0.grad] }
    }

    @Test func resultsDoNotDependOnThreadCount() {
        let one = Self.pipeline(threads: 1), two = Self.pipeline(threads: 2), three = Self.pipeline(threads: 3)
        #expect(one == two)
        #expect(one == three)
    }
}
