/// Max pooling over NCHW tensors without padding, output size floor((H − kh) / sh) + 1 by
/// floor((W − kw) / sw) + 1 (as PyTorch's MaxPool2d with ceil_mode false, and TensorFlow's 'valid'
/// max pooling). Ties go to the first maximum in row-major window order; NaN propagates (as in
/// PyTorch, a NaN always takes the window). The backward pass routes each output gradient to its
/// window's maximum. 2×2 stride-2 windows take a vectorized path.
public final class MaxPool2d: Module {
    /// The window (height × width) and the step between windows (down × across).
    public let kernel: (height: Int, width: Int)
    public let strides: (height: Int, width: Int)
    private var inputShape: [Int] = []
    /// Per output element, the flat index of its maximum inside the input plane.
    private var argmax: [Int32] = []

    /// Square windows of `kernelSize`, `stride` apart (default: `kernelSize`) in both directions.
    public convenience init(kernelSize: Int = 2, stride: Int? = nil) {
        self.init(kernel: (kernelSize, kernelSize), stride: (stride ?? kernelSize, stride ?? kernelSize))
    }

    /// Rectangular windows (musicnn's vgg pools 1 band × 4 frames, 2 apart in both directions).
    public init(kernel: (height: Int, width: Int), stride: (height: Int, width: Int)) {
        precondition(kernel.height > 0 && kernel.width > 0 && stride.height > 0 && stride.width > 0,
                     "MaxPool2d(kernel \(kernel.height)×\(kernel.width), stride \(stride.height)×\(stride.width))")
        self.kernel = kernel
        self.strides = stride
    }

    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height - kernel.height) / strides.height + 1, (width - kernel.width) / strides.width + 1)
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] >= kernel.height && x.shape[3] >= kernel.width,
                     "MaxPool2d(\(kernel.height)×\(kernel.width)) got input \(x.shape)")
        let h = x.shape[2], w = x.shape[3]
        precondition(h * w <= Int(Int32.max), "MaxPool2d: plane too large")
        let (oh, ow) = outputSize(height: h, width: w)
        let planes = x.shape[0] * x.shape[1], inArea = h * w, outArea = oh * ow
        let kh = kernel.height, kw = kernel.width, sh = strides.height, sw = strides.width
        var y = SpatialKernels.uninitializedTensor([x.shape[0], x.shape[1], oh, ow])
        let indexCount = training ? y.count : 0
        var index = [Int32](unsafeUninitializedCapacity: indexCount) { _, n in n = indexCount }
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                index.withUnsafeMutableBufferPointer { ib in
                    // An empty array's base address may be the shared empty storage: never write there.
                    let ip = training ? ib.baseAddress : nil
                    SpatialKernels.parallelRanges(planes, grain: max(1, 16384 / max(outArea, 1))) { lo, hi in
                        for p in lo..<hi {
                            let src = xp + p * inArea, dst = yp + p * outArea
                            let idx = ip.map { $0 + p * outArea }
                            for r in 0..<oh {
                                var c = 0
                                if kh == 2 && kw == 2 && sh == 2 && sw == 2 {
                                    c = Self.pool2x2Row(src + 2 * r * w, width: w, count: ow, into: dst + r * ow,
                                                        index: idx.map { $0 + r * ow }, base: Int32(truncatingIfNeeded: 2 * r * w))
                                }
                                while c < ow {
                                    var best = r * sh * w + c * sw
                                    var bestValue = src[best]
                                    for di in 0..<kh {
                                        let rowStart = (r * sh + di) * w + c * sw
                                        for dj in 0..<kw {
                                            let v = src[rowStart + dj]
                                            if v > bestValue || v.isNaN {
                                                bestValue = v
                                                best = rowStart + dj
                                            }
                                        }
                                    }
                                    dst[r * ow + c] = bestValue
                                    idx?[r * ow + c] = Int32(truncatingIfNeeded: best)
                                    c += 1
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

    /// 2×2 stride-2 windows of one output row, 8 at a time: `row` is the window's top input row.
    /// Returns how many outputs it wrote (a multiple of 8); the caller finishes the row.
    @inline(__always)
    private static func pool2x2Row(_ row: UnsafePointer<Float>, width: Int, count: Int, into out: UnsafeMutablePointer<Float>,
                                   index: UnsafeMutablePointer<Int32>?, base: Int32) -> Int {
        typealias V16 = SIMD16<Float>
        typealias V8 = SIMD8<Float>
        typealias I8 = SIMD8<Int32>
        let top = UnsafeRawPointer(row), bottom = UnsafeRawPointer(row + width)
        let lanes = I8(0, 2, 4, 6, 8, 10, 12, 14) &+ base
        let w = Int32(truncatingIfNeeded: width)
        var c = 0
        while c + 8 <= count {
            let a = top.loadUnaligned(fromByteOffset: 8 * c, as: V16.self)
            let b = bottom.loadUnaligned(fromByteOffset: 8 * c, as: V16.self)
            var best: V8 = a.evenHalf
            var pick = I8()
            // In window order (top-left, top-right, bottom-left, bottom-right); a NaN wins.
            @inline(__always) func consider(_ candidate: V8, _ offset: Int32) {
                let take = (candidate .> best) .| (candidate .!= candidate)
                best.replace(with: candidate, where: take)
                pick.replace(with: offset, where: take)
            }
            consider(a.oddHalf, 1)
            consider(b.evenHalf, w)
            consider(b.oddHalf, w + 1)
            UnsafeMutableRawPointer(out + c).storeBytes(of: best, as: V8.self)
            if let index {
                UnsafeMutableRawPointer(index + c).storeBytes(of: pick &+ lanes &+ Int32(truncatingIfNeeded: 2 * c), as: I8.self)
            }
            c += 8
        }
        return c
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4 && argmax.count == dy.count, "MaxPool2d.backward without a training forward")
        var dx = Tensor(shape: inputShape)
        let planes = inputShape[0] * inputShape[1], inArea = inputShape[2] * inputShape[3]
        let outArea = dy.count / max(planes, 1)
        dy.withUnsafePointer { dyp in
            dx.withUnsafeMutablePointer { dxp in
                argmax.withUnsafeBufferPointer { ib in
                    let ip = ib.baseAddress!
                    SpatialKernels.parallelRanges(planes, grain: max(1, 16384 / max(outArea, 1))) { lo, hi in
                        for p in lo..<hi {
                            let g = dyp + p * outArea, d = dxp + p * inArea, idx = ip + p * outArea
                            for i in 0..<outArea { d[Int(idx[i])] += g[i] }
                        }
                    }
                }
            }
        }
        inputShape = []
        argmax = []
        return dx
    }
}

/// The mean over the spatial dimensions: [B, C, H, W] → [B, C].
public final class GlobalAveragePool: Module {
    private var inputShape: [Int] = []

    public init() {}

    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] * x.shape[3] > 0, "GlobalAveragePool got input \(x.shape)")
        let planes = x.shape[0] * x.shape[1], area = x.shape[2] * x.shape[3]
        var y = Tensor(shape: [x.shape[0], x.shape[1]])
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                for p in 0..<planes { yp[p] = SpatialKernels.sum(xp + p * area, area) / Float(area) }
            }
        }
        inputShape = training ? x.shape : []
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(inputShape.count == 4 && dy.count == inputShape[0] * inputShape[1],
                     "GlobalAveragePool.backward without a matching training forward")
        let planes = dy.count, area = inputShape[2] * inputShape[3]
        var dx = SpatialKernels.uninitializedTensor(inputShape)
        dy.withUnsafePointer { dyp in
            dx.withUnsafeMutablePointer { dxp in
                for p in 0..<planes { (dxp + p * area).update(repeating: dyp[p] / Float(area), count: area) }
            }
        }
        inputShape = []
        return dx
    }
}
