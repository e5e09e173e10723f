import MulanTensor

/// The audio tower's architecture.
public enum AudioTowerKind: String, Codable, Sendable, Equatable, CaseIterable {
    /// The compact ResNet (`AudioTower`), shaped by `widths` and `blocksPerStage`.
    case resnet
    /// musicnn (`MusicnnTower`) on musicnn's fixed front end (`LogMelConfig.musicnn`).
    case musicnn
    /// musicnn's VGG (`VggTower`) on the same front end.
    case vgg
    /// ResNet-50's layout (`AudioTower` with `Bottleneck` blocks in stages of 3, 4, 6, 3; `widths`
    /// are the stages' output widths, ResNet-50's 256…2048 by default).
    case resnet50
    /// An Audio Spectrogram Transformer (`ASTTower`): overlapping 16×16 log-mel patches, a
    /// Transformer encoder, [CLS] pooling; shaped by `ast`.
    case ast

    /// The kinds that start from musicnn's pretrained weights on musicnn's fixed front end.
    public var isPretrainedMusicnn: Bool { self == .musicnn || self == .vgg }
}

/// The AST tower's encoder (`AudioTowerConfig.ast`). The default is CPU-sized; the paper's AST (and
/// AST-Base) is width 768, 12 layers, 12 heads, feed-forward 3072.
public struct ASTConfig: Codable, Sendable, Equatable {
    public var width = 128
    public var layers = 4
    public var heads = 4
    public var feedForward = 512
    /// Patch side and stride in both axes (the AST paper's 16 and 10): fixed.
    public static let patch = 16
    public static let stride = 10

    public init(width: Int = 128, layers: Int = 4, heads: Int = 4, feedForward: Int = 512) {
        self.width = width
        self.layers = layers
        self.heads = heads
        self.feedForward = feedForward
    }
}

/// The audio tower's shape. The defaults are the benchmark model (a ResNet of four stages on
/// 128-band log-mel spectrograms, 128-d embeddings). Decoding fills missing keys with the defaults
/// (a missing `kind` is "resnet", so configurations from before it load unchanged); `kind` is
/// written only when it is not "resnet".
public struct AudioTowerConfig: Codable, Sendable, Equatable {
    public var kind = AudioTowerKind.resnet
    public var melBands = 128
    /// Channels of each stage; the stem outputs widths[0].
    public var widths: [Int] = [32, 64, 128, 256]
    public var blocksPerStage = 1
    public var embeddingDim = 128
    /// The encoder of an `ast` tower (nil for every other kind; written only then).
    public var ast: ASTConfig?

    /// ResNet-50's stage output widths and depths (`resnet50`).
    public static let resnet50Widths = [256, 512, 1024, 2048]
    public static let resnet50Depths = [3, 4, 6, 3]

    public init(melBands: Int = 128, widths: [Int] = [32, 64, 128, 256], blocksPerStage: Int = 1,
                embeddingDim: Int = 128) {
        self.melBands = melBands
        self.widths = widths
        self.blocksPerStage = blocksPerStage
        self.embeddingDim = embeddingDim
    }

    private enum CodingKeys: String, CodingKey { case kind, melBands, widths, blocksPerStage, embeddingDim, ast }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if kind != .resnet { try c.encode(kind, forKey: .kind) }
        try c.encode(melBands, forKey: .melBands)
        try c.encode(widths, forKey: .widths)
        try c.encode(blocksPerStage, forKey: .blocksPerStage)
        try c.encode(embeddingDim, forKey: .embeddingDim)
        try c.encodeIfPresent(ast, forKey: .ast)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AudioTowerConfig()
        kind = try c.decodeIfPresent(AudioTowerKind.self, forKey: .kind) ?? .resnet
        melBands = try c.decodeIfPresent(Int.self, forKey: .melBands) ?? d.melBands
        widths = try c.decodeIfPresent([Int].self, forKey: .widths) ?? d.widths
        blocksPerStage = try c.decodeIfPresent(Int.self, forKey: .blocksPerStage) ?? d.blocksPerStage
        embeddingDim = try c.decodeIfPresent(Int.self, forKey: .embeddingDim) ?? d.embeddingDim
        ast = try c.decodeIfPresent(ASTConfig.self, forKey: .ast)
    }
}

