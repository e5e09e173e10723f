import Foundation

/// 2-D convolution over NCHW tensors: x is [B, C, H, W], y is [B, O, OH, OW] with
/// OH = (H + top + bottom − kh) / stride + 1 (floor), OW = (W + left + right − kw) / stride + 1.
/// The weight is [O, C, kh, kw] (the PyTorch layout), initialized Kaiming-normal for ReLU
/// (std √(2 / (C·kh·kw))); the optional bias is uniform ±1/√(C·kh·kw) as PyTorch does. Kernels may
/// be rectangular and the zero padding different on each side (TensorFlow's 'same' for an even
/// kernel k pads k/2 − 1 before and k/2 after).
///
/// Each sample is multiplied against its im2col matrix [C·k·k, OH·OW], built in bands of output
/// rows of about 1 MiB so that only a cache-sized piece of one sample's matrix exists per thread
/// (the backward pass rebuilds it rather than keeping it); samples run in parallel over
/// `BLAS.threads`, each GEMM single-threaded. A 1×1 stride-1 convolution without padding
/// multiplies the input directly.
///
/// Results do not depend on `BLAS.threads`: samples are computed independently, and the weight
/// gradient is summed over the samples in batch order whatever the thread count.
public final class Conv2d: Module {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelHeight: Int
    public let kernelWidth: Int
    public let stride: Int
    /// Zero padding before and after each spatial axis.
    public let padTop: Int, padBottom: Int, padLeft: Int, padRight: Int
    private var input = Tensor(shape: [0])

    /// The side of a square kernel.
    public var kernelSize: Int {
        precondition(kernelHeight == kernelWidth, "Conv2d: the kernel \(kernelHeight)×\(kernelWidth) is not square")
        return kernelHeight
    }

    /// The padding of a convolution padded alike on all four sides.
    public var padding: Int {
        precondition(padTop == padBottom && padTop == padLeft && padTop == padRight, "Conv2d: the padding differs by side")
        return padTop
    }

