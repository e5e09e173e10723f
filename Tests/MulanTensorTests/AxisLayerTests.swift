import MulanTensor
import Testing

@Suite("Rectangular convolutions, 1-D convolutions and pooling over one axis")
struct AxisLayerTests {
    /// The textbook convolution with a kh×kw kernel and per-side padding (top, left; the padding
    /// after each axis only sets the output size).
    static func naiveConv(_ x: Tensor, _ conv: Conv2d) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let kh = conv.kernelHeight, kw = conv.kernelWidth, s = conv.stride, o = conv.outChannels
        let (oh, ow) = conv.outputSize(height: h, width: w)
        var y = Tensor(shape: [b, o, oh, ow])
        for n in 0..<b {
            for oc in 0..<o {
                for r in 0..<oh {
                    for q in 0..<ow {
                        var sum = Double(conv.bias?.value.storage[oc] ?? 0)
                        for ic in 0..<c {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let ih = r * s - conv.padTop + ki, iw = q * s - conv.padLeft + kj
                                    guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                                    sum += Double(x.storage[((n * c + ic) * h + ih) * w + iw])
                                        * Double(conv.weight.value.storage[((oc * c + ic) * kh + ki) * kw + kj])
                                }
                            }
                        }
                        y.storage[((n * o + oc) * oh + r) * ow + q] = Float(sum)
                    }
                }
            }
        }
        return y
    }

    struct Shape: Sendable, CustomStringConvertible {
        var cin: Int, cout: Int, kh: Int, kw: Int
        var pad: (top: Int, bottom: Int, left: Int, right: Int)
        var stride = 1, bias = true, height: Int, width: Int
        var description: String { "\(cin)→\(cout) \(kh)×\(kw) pad \(pad) stride \(stride) on \(height)×\(width)" }
    }

    static let shapes: [Shape] = [
        // musicnn's timbral filter, scaled down: tall kernel, time padded on both sides, frequency valid.
        Shape(cin: 1, cout: 4, kh: 5, kw: 3, pad: (0, 0, 1, 1), height: 9, width: 11),
        // musicnn's temporal filter: 1×k with TF 'same' for an even k (k/2 − 1 before, k/2 after).
        Shape(cin: 1, cout: 3, kh: 1, kw: 8, pad: (0, 0, 3, 4), height: 5, width: 13),
        // Asymmetric on both axes, several channels, no bias.
        Shape(cin: 3, cout: 2, kh: 2, kw: 4, pad: (1, 0, 0, 2), bias: false, height: 6, width: 7),
        // Rectangular with stride 2 and padding after only.
        Shape(cin: 2, cout: 3, kh: 3, kw: 2, pad: (0, 2, 0, 1), stride: 2, height: 8, width: 9),
        // A 1×k kernel over a plane of height 1 (the 1-D convolution's case).
        Shape(cin: 5, cout: 4, kh: 1, kw: 7, pad: (0, 0, 3, 3), height: 1, width: 12),
        // Over 1 MiB of im2col: computed in bands of output rows.
        Shape(cin: 2, cout: 3, kh: 7, kw: 5, pad: (0, 0, 2, 2), height: 120, width: 187),
    ]

    @Test(arguments: shapes)
    func rectangularConvMatchesNaiveLoops(_ s: Shape) {
        var random = RandomSource(seed: 101)
        let conv = Conv2d(s.cin, s.cout, kernel: (s.kh, s.kw), padding: s.pad, stride: s.stride, bias: s.bias, random: &random)
        #expect(conv.weight.value.shape == [s.cout, s.cin, s.kh, s.kw])
        let x = Tensor.normal(shape: [2, s.cin, s.height, s.width], std: 1, using: &random)
        let y = conv.forward(x, training: false)
        let expected = Self.naiveConv(x, conv)
        #expect(y.shape == expected.shape)
        let worst = zip(y.storage, expected.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-4, "max error \(worst)")
    }

    @Test func tensorflowSameOutputKeepsTheLength() {
        var random = RandomSource(seed: 102)
        for k in [32, 64, 128] {
            let conv = Conv2d(1, 2, kernel: (1, k), padding: (0, 0, k / 2 - 1, k / 2), random: &random)
            #expect(conv.outputSize(height: 96, width: 187) == (96, 187))
        }
    }

    @Test(arguments: shapes.prefix(5))
    func rectangularConvGradients(_ s: Shape) {
        var random = RandomSource(seed: 103)
        let conv = Conv2d(s.cin, s.cout, kernel: (s.kh, s.kw), padding: s.pad, stride: s.stride, bias: s.bias, random: &random)
        let x = Tensor.normal(shape: [2, s.cin, s.height, s.width], std: 1, using: &random)
        let bad = GradientCheck.check(input: x, parameters: conv.namedParameters,
                                      forward: { conv.forward($0) }, backward: { conv.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func squareConvKeepsItsAccessors() {
        var random = RandomSource(seed: 104)
        let conv = Conv2d(2, 3, kernelSize: 3, stride: 2, padding: 1, random: &random)
        #expect(conv.kernelSize == 3 && conv.padding == 1 && conv.kernelHeight == 3 && conv.kernelWidth == 3)
        #expect([conv.padTop, conv.padBottom, conv.padLeft, conv.padRight] == [1, 1, 1, 1])
    }

    @Test func conv1dMatchesNaiveLoopsAndKeepsItsLayout() {
        var random = RandomSource(seed: 105)
        let conv = Conv1d(6, 4, kernelSize: 7, padding: (3, 3), random: &random)
        #expect(conv.weight.value.shape == [4, 6, 7])
        #expect(conv.namedParameters.map(\.name) == ["weight", "bias"])
        let x = Tensor.normal(shape: [3, 6, 20], std: 1, using: &random)
        let y = conv.forward(x, training: false)
        #expect(y.shape == [3, 4, 20])
        var worst: Float = 0
        for n in 0..<3 {
            for o in 0..<4 {
                for t in 0..<20 {
                    var sum = Double(conv.bias!.value.storage[o])
                    for c in 0..<6 {
                        for k in 0..<7 where t - 3 + k >= 0 && t - 3 + k < 20 {
                            sum += Double(x.storage[(n * 6 + c) * 20 + t - 3 + k]) * Double(conv.weight.value.storage[(o * 6 + c) * 7 + k])
                        }
                    }
                    worst = max(worst, abs(Float(sum) - y.storage[(n * 4 + o) * 20 + t]))
                }
            }
        }
        #expect(worst < 1e-4)
        let bad = GradientCheck.check(input: x, parameters: conv.namedParameters,
                                      forward: { conv.forward($0) }, backward: { conv.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        _ = conv.forward(x)
        #expect(conv.backward(Tensor(shape: [3, 4, 20], repeating: 1), inputGradient: false) == nil)
    }

    /// Distinct values 0.1 apart, shuffled, so ±0.01 never changes which element is the maximum.
    static func ramp(_ shape: [Int], seed: UInt64) -> Tensor {
        var random = RandomSource(seed: seed)
        let count = shape.reduce(1, *)
        var values = (0..<count).map { Float($0) * 0.1 - 5 }
        values.shuffle(using: &random)
        return Tensor(shape: shape, values)
    }

    @Test func maxOverHeight() {
        let x = Self.ramp([2, 3, 5, 4], seed: 106)
        let pool = MaxOverHeight()
        let y = pool.forward(x, training: false)
        #expect(y.shape == [2, 3, 4])
        for p in 0..<6 {
            for j in 0..<4 {
                let column = (0..<5).map { x.storage[(p * 5 + $0) * 4 + j] }
                #expect(y.storage[p * 4 + j] == column.max()!)
            }
        }
        let bad = GradientCheck.check(input: x, parameters: [], forward: { pool.forward($0) },
                                      backward: { pool.backward($0) }, samples: x.count)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // Ties go to the first row; a NaN takes the column.
        let t = Tensor(shape: [1, 1, 3, 2], [1, .nan, 1, 2, 0, 3])
        let ty = pool.forward(t, training: true)
        #expect(ty.storage[0] == 1 && ty.storage[1].isNaN)
        let dx = pool.backward(Tensor(shape: [1, 1, 2], [5, 7]))
        #expect(dx.storage == [5, 7, 0, 0, 0, 0])
        // Inference (its own loop, without the argmax) gives the same maxima, NaN included.
        let n = Tensor(shape: [1, 1, 3, 3], [.nan, 1, -2, 0, .nan, -1, 4, 2, -3])
        let inference = pool.forward(n, training: false), trained = pool.forward(n, training: true)
        #expect(inference.storage[0].isNaN && inference.storage[1].isNaN && inference.storage[2] == -1)
        #expect(trained.storage[0].isNaN && trained.storage[1].isNaN && trained.storage[2] == -1)
        #expect(pool.forward(x, training: true).storage == y.storage)
    }

    /// ReLU in one pass over threads: max(x, 0) with NaN as 0, the gradient where x > 0, on a tensor
    /// large enough to be split over the threads and on one that is not.
    @Test func reluForwardAndBackward() {
        let relu = ReLU()
        let small = Tensor(shape: [2, 3], [-1, 0, 2, .nan, -0.5, 3])
        #expect(relu.forward(small, training: false).storage == [0, 0, 2, 0, 0, 3])
        #expect(relu.forward(small, training: true).storage == [0, 0, 2, 0, 0, 3])
        #expect(relu.backward(Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])).storage == [0, 0, 3, 0, 0, 6])
        var random = RandomSource(seed: 109)
        let large = Tensor.normal(shape: [3, (1 << 16) + 17], std: 1, using: &random)
        let y = relu.forward(large, training: true)
        #expect(y.storage == large.storage.map { $0 > 0 ? $0 : 0 })
        #expect(relu.forward(large, training: false).storage == y.storage)
        let dy = Tensor.normal(shape: large.shape, std: 1, using: &random)
        #expect(relu.backward(dy).storage == zip(large.storage, dy.storage).map { $0 > 0 ? $1 : 0 })
    }

    @Test func maxMeanOverTimeIsInterleaved() {
        let x = Self.ramp([2, 3, 6], seed: 107)
        let pool = MaxMeanOverTime()
        let y = pool.forward(x, training: false)
        #expect(y.shape == [2, 6])
        for r in 0..<6 {
            let row = Array(x.storage[(r * 6)..<(r * 6 + 6)])
            #expect(y.storage[2 * r] == row.max()!)
            #expect(abs(y.storage[2 * r + 1] - row.reduce(0, +) / 6) < 1e-5)
        }
        let bad = GradientCheck.check(input: x, parameters: [], forward: { pool.forward($0) },
                                      backward: { pool.backward($0) }, samples: x.count)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func batchNormWithTensorflowEpsilon() {
        var random = RandomSource(seed: 108)
        let bn = BatchNorm2d(2, epsilon: 1e-3, momentum: 0.01)
        bn.runningMean.value = Tensor(shape: [2], [0.5, -1])
        bn.runningVar.value = Tensor(shape: [2], [0.002, 3])
        bn.weight.value = Tensor(shape: [2], [1.5, -0.5])
        bn.bias.value = Tensor(shape: [2], [0.25, 1])
        let x = Tensor.normal(shape: [3, 2, 1, 4], std: 1, using: &random)
        let y = bn.forward(x, training: false)
        for i in 0..<x.count {
            let c = (i / 4) % 2
            let expected = (x.storage[i] - bn.runningMean.value.storage[c])
                / (bn.runningVar.value.storage[c] + 1e-3).squareRoot() * bn.weight.value.storage[c] + bn.bias.value.storage[c]
            #expect(abs(y.storage[i] - expected) < 1e-4)
        }
        let bad = GradientCheck.check(input: x, parameters: bn.namedParameters,
                                      forward: { bn.forward($0, training: true) }, backward: { bn.backward($0) })
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // Momentum 0.01: the running mean moves 1 % of the way to the batch mean.
        let before = bn.runningMean.value.storage[0]
        _ = bn.forward(x, training: true)
        var mean: Float = 0
        for b in 0..<3 { for i in 0..<4 { mean += x.storage[(b * 2) * 4 + i] } }
        mean /= 12
        #expect(abs(bn.runningMean.value.storage[0] - (0.99 * before + 0.01 * mean)) < 1e-6)
    }
}