/// A compact ResNet over log-mel spectrograms, named as torchvision's ResNet so a PyTorch twin
/// can load the same weights:
///
///     [B, M, T] → [B, 1, M, T]
///     conv1 3×3 stride 2 pad 1 (1→w0, no bias) → bn1 → ReLU → MaxPool 2×2
///     layer{s+1}: blocksPerStage BasicBlocks of width w_s; the first block of a stage s > 0 has
///                 stride 2 and a 1×1 stride-2 projection shortcut (downsample.0 conv, downsample.1 BN)
///     global average pool → fc (w_last → embeddingDim, with bias) → L2 normalization
///
/// With `kind` resnet50 the stages are ResNet-50's: 3, 4, 6 and 3 `Bottleneck` blocks whose outputs
/// are `widths` (256, 512, 1024, 2048), the stem outputs widths[0] / 4 (64), and the first block of a
/// stage s > 0 has stride 2 (on its 3×3 convolution, as torchvision's ResNet-50 v1.5). The stem is the
/// compact tower's (3×3 stride 2, then a 2×2 max pool), not torchvision's 7×7 convolution and padded
/// 3×3 max pool: a log-mel has one channel and far fewer rows than an image.
public final class AudioTower: Module {
    public let config: AudioTowerConfig
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let maxPool = MaxPool2d(kernelSize: 2)
    /// stages[s][b] is `layer{s+1}.{b}`: `BasicBlock`s, or `Bottleneck`s for resnet50.
    public let stages: [[any ResidualBlock]]
    public let pool = GlobalAveragePool()
    public let fc: Linear
    private let relu = ResidualReLU()
    private let normalize = L2Normalize()

    public init(_ config: AudioTowerConfig, random: inout RandomSource) {
        precondition(config.melBands > 0 && !config.widths.isEmpty && config.widths.allSatisfy { $0 > 0 }
                     && config.blocksPerStage > 0 && config.embeddingDim > 0, "invalid AudioTowerConfig \(config)")
        self.config = config
        let bottleneck = config.kind == .resnet50
        precondition(!bottleneck || (config.widths.count == AudioTowerConfig.resnet50Depths.count
                                     && config.widths.allSatisfy { $0 % Bottleneck.expansion == 0 }),
                     "resnet50 needs 4 stage widths divisible by 4, got \(config.widths)")
        let stem = bottleneck ? config.widths[0] / Bottleneck.expansion : config.widths[0]
        conv1 = Conv2d(1, stem, kernelSize: 3, stride: 2, padding: 1, bias: false, random: &random)
        bn1 = BatchNorm2d(stem)
        var stages: [[any ResidualBlock]] = []
        var channels = stem
        for (s, width) in config.widths.enumerated() {
            var blocks: [any ResidualBlock] = []
            let depth = bottleneck ? AudioTowerConfig.resnet50Depths[s] : config.blocksPerStage
            for b in 0..<depth {
                let stride = (s > 0 && b == 0) ? 2 : 1
                if bottleneck {
                    blocks.append(Bottleneck(channels, planes: width / Bottleneck.expansion, stride: stride, random: &random))
                } else {
                    blocks.append(BasicBlock(channels, width, stride: stride, random: &random))
                }
                channels = width
            }
            stages.append(blocks)
        }
        self.stages = stages
        fc = Linear(channels, config.embeddingDim, random: &random)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("conv1", conv1) + nest("bn1", bn1)
        for (s, blocks) in stages.enumerated() {
            for (b, block) in blocks.enumerated() { all += nest("layer\(s + 1).\(b)", block) }
        }
        return all + nest("fc", fc)
    }

    /// [B, melBands, frames] log-mel → [B, embeddingDim] rows of unit L2 norm.
    public func forward(_ logMel: Tensor, training: Bool) -> Tensor {
        precondition(logMel.rank == 3 && logMel.shape[1] == config.melBands,
                     "AudioTower(\(config.melBands) mel bands) got input \(logMel.shape)")
        let x = logMel.reshaped([logMel.shape[0], 1, logMel.shape[1], logMel.shape[2]])
        var h = conv1.forward(x, training: training)
        h = bn1.forward(h, training: training)
        h = relu.forward(h, training: training)
        h = maxPool.forward(h, training: training)
        for blocks in stages { for block in blocks { h = block.forward(h, training: training) } }
        h = pool.forward(h, training: training)
        h = fc.forward(h, training: training)
        return normalize.forward(h, training: training)
    }