    /// A square k×k kernel, `padding` zeros on every side.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            bias: Bool = true, random: inout RandomSource) {
        self.init(inChannels, outChannels, kernel: (kernelSize, kernelSize),
                  padding: (padding, padding, padding, padding), stride: stride, bias: bias, random: &random)
    }

    /// A kernel of `kernel.height`×`kernel.width` (rows × columns of the input plane), with the
    /// given zeros before and after each axis.
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: (height: Int, width: Int),
                            padding: (top: Int, bottom: Int, left: Int, right: Int) = (0, 0, 0, 0), stride: Int = 1,
                            bias: Bool = true, random: inout RandomSource) {
        precondition(inChannels > 0 && outChannels > 0 && kernel.height > 0 && kernel.width > 0,
                     "Conv2d(\(inChannels)→\(outChannels), kernel \(kernel.height)×\(kernel.width))")
        let fanIn = inChannels * kernel.height * kernel.width
        let weight = Parameter(.normal(shape: [outChannels, inChannels, kernel.height, kernel.width],
                                       std: (2 / Float(fanIn)).squareRoot(), using: &random))
        let bound = 1 / Float(fanIn).squareRoot()
        let bias = bias ? Parameter(.uniform(shape: [outChannels], bound: bound, using: &random), decays: false) : nil
        self.init(inChannels, outChannels, kernel: kernel, padding: padding, stride: stride, weight: weight, bias: bias)
    }

    /// A convolution over given parameters: `weight` holds O·C·kh·kw values in the layout
    /// [O, C, kh, kw] whatever its shape says (a 1-D convolution keeps its weight as [O, C, k]),
    /// `bias` O values.
    public init(_ inChannels: Int, _ outChannels: Int, kernel: (height: Int, width: Int),
                padding: (top: Int, bottom: Int, left: Int, right: Int), stride: Int, weight: Parameter, bias: Parameter?) {
        precondition(inChannels > 0 && outChannels > 0 && kernel.height > 0 && kernel.width > 0 && stride > 0
                     && padding.top >= 0 && padding.bottom >= 0 && padding.left >= 0 && padding.right >= 0,
                     "Conv2d(\(inChannels)→\(outChannels), kernel \(kernel.height)×\(kernel.width), stride \(stride), padding \(padding))")
        precondition(weight.value.count == outChannels * inChannels * kernel.height * kernel.width
                     && (bias?.value.count ?? outChannels) == outChannels,
                     "Conv2d: weight \(weight.value.shape) or bias \(bias?.value.shape ?? []) does not fit")
        self.inChannels = inChannels
        self.outChannels = outChannels
        kernelHeight = kernel.height
        kernelWidth = kernel.width
        self.stride = stride
        (padTop, padBottom, padLeft, padRight) = padding
        self.weight = weight
        self.bias = bias
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// The spatial size of the output for an input of `height`×`width`.
    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + padTop + padBottom - kernelHeight) / stride + 1, (width + padLeft + padRight - kernelWidth) / stride + 1)
    }

    /// True when the input itself is the im2col matrix (1×1, stride 1, no padding).
    private var pointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padTop + padBottom + padLeft + padRight == 0
    }

    /// Rows of the im2col matrix: C·kh·kw.
    private var kernelVolume: Int { inChannels * kernelHeight * kernelWidth }

    private struct Geometry {
        let batch: Int, channels: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
        var inPlane: Int { channels * height * width }
        var outArea: Int { outHeight * outWidth }
    }

    private func geometry(_ shape: [Int]) -> Geometry {
        precondition(shape.count == 4 && shape[1] == inChannels,
                     "Conv2d(\(inChannels)→\(outChannels)) got input \(shape)")
        let h = shape[2], w = shape[3]
        precondition(h + padTop + padBottom >= kernelHeight && w + padLeft + padRight >= kernelWidth,
                     "Conv2d: input \(shape) smaller than the \(kernelHeight)×\(kernelWidth) kernel")
        let out = outputSize(height: h, width: w)
        return Geometry(batch: shape[0], channels: inChannels, height: h, width: w,
                        outHeight: out.height, outWidth: out.width)
    }

    /// Output rows per im2col band: a band's matrix [C·k·k, rows·OW] stays within about 1 MiB (an
    /// L2 cache), so it is still in cache when the GEMM reads it and when col2im reads its gradient.
    /// (Measured on the default audio tower: 1 MiB beat ¼, ½, 2 and 4 MiB and whole-sample matrices.)
    private func bandRows(_ g: Geometry) -> Int {
        let bandFloats = 1 << 18
        return max(1, min(g.outHeight, bandFloats / max(1, kernelVolume * g.outWidth)))
    }

    private func im2col(_ x: UnsafePointer<Float>, _ g: Geometry, rows: Range<Int>, _ col: UnsafeMutablePointer<Float>) {
        SpatialKernels.im2col(x, channels: g.channels, height: g.height, width: g.width, kernelHeight: kernelHeight,
                              kernelWidth: kernelWidth, stride: stride, padTop: padTop, padLeft: padLeft,
                              outHeight: g.outHeight, outWidth: g.outWidth, rows: rows, into: col)
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        let g = geometry(x.shape)
        let o = outChannels, area = g.outArea, kdim = kernelVolume
        var y = SpatialKernels.uninitializedTensor([g.batch, o, g.outHeight, g.outWidth])
        let workers = min(BLAS.threads, g.batch)
        let band = bandRows(g)
        let colSize = pointwise ? 0 : kdim * band * g.outWidth
        let buffer = ConvScratchPool.shared.acquire(workers * colSize)
        defer { ConvScratchPool.shared.release(buffer) }
        let scratch = buffer.pointer
        let perWorker = (g.batch + workers - 1) / max(workers, 1)
        x.withUnsafePointer { xp in
            weight.value.withUnsafePointer { wp in
                y.withUnsafeMutablePointer { yp in
                    let bp = bias?.value.storage
                    Parallel.forEach(workers) { w in
                        let col = scratch + w * colSize
                        let first = min(g.batch, w * perWorker), end = min(g.batch, first + perWorker)
                        for b in first..<end {
                            let xb = xp + b * g.inPlane, yb = yp + b * o * area
                            if let bp {
                                for c in 0..<o {
                                    let v = bp[c], row = yb + c * area
                                    for i in 0..<area { row[i] = v }
                                }
                            }
                            if pointwise {
                                BLAS.gemm(m: o, n: area, k: kdim, a: wp, lda: kdim, b: xb, ldb: area,
                                          beta: bp == nil ? 0 : 1, c: yb, ldc: area)
                                continue
                            }
                            // y_b[:, band] = W · im2col(x_b)[:, band]
                            for r0 in Swift.stride(from: 0, to: g.outHeight, by: band) {
                                let r1 = min(g.outHeight, r0 + band), cols = (r1 - r0) * g.outWidth
                                im2col(xb, g, rows: r0..<r1, col)
                                BLAS.gemm(m: o, n: cols, k: kdim, a: wp, lda: kdim, b: col, ldb: cols,
                                          beta: bp == nil ? 0 : 1, c: yb + r0 * g.outWidth, ldc: area)
                            }
                        }
                    }
                }
            }
        }
        input = training ? x : Tensor(shape: [0])
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        backward(dy, inputGradient: true)!
    }

    /// Adds the parameter gradients; returns the input gradient only when `inputGradient` is true
    /// (the first layer of a network does not need it, and skipping it saves a GEMM and col2im).
    public func backward(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
        precondition(input.count > 0, "Conv2d.backward without a training forward")
        let g = geometry(input.shape)
        let o = outChannels, area = g.outArea, kdim = kernelVolume
        precondition(dy.shape == [g.batch, o, g.outHeight, g.outWidth],
                     "Conv2d.backward: gradient \(dy.shape) for input \(input.shape)")
        let workers = min(BLAS.threads, g.batch)
        let band = bandRows(g)
        let colSize = pointwise ? 0 : kdim * band * g.outWidth
        let dcolSize = inputGradient ? colSize : 0
        let wSize = o * kdim
        let perSlot = colSize + dcolSize + wSize
        let buffer = ConvScratchPool.shared.acquire(workers * perSlot)
        defer { ConvScratchPool.shared.release(buffer) }
        let scratch = buffer.pointer
        // Every sample's input gradient is overwritten (by the GEMM, or zeroed before col2im).
        var dx = SpatialKernels.uninitializedTensor(inputGradient ? input.shape : [1])

        input.withUnsafePointer { xp in
            dy.withUnsafePointer { dyp in
                weight.value.withUnsafePointer { wp in
                    weight.grad.withUnsafeMutablePointer { gw in
                        dx.withUnsafeMutablePointer { dxp in
                            // Waves of `workers` samples: each computes its own dW term, which are then
                            // added to the gradient in sample order, so the sum is the same for any
                            // thread count.
                            var start = 0
                            while start < g.batch {
                                let n = min(workers, g.batch - start)
                                Parallel.forEach(n) { j in
                                    let b = start + j
                                    let slot = scratch + j * perSlot
                                    let col = slot, dcol = slot + colSize, partial = slot + colSize + dcolSize
                                    let xb = xp + b * g.inPlane, dyb = dyp + b * o * area
                                    let dxb = dxp + b * g.inPlane
                                    if pointwise {
                                        // dW_b = dy_b · x_bᵀ ; dx_b = Wᵀ · dy_b
                                        BLAS.gemm(transB: true, m: o, n: kdim, k: area, a: dyb, lda: area,
                                                  b: xb, ldb: area, beta: 0, c: partial, ldc: kdim)
                                        if inputGradient {
                                            BLAS.gemm(transA: true, m: kdim, n: area, k: o, a: wp, lda: kdim,
                                                      b: dyb, ldb: area, beta: 0, c: dxb, ldc: area)
                                        }
                                        return
                                    }
                                    if inputGradient { SpatialKernels.zero(dxb, g.inPlane) }
                                    for r0 in Swift.stride(from: 0, to: g.outHeight, by: band) {
                                        let r1 = min(g.outHeight, r0 + band), cols = (r1 - r0) * g.outWidth
                                        let dyBand = dyb + r0 * g.outWidth
                                        im2col(xb, g, rows: r0..<r1, col)
                                        // dW_b += dy_b[:, band] · col_bandᵀ  ([O, cols] · [cols, C·k·k])
                                        BLAS.gemm(transB: true, m: o, n: kdim, k: cols, a: dyBand, lda: area,
                                                  b: col, ldb: cols, beta: r0 == 0 ? 0 : 1, c: partial, ldc: kdim)
                                        guard inputGradient else { continue }
                                        // dcol = Wᵀ · dy_b[:, band], scattered back onto the input grid.
                                        BLAS.gemm(transA: true, m: kdim, n: cols, k: o, a: wp, lda: kdim,
                                                  b: dyBand, ldb: area, beta: 0, c: dcol, ldc: cols)
                                        SpatialKernels.col2im(UnsafePointer(dcol), channels: g.channels,
                                                              height: g.height, width: g.width,
                                                              kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                                                              stride: stride, padTop: padTop, padLeft: padLeft,
                                                              outHeight: g.outHeight, outWidth: g.outWidth,
                                                              rows: r0..<r1, into: dxb)
                                    }
                                }
                                SpatialKernels.parallelRanges(wSize, grain: 1 << 14) { lo, hi in
                                    for j in 0..<n {
                                        let partial = UnsafePointer(scratch + j * perSlot + colSize + dcolSize)
                                        for i in lo..<hi { gw[i] += partial[i] }
                                    }
                                }
                                start += n
                            }
                        }
                    }
                }
            }
        }
        if let bias {
            // db[o] += Σ_b Σ_hw dy[b, o, hw], in batch order for each channel.
            bias.grad.withUnsafeMutablePointer { gb in
                dy.withUnsafePointer { dyp in
                    SpatialKernels.parallelRanges(o, grain: max(1, (1 << 15) / max(1, g.batch * area))) { lo, hi in
                        for c in lo..<hi {
                            var s = 0.0
                            for b in 0..<g.batch { s += Double(SpatialKernels.sum(dyp + (b * o + c) * area, area)) }
                            gb[c] += Float(s)
                        }
                    }
                }
            }
        }
        input = Tensor(shape: [0])  // one backward per forward; frees the activation early
        return inputGradient ? dx : nil
    }
}

