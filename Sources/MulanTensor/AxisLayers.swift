/// 1-D convolution over [B, C, T] tensors: y is [B, O, T'] with T' = T + before + after − k + 1
/// (stride 1). The weight is [O, C, k] (PyTorch's Conv1d layout), the optional bias [O]; it runs as
/// a `Conv2d` with a 1×k kernel over a plane of height 1, sharing these parameters.
public final class Conv1d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    private let conv: Conv2d

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, padding: (before: Int, after: Int) = (0, 0),
                bias: Bool = true, random: inout RandomSource) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0, "Conv1d(\(inChannels)→\(outChannels), k \(kernelSize))")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        let fanIn = inChannels * kernelSize
        weight = Parameter(.normal(shape: [outChannels, inChannels, kernelSize], std: (2 / Float(fanIn)).squareRoot(),
                                   using: &random))
        let bound = 1 / Float(fanIn).squareRoot()
        self.bias = bias ? Parameter(.uniform(shape: [outChannels], bound: bound, using: &random), decays: false) : nil
        conv = Conv2d(inChannels, outChannels, kernel: (1, kernelSize), padding: (0, 0, padding.before, padding.after),
                      stride: 1, weight: weight, bias: self.bias)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.rank == 3 && x.shape[1] == inChannels, "Conv1d(\(inChannels)→\(outChannels)) got input \(x.shape)")
        let y = conv.forward(x.reshaped([x.shape[0], x.shape[1], 1, x.shape[2]]), training: training)
        return y.reshaped([y.shape[0], y.shape[1], y.shape[3]])
    }

    public func backward(_ dy: Tensor) -> Tensor {
        backward(dy, inputGradient: true)!
    }

    /// Adds the parameter gradients; returns the input gradient only when `inputGradient` is true.
    public func backward(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
        precondition(dy.rank == 3, "Conv1d.backward: gradient \(dy.shape)")
        guard let dx = conv.backward(dy.reshaped([dy.shape[0], dy.shape[1], 1, dy.shape[2]]), inputGradient: inputGradient) else {
            return nil
        }
        return dx.reshaped([dx.shape[0], dx.shape[1], dx.shape[3]])
    }
}

/// The maximum over the height (the third axis) of NCHW tensors: [B, C, H, W] → [B, C, W]
/// (TensorFlow's max_pooling2d over a whole axis, squeezed). Ties go to the first row; NaN
/// propagates. The backward pass routes each gradient to its column's maximum.
public final class MaxOverHeight: Module {
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []

    public init() {}

    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] > 0 && x.shape[2] <= Int(Int32.max), "MaxOverHeight got input \(x.shape)")
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        var y = SpatialKernels.uninitializedTensor([x.shape[0], x.shape[1], w])
        var index = [Int32](repeating: 0, count: training ? y.count : 0)
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                index.withUnsafeMutableBufferPointer { ib in
                    let ip = training ? ib.baseAddress : nil
                    SpatialKernels.parallelRanges(planes, grain: max(1, 16384 / max(h * w, 1))) { lo, hi in
                        for p in lo..<hi {
                            let src = xp + p * h * w, dst = yp + p * w
                            dst.update(from: src, count: w)
                            if let idx = ip.map({ $0 + p * w }) {
                                for j in 0..<w { idx[j] = 0 }
                                for r in 1..<max(h, 1) {
                                    let row = src + r * w
                                    for j in 0..<w where row[j] > dst[j] || (row[j].isNaN && !dst[j].isNaN) {
                                        dst[j] = row[j]
                                        idx[j] = Int32(truncatingIfNeeded: r)
                                    }
                                }
                            } else {
                                // The same maximum without the argmax, as selects the loop can vectorize.
                                for r in 1..<max(h, 1) {
                                    let row = src + r * w
                                    for j in 0..<w {
                                        let v = row[j], m = dst[j]
                                        dst[j] = v > m || (v != v && m == m) ? v : m
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        inputShape = training ? x.shape : []
        argmax = index
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4 && argmax.count == dy.count, "MaxOverHeight.backward without a training forward")
        var dx = Tensor(shape: inputShape)
        let planes = inputShape[0] * inputShape[1], h = inputShape[2], w = inputShape[3]
        dy.withUnsafePointer { gp in
            dx.withUnsafeMutablePointer { dp in
                argmax.withUnsafeBufferPointer { ib in
                    for p in 0..<planes {
                        for j in 0..<w { dp[(p * h + Int(ib[p * w + j])) * w + j] = gp[p * w + j] }
                    }
                }
            }
        }
        inputShape = []
        argmax = []
        return dx
    }
}

/// Max and mean over the last axis: [B, C, T] → [B, 2C], interleaved per channel (2c: the max of
/// channel c, 2c + 1: its mean), the order of TensorFlow's `flatten(concat([max, mean], axis=2))`
/// of [B, C, 1] each. The max's gradient goes to the first maximum; the mean's spreads evenly.
public final class MaxMeanOverTime: Module {
    private var inputShape: [Int] = []
    private var argmax: [Int32] = []

    public init() {}

    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] > 0 && x.shape[2] <= Int(Int32.max), "MaxMeanOverTime got input \(x.shape)")
        let rows = x.shape[0] * x.shape[1], t = x.shape[2]
        var y = Tensor(shape: [x.shape[0], 2 * x.shape[1]])
        var index = [Int32](repeating: 0, count: rows)
        x.withUnsafePointer { xp in
            for r in 0..<rows {
                let src = xp + r * t
                var best = src[0], at = 0
                for i in 1..<t where src[i] > best || (src[i].isNaN && !best.isNaN) {
                    best = src[i]
                    at = i
                }
                var sum = 0.0
                for i in 0..<t { sum += Double(src[i]) }
                y.storage[2 * r] = best
                y.storage[2 * r + 1] = Float(sum / Double(t))
                index[r] = Int32(truncatingIfNeeded: at)
            }
        }
        inputShape = training ? x.shape : []
        argmax = training ? index : []
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 3 && dy.count == 2 * argmax.count, "MaxMeanOverTime.backward without a training forward")
        let rows = argmax.count, t = inputShape[2]
        var dx = Tensor(shape: inputShape)
        for r in 0..<rows {
            let mean = dy.storage[2 * r + 1] / Float(t)
            for i in 0..<t { dx.storage[r * t + i] = mean }
            dx.storage[r * t + Int(argmax[r])] += dy.storage[2 * r]
        }
        inputShape = []
        argmax = []
        return dx
    }
}