    /// Adds every parameter gradient for the gradient of the loss with respect to the embeddings
    /// of the last training forward. Returns the gradient with respect to the log-mel input only
    /// when `inputGradient` is true (otherwise the stem skips computing it).
    @discardableResult
    public func backward(_ dEmbedding: Tensor, inputGradient: Bool = false) -> Tensor? {
        var d = normalize.backward(dEmbedding)
        d = fc.backward(d)
        d = pool.backward(d)
        for blocks in stages.reversed() { for block in blocks.reversed() { d = block.backward(d) } }
        d = maxPool.backward(d)
        d = relu.backward(d)
        d = bn1.backward(d)
        guard let dx = conv1.backward(d, inputGradient: inputGradient) else { return nil }
        return dx.reshaped([dx.shape[0], dx.shape[2], dx.shape[3]])
    }
}

/// A residual block of `AudioTower`'s stages.
public protocol ResidualBlock: Module {
    func forward(_ x: Tensor, training: Bool) -> Tensor
    /// The input gradient of the last training forward (parameter gradients accumulate).
    func backward(_ dy: Tensor) -> Tensor
}

/// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), with 3×3 convs
/// (the first with `stride`) and, when the stride or the width changes, a projection shortcut
/// `downsample` = 1×1 conv with `stride` → BatchNorm2d; otherwise the identity.
public final class BasicBlock: ResidualBlock {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let downsample: (conv: Conv2d, norm: BatchNorm2d)?
    private let relu1 = ResidualReLU()
    private let relu2 = ResidualReLU()

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int = 1, random: inout RandomSource) {
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, stride: stride, padding: 1, bias: false, random: &random)
        bn1 = BatchNorm2d(outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, stride: 1, padding: 1, bias: false, random: &random)
        bn2 = BatchNorm2d(outChannels)
        if stride != 1 || inChannels != outChannels {
            downsample = (Conv2d(inChannels, outChannels, kernelSize: 1, stride: stride, bias: false, random: &random),
                          BatchNorm2d(outChannels))
        } else {
            downsample = nil
        }
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("conv1", conv1) + nest("bn1", bn1) + nest("conv2", conv2) + nest("bn2", bn2)
        if let downsample { all += nest("downsample.0", downsample.conv) + nest("downsample.1", downsample.norm) }
        return all
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        var h = conv1.forward(x, training: training)
        h = bn1.forward(h, training: training)
        h = relu1.forward(h, training: training)
        h = conv2.forward(h, training: training)
        h = bn2.forward(h, training: training)
        let shortcut = downsample.map { $0.norm.forward($0.conv.forward(x, training: training), training: training) } ?? x
        return relu2.forward(h, adding: shortcut, training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let d = relu2.backward(dy)
        var main = bn2.backward(d)
        main = conv2.backward(main)
        main = relu1.backward(main)
        main = bn1.backward(main)
        main = conv1.backward(main)
        if let downsample {
            main.add(downsample.conv.backward(downsample.norm.backward(d)))
        } else {
            main.add(d)
        }
        return main
    }
}

/// torchvision's Bottleneck (ResNet-50 v1.5): relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) +
/// shortcut(x)) with conv1 1×1 (in → planes), conv2 3×3 with `stride` (planes → planes), conv3 1×1
/// (planes → 4·planes), no biases; the shortcut is the identity, or `downsample` (1×1 conv with
/// `stride` → BatchNorm2d) when the stride or the width changes.
public final class Bottleneck: ResidualBlock {
    public static let expansion = 4
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let conv3: Conv2d
    public let bn3: BatchNorm2d
    public let downsample: (conv: Conv2d, norm: BatchNorm2d)?
    private let relu1 = ResidualReLU()
    private let relu2 = ResidualReLU()
    private let relu3 = ResidualReLU()