/// Reusable scratch memory for the per-thread im2col and gradient buffers. Large allocations go
/// back to the system when freed, so fresh ones would fault their pages in again on every call;
/// the pool keeps released buffers (as many as were ever in use at once) for the next caller.
final class ConvScratchPool: @unchecked Sendable {
    struct Buffer {
        let pointer: UnsafeMutablePointer<Float>
        let capacity: Int
    }

    static let shared = ConvScratchPool()
    private let lock = NSLock()
    private var free: [Buffer] = []

    /// A buffer of at least `count` floats (uninitialized), for the caller alone until `release`.
    func acquire(_ count: Int) -> Buffer {
        let count = max(count, 1)
        lock.lock()
        defer { lock.unlock() }
        // The smallest free buffer that fits; otherwise replace the largest free one (which is too small).
        if let i = free.indices.filter({ free[$0].capacity >= count }).min(by: { free[$0].capacity < free[$1].capacity }) {
            return free.remove(at: i)
        }
        if let i = free.indices.max(by: { free[$0].capacity < free[$1].capacity }) {
            free.remove(at: i).pointer.deallocate()
        }
        return Buffer(pointer: .allocate(capacity: count), capacity: count)
    }

    func release(_ buffer: Buffer) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}

/// Loops shared by the convolution, normalization and pooling layers: im2col/col2im, vectorized
/// reductions, and a row-range splitter over `BLAS.threads`.
enum SpatialKernels {
    /// A tensor whose every element the caller overwrites (skips zero-filling large activations).
    static func uninitializedTensor(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count })
    }

    /// ⌈a / b⌉ for b > 0 and any sign of a.
    @inline(__always)
    static func ceilDiv(_ a: Int, _ b: Int) -> Int { a > 0 ? (a + b - 1) / b : -((-a) / b) }

    /// The output columns [lo, hi) whose input column ow·stride − padding + kj lies inside [0, width).
    @inline(__always)
    static func validColumns(width: Int, outWidth: Int, kj: Int, stride: Int, padding: Int) -> (Int, Int) {
        let lo = min(outWidth, max(0, ceilDiv(padding - kj, stride)))
        let hi = max(lo, min(outWidth, ceilDiv(width + padding - kj, stride)))
        return (lo, hi)
    }

    /// Sets n floats to zero (memset: `update(repeating:)` can compile to a scalar loop).
    @inline(__always)
    static func zero(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
        if n > 0 { memset(p, 0, n * MemoryLayout<Float>.stride) }
    }

    /// The im2col matrix of output rows `rows` (a band): row ((c·kh + ki)·kw + kj), column
    /// ((oh − rows.lowerBound)·OW + ow) gets x[c, oh·s − pt + ki, ow·s − pl + kj] (zero outside the
    /// input). The padding after each axis only shows in OH and OW.
    static func im2col(_ x: UnsafePointer<Float>, channels: Int, height: Int, width: Int, kernelHeight kh: Int,
                       kernelWidth kw: Int, stride s: Int, padTop pt: Int, padLeft pl: Int, outHeight: Int,
                       outWidth: Int, rows: Range<Int>, into col: UnsafeMutablePointer<Float>) {
        let bandArea = rows.count * outWidth
        // A stride-1 "same" convolution: each row of `col` is the plane shifted by a constant, so
        // one copy per row, then the wrapped-around border columns are zeroed.
        let samePlane = s == 1 && outWidth == width
        for c in 0..<channels {
            let plane = x + c * height * width
            for ki in 0..<kh {
                // Output rows of the band whose input row oh·s − pt + ki lies inside the plane.
                let r0 = min(rows.upperBound, max(rows.lowerBound, ceilDiv(pt - ki, s)))
                let r1 = max(r0, min(rows.upperBound, ceilDiv(height + pt - ki, s)))
                for kj in 0..<kw {
                    // Output row oh of the band starts at row + (oh − rows.lowerBound)·OW.
                    let row = col + ((c * kh + ki) * kw + kj) * bandArea
                    let (lo, hi) = validColumns(width: width, outWidth: outWidth, kj: kj, stride: s, padding: pl)
                    zero(row, (r0 - rows.lowerBound) * outWidth)
                    zero(row + (r1 - rows.lowerBound) * outWidth, (rows.upperBound - r1) * outWidth)
                    guard r1 > r0 else { continue }
                    if samePlane {
                        // Output (oh, ow) reads plane[oh·W + ow + shift]: one copy over the valid rows,
                        // then the border columns (which wrapped around) are zeroed.
                        let shift = (ki - pt) * width + (kj - pl)
                        let first = r0 * width + lo, last = (r1 - 1) * width + hi
                        if last > first {
                            (row + (first - rows.lowerBound * outWidth)).update(from: plane + first + shift,
                                                                                count: last - first)
                        }
                        if lo > 0 || hi < outWidth {
                            for oh in r0..<r1 {
                                let dst = row + (oh - rows.lowerBound) * outWidth
                                zero(dst, lo)
                                zero(dst + hi, outWidth - hi)
                            }
                        }
                        continue
                    }
                    for oh in r0..<r1 {
                        let ih = oh * s - pt + ki
                        let dst = row + (oh - rows.lowerBound) * outWidth
                        zero(dst, lo)
                        zero(dst + hi, outWidth - hi)
                        guard hi > lo else { continue }
                        let src = plane + ih * width + (lo * s - pl + kj)
                        let d = dst + lo, n = hi - lo
                        if s == 1 {
                            d.update(from: src, count: n)
                        } else if s == 2 {
                            // Even lanes of 8 consecutive inputs, while the load stays before the last
                            // input used (src[2(n − 1)]).
                            var i = 0
                            let raw = UnsafeRawPointer(src)
                            while i + 4 < n {
                                let v = raw.loadUnaligned(fromByteOffset: 8 * i, as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(d + i).storeBytes(of: v.evenHalf, as: SIMD4<Float>.self)
                                i += 4
                            }
                            while i < n { d[i] = src[2 * i]; i += 1 }
                        } else {
                            for i in 0..<n { d[i] = src[i * s] }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col` for the band `rows`: adds each `dcol` entry onto the input position
    /// it was copied from. Accumulates into dx (zero it before the first band).
    static func col2im(_ dcol: UnsafePointer<Float>, channels: Int, height: Int, width: Int, kernelHeight kh: Int,
                       kernelWidth kw: Int, stride s: Int, padTop pt: Int, padLeft pl: Int, outHeight: Int,
                       outWidth: Int, rows: Range<Int>, into dx: UnsafeMutablePointer<Float>) {
        let bandArea = rows.count * outWidth
        for c in 0..<channels {
            let plane = dx + c * height * width
            for ki in 0..<kh {
                let r0 = min(rows.upperBound, max(rows.lowerBound, ceilDiv(pt - ki, s)))
                let r1 = max(r0, min(rows.upperBound, ceilDiv(height + pt - ki, s)))
                guard r1 > r0 else { continue }
                for kj in 0..<kw {
                    let row = dcol + ((c * kh + ki) * kw + kj) * bandArea
                    let (lo, hi) = validColumns(width: width, outWidth: outWidth, kj: kj, stride: s, padding: pl)
                    guard hi > lo else { continue }
                    let n = hi - lo
                    for oh in r0..<r1 {
                        let ih = oh * s - pt + ki
                        let src = row + (oh - rows.lowerBound) * outWidth + lo
                        let d = plane + ih * width + (lo * s - pl + kj)
                        if s == 1 {
                            for i in 0..<n { d[i] += src[i] }
                        } else {
                            for i in 0..<n { d[i * s] += src[i] }
                        }
                    }
                }
            }
        }
    }

    /// Σ p[0..<n] in Float, in a fixed order (16 lanes, then the tail).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        let raw = UnsafeRawPointer(p)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            a0 += raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            a1 += raw.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
            i &+= 16
        }
        var s = (a0 + a1).sum()
        while i < n { s += p[i]; i &+= 1 }
        return s
    }

    /// Σ (p[i] − k) and Σ (p[i] − k)² in Float, in a fixed order.
    @inline(__always)
    static func shiftedMoments(_ p: UnsafePointer<Float>, _ n: Int, shift k: Float) -> (sum: Float, sumOfSquares: Float) {
        let raw = UnsafeRawPointer(p)
        let kv = SIMD8<Float>(repeating: k)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), q0 = SIMD8<Float>(), q1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let d0 = raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self) - kv
            let d1 = raw.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self) - kv
            s0 += d0
            s1 += d1
            q0 += d0 * d0
            q1 += d1 * d1
            i &+= 16
        }
        var s = (s0 + s1).sum(), q = (q0 + q1).sum()
        while i < n { let d = p[i] - k; s += d; q += d * d; i &+= 1 }
        return (s, q)
    }

    /// Σ g[i] and Σ g[i]·(x[i] − m) in Float, in a fixed order.
    @inline(__always)
    static func centeredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, mean m: Float) -> (sum: Float, dot: Float) {
        let rg = UnsafeRawPointer(g), rx = UnsafeRawPointer(x)
        let mv = SIMD8<Float>(repeating: m)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), d0 = SIMD8<Float>(), d1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            let g0 = rg.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            let g1 = rg.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
            s0 += g0
            s1 += g1
            d0 += g0 * (rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self) - mv)
            d1 += g1 * (rx.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self) - mv)
            i &+= 16
        }
        var s = (s0 + s1).sum(), d = (d0 + d1).sum()
        while i < n { s += g[i]; d += g[i] * (x[i] - m); i &+= 1 }
        return (s, d)
    }

    /// Splits 0..<n into contiguous ranges of at least `grain` items over up to `BLAS.threads`
    /// threads and runs `body(lo, hi)` on each. Each item must be computed independently of the
    /// split, so results do not depend on the thread count.
    static func parallelRanges(_ n: Int, grain: Int, _ body: (Int, Int) -> Void) {
        guard n > 0 else { return }
        let parts = max(1, min(BLAS.threads, n / max(1, grain)))
        if parts == 1 { body(0, n); return }
        let per = (n + parts - 1) / parts
        Parallel.forEach(parts) { t in
            let lo = t * per, hi = min(n, lo + per)
            if lo < hi { body(lo, hi) }
        }
    }
}