    public init(_ inChannels: Int, planes: Int, stride: Int = 1, random: inout RandomSource) {
        let out = planes * Self.expansion
        conv1 = Conv2d(inChannels, planes, kernelSize: 1, bias: false, random: &random)
        bn1 = BatchNorm2d(planes)
        conv2 = Conv2d(planes, planes, kernelSize: 3, stride: stride, padding: 1, bias: false, random: &random)
        bn2 = BatchNorm2d(planes)
        conv3 = Conv2d(planes, out, kernelSize: 1, bias: false, random: &random)
        bn3 = BatchNorm2d(out)
        if stride != 1 || inChannels != out {
            downsample = (Conv2d(inChannels, out, kernelSize: 1, stride: stride, bias: false, random: &random), BatchNorm2d(out))
        } else {
            downsample = nil
        }
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("conv1", conv1) + nest("bn1", bn1) + nest("conv2", conv2) + nest("bn2", bn2)
            + nest("conv3", conv3) + nest("bn3", bn3)
        if let downsample { all += nest("downsample.0", downsample.conv) + nest("downsample.1", downsample.norm) }
        return all
    }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        var h = relu1.forward(bn1.forward(conv1.forward(x, training: training), training: training), training: training)
        h = relu2.forward(bn2.forward(conv2.forward(h, training: training), training: training), training: training)
        h = bn3.forward(conv3.forward(h, training: training), training: training)
        let shortcut = downsample.map { $0.norm.forward($0.conv.forward(x, training: training), training: training) } ?? x
        return relu3.forward(h, adding: shortcut, training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let d = relu3.backward(dy)
        var main = conv3.backward(bn3.backward(d))
        main = conv2.backward(bn2.backward(relu2.backward(main)))
        main = conv1.backward(bn1.backward(relu1.backward(main)))
        if let downsample {
            main.add(downsample.conv.backward(downsample.norm.backward(d)))
        } else {
            main.add(d)
        }
        return main
    }
}

/// A tensor whose every element the caller overwrites (skips zero-filling large activations).
private func uninitializedTensor(_ shape: [Int]) -> Tensor {
    let count = shape.reduce(1, *)
    return Tensor(shape: shape, [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count })
}

/// max(0, x) or max(0, x + shortcut) (NaN propagates), vectorized and parallel; keeps its output
/// for the mask.
private final class ResidualReLU {
    private var output = Tensor(shape: [0])
    private typealias Vector = SIMD16<Float>

    func forward(_ x: Tensor, adding shortcut: Tensor? = nil, training: Bool) -> Tensor {
        if let shortcut { precondition(shortcut.shape == x.shape, "residual \(shortcut.shape) for \(x.shape)") }
        var y = uninitializedTensor(x.shape)
        let n = x.count
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                let zero = Vector()
                if let shortcut {
                    shortcut.withUnsafePointer { sp in
                        Self.chunks(n) { lo, hi in
                            var i = lo
                            while i + Vector.scalarCount <= hi {
                                let v = Self.load(xp, i) + Self.load(sp, i)
                                Self.store(v.replacing(with: zero, where: v .< zero), yp, i)
                                i += Vector.scalarCount
                            }
                            while i < hi { let v = xp[i] + sp[i]; yp[i] = v < 0 ? 0 : v; i += 1 }
                        }
                    }
                } else {
                    Self.chunks(n) { lo, hi in
                        var i = lo
                        while i + Vector.scalarCount <= hi {
                            let v = Self.load(xp, i)
                            Self.store(v.replacing(with: zero, where: v .< zero), yp, i)
                            i += Vector.scalarCount
                        }
                        while i < hi { let v = xp[i]; yp[i] = v < 0 ? 0 : v; i += 1 }
                    }
                }
            }
        }
        output = training ? y : Tensor(shape: [0])
        return y
    }

    func backward(_ dy: Tensor) -> Tensor {
        precondition(output.count == dy.count && dy.count > 0, "ReLU.backward without a matching training forward")
        var dx = uninitializedTensor(dy.shape)
        dy.withUnsafePointer { gp in
            output.withUnsafePointer { yp in
                dx.withUnsafeMutablePointer { dp in
                    let zero = Vector()
                    Self.chunks(dy.count) { lo, hi in
                        var i = lo
                        while i + Vector.scalarCount <= hi {
                            Self.store(Self.load(gp, i).replacing(with: zero, where: .!(Self.load(yp, i) .> zero)), dp, i)
                            i += Vector.scalarCount
                        }
                        while i < hi { dp[i] = yp[i] > 0 ? gp[i] : 0; i += 1 }
                    }
                }
            }
        }
        output = Tensor(shape: [0])
        return dx
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector {
        UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    private static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector.self)
    }

    private static func chunks(_ n: Int, _ body: (Int, Int) -> Void) {
        let parts = max(1, min(BLAS.threads, n / (1 << 16)))
        let per = (n + parts - 1) / parts
        Parallel.forEach(parts) { p in
            let lo = p * per, hi = min(n, lo + per)
            if lo < hi { body(lo, hi) }
        }
    }
}
