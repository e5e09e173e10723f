import Foundation
import MulanTensor

/// What mulan needs of a pretrained audio tower (`MusicnnTower`, `VggTower`): musicnn's front end
/// cut into 187-frame patches, a feature per patch (its penultimate layer) whose mean over a
/// window's patches goes through `proj`, blocks counted from the bottom that can be frozen, and the
/// tag outputs it was trained with (the taggram).
public protocol PretrainedAudioTower: AudioEncoder {
    /// The converted file's `architecture` ("musicnn", "vgg").
    static var architecture: String { get }
    /// The tower's blocks from the bottom; `trainedBlocks` counts them from the top.
    static var blockNames: [String] { get }
    /// The width of the per-patch feature that `proj` reads.
    static var featureWidth: Int { get }
    /// Whether parameter `name` (without the model's `audio.` prefix) trains when the top
    /// `trainedBlocks` blocks do (`proj` always, the tag layer never).
    static func trains(_ name: String, trainedBlocks: Int) -> Bool
    /// How many blocks from the top train (0: frozen).
    var trainedBlocks: Int { get set }
    /// Every tensor but `proj`: what a converted file holds.
    var pretrainedParameters: [(name: String, parameter: Parameter)] { get }
    /// The per-patch features [N, featureWidth] of patches [N, 1, 96, 187].
    func penultimate(patches x: Tensor, training: Bool) -> Tensor
    /// Per patch, the 50 tag probabilities (inference mode).
    func taggram(patches x: Tensor) -> Tensor
    /// The embedding of precomputed window features [B, featureWidth] (each window's mean patch
    /// feature): `proj` and the L2 normalization (`FrozenFeatureCache`). Equals `forward` on the
    /// windows' log-mel when the tower is frozen; `backward` then reaches `proj` only.
    func forward(meanPenultimate mean: Tensor, training: Bool) -> Tensor
}

extension PretrainedAudioTower {
    public var pretrainedParameters: [(name: String, parameter: Parameter)] {
        namedParameters.filter { !$0.name.hasPrefix("proj.") }
    }

    /// Patches per pass when no gradient state is kept (`inChunks`): the front ends' largest
    /// intermediates are about 12 MB per patch (musicnn's 7×38 timbral convolution as a matrix product,
    /// VGG's first 128-channel block), so two patches stay under glibc's 32 MB ceiling for serving
    /// allocations from the heap. A whole batch at once (72 patches for 24 windows) made each
    /// intermediate a fresh mmap of hundreds of MB whose every page faulted in again: 40 % of
    /// `mulan-eval`'s CPU time was the kernel's.
    static var inferencePatches: Int { 2 }

    /// `body`'s [n, W] rows for `x`'s patches [N, …], `inferencePatches` at a time, in order: the
    /// same rows as one pass over all of them (every layer works patch by patch in inference mode).
    static func inChunks(_ x: Tensor, _ body: (Tensor) -> Tensor) -> Tensor {
        let n = x.shape[0], per = x.count / max(n, 1), chunk = inferencePatches
        var rows: [Float] = []
        var width = 0
        for lo in stride(from: 0, to: n, by: chunk) {
            let hi = min(n, lo + chunk)
            let part = Tensor(shape: [hi - lo] + Array(x.shape.dropFirst()), Array(x.storage[(lo * per)..<(hi * per)]))
            let y = body(part)
            width = y.shape[1]
            if rows.isEmpty { rows.reserveCapacity(n * width) }
            rows += y.storage
        }
        return Tensor(shape: [n, width], rows)
    }

    /// [B·P, W] patch features → [B, W]: the mean over each window's P consecutive rows.
    static func windowMeans(_ features: Tensor, windows b: Int) -> Tensor {
        let w = features.shape[1], p = features.shape[0] / max(b, 1)
        var mean = Tensor(shape: [b, w])
        for i in 0..<b {
            for k in 0..<p { for j in 0..<w { mean.storage[i * w + j] += features.storage[(i * p + k) * w + j] } }
            for j in 0..<w { mean.storage[i * w + j] /= Float(p) }
        }
        return mean
    }

    /// The backward of `windowMeans`: [B, W] → [B·P, W], each window's gradient divided by P on each of its rows.
    static func spreadOverPatches(_ dMean: Tensor, patches p: Int) -> Tensor {
        let b = dMean.shape[0], w = dMean.shape[1]
        var d = Tensor(shape: [b * p, w])
        for i in 0..<b {
            for k in 0..<p { for j in 0..<w { d.storage[(i * p + k) * w + j] = dMean.storage[i * w + j] / Float(p) } }
        }
        return d
    }
}

extension MusicnnTower: PretrainedAudioTower {
    public static var architecture: String { "musicnn" }
    public static var featureWidth: Int { penultimateWidth }
}

/// musicnn 0.1.0's vgg (`models.vgg`, the MSD_vgg / MTT_vgg sizes: 128 filters, 5 blocks) as
/// mulan's audio tower, on the same front end and 187-frame patches as `MusicnnTower`. Layout
/// [N, C, 96 bands, 187 frames]; tensors named as the converted files name them.
///
///     input_bn (1 channel)
///     blocks.i: conv 3×3 (padding 1: TensorFlow's 'same') → ReLU → bn → max pool, 128 channels;
///               pools (bands × frames, stride): block 0 1×4 (2, 2), blocks 1–3 2×2 (2, 2),
///               block 4 4×4 (4, 4): 96×187 → 48×92 → 24×46 → 12×23 → 6×11 → 1×2
///     feature: pool5 averaged over its 1 band × 2 frames (128)
///     logits: dense over pool5 flattened in TensorFlow's (frame, band, channel) order (256 → 50)
///     mean of the features over the window's patches → proj → L2 normalization
///
/// ReLU comes before batch norm, as in TensorFlow's graph (ε 0.001). Dropout is not applied.
/// `trainedBlocks` (0–5) counts blocks from the top: blocks.4 first, blocks.0 with input_bn last.
public final class VggTower: PretrainedAudioTower {
    public static let architecture = "vgg"
    public static let filters = 128
    public static let blockNames = ["input_bn + block 0", "block 1", "block 2", "block 3", "block 4"]
    public static let featureWidth = filters
    /// The pools' (bands × frames) windows and strides, block by block.
    static let pools: [(kernel: (Int, Int), stride: (Int, Int))] = [((1, 4), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                                                                    ((2, 2), (2, 2)), ((4, 4), (4, 4))]
    /// pool5's bands × frames for a 96 × 187 patch.
    static let pool5 = (bands: 1, frames: 2)

    /// conv 3×3 → ReLU → batch norm → max pool.
    public final class Block: Module {
        public let conv: Conv2d
        public let bn: BatchNorm2d
        let relu = ReLU()
        let pool: MaxPool2d

        init(_ inChannels: Int, pool: (kernel: (Int, Int), stride: (Int, Int)), random: inout RandomSource) {
            conv = Conv2d(inChannels, VggTower.filters, kernel: (3, 3), padding: (1, 1, 1, 1), random: &random)
            bn = BatchNorm2d(VggTower.filters, epsilon: MusicnnTower.batchNormEpsilon, momentum: MusicnnTower.batchNormMomentum)
            self.pool = MaxPool2d(kernel: pool.kernel, stride: pool.stride)
        }

        public var namedParameters: [(name: String, parameter: Parameter)] { nest("conv", conv) + nest("bn", bn) }

        func forward(_ x: Tensor, training: Bool) -> Tensor {
            pool.forward(bn.forward(relu.forward(conv.forward(x, training: training), training: training),
                                    training: training), training: training)
        }

        func backward(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
            conv.backward(relu.backward(bn.backward(pool.backward(dy))), inputGradient: inputGradient)
        }
    }

    public let embeddingDim: Int
    public let inputBN: BatchNorm2d
    public let blocks: [Block]
    public let logits: Linear
    public let proj: Linear
    public var trainedBlocks = 5
    private let average = GlobalAveragePool()
    private let normalize = L2Normalize()
    private var patchesPerWindow = 0
    private var trainedInLastForward = 0

    public init(embeddingDim: Int, random: inout RandomSource) {
        precondition(embeddingDim > 0, "VggTower needs a positive embedding dimension")
        self.embeddingDim = embeddingDim
        inputBN = BatchNorm2d(1, epsilon: MusicnnTower.batchNormEpsilon, momentum: MusicnnTower.batchNormMomentum)
        blocks = Self.pools.enumerated().map { i, p in Block(i == 0 ? 1 : Self.filters, pool: p, random: &random) }
        logits = Linear(Self.filters * Self.pool5.bands * Self.pool5.frames, MusicnnTower.tags, random: &random)
        proj = Linear(Self.filters, embeddingDim, random: &random)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("input_bn", inputBN)
        for (i, b) in blocks.enumerated() { all += nest("blocks.\(i)", b) }
        return all + nest("logits", logits) + nest("proj", proj)
    }

    /// The block (0–4) of a parameter name; input_bn belongs to block 0; nil for proj and logits.
    public static func block(of name: String) -> Int? {
        if name.hasPrefix("input_bn.") { return 0 }
        guard name.hasPrefix("blocks."), let dot = name.dropFirst(7).firstIndex(of: "."),
              let i = Int(name[name.index(name.startIndex, offsetBy: 7)..<dot]) else { return nil }
        return i
    }

    public static func trains(_ name: String, trainedBlocks: Int) -> Bool {
        if name.hasPrefix("proj.") { return true }
        guard let b = block(of: name) else { return false }
        return b >= blockNames.count - trainedBlocks
    }

    /// pool5 [N, 128, 1, 2] of patches [N, 1, 96, 187]; blocks below the trained ones run in
    /// inference mode and keep no gradient state.
    func pool5(patches x: Tensor, training: Bool) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == 1 && x.shape[2] == MusicnnTower.melBands && x.shape[3] == MusicnnTower.patchFrames,
                     "VggTower needs patches [N, 1, \(MusicnnTower.melBands), \(MusicnnTower.patchFrames)], got \(x.shape)")
        trainedInLastForward = training ? trainedBlocks : 0
        let lowestTrained = blocks.count - trainedInLastForward
        var h = inputBN.forward(x, training: training && lowestTrained == 0)
        for (i, block) in blocks.enumerated() { h = block.forward(h, training: training && i >= lowestTrained) }
        return h
    }

    public func penultimate(patches x: Tensor, training: Bool) -> Tensor {
        if (!training || trainedBlocks == 0) && x.shape[0] > Self.inferencePatches {
            return Self.inChunks(x) { penultimate(patches: $0, training: training) }
        }
        let trainTop = training && trainedBlocks >= 1
        let p5 = pool5(patches: x, training: training)
        return average.forward(p5, training: trainTop)
    }

    public func taggram(patches x: Tensor) -> Tensor {
        let p5 = pool5(patches: x, training: false)
        let n = p5.shape[0], c = p5.shape[1], bands = p5.shape[2], frames = p5.shape[3]
        // TensorFlow's flatten of [N, frames, bands, C]: index (t · bands + f) · C + c.
        var flat = Tensor(uninitializedShape: [n, frames * bands * c])
        for i in 0..<n {
            for t in 0..<frames { for f in 0..<bands { for ch in 0..<c {
                flat.storage[i * frames * bands * c + (t * bands + f) * c + ch] = p5.storage[((i * c + ch) * bands + f) * frames + t]
            } } }
        }
        var y = logits.forward(flat, training: false)
        for i in y.storage.indices { y.storage[i] = 1 / (1 + Foundation.exp(-y.storage[i])) }
        return y
    }

    public func forward(_ logMel: Tensor, training: Bool) -> Tensor {
        let x = MusicnnTower.patchBatch(logMel)
        patchesPerWindow = x.shape[0] / max(logMel.shape[0], 1)
        let mean = Self.windowMeans(penultimate(patches: x, training: training), windows: logMel.shape[0])
        return normalize.forward(proj.forward(mean, training: training), training: training)
    }

    public func forward(meanPenultimate mean: Tensor, training: Bool) -> Tensor {
        precondition(mean.rank == 2 && mean.shape[1] == Self.featureWidth,
                     "VggTower needs [B, \(Self.featureWidth)] mean features, got \(mean.shape)")
        trainedInLastForward = 0
        return normalize.forward(proj.forward(mean, training: training), training: training)
    }

    @discardableResult
    public func backward(_ dEmbedding: Tensor, inputGradient: Bool = false) -> Tensor? {
        let dMean = proj.backward(normalize.backward(dEmbedding))
        let depth = trainedInLastForward
        guard depth >= 1 else { return nil }
        var d = average.backward(Self.spreadOverPatches(dMean, patches: patchesPerWindow))
        let lowest = blocks.count - depth
        for i in stride(from: blocks.count - 1, through: lowest, by: -1) {
            let wantInput = i > lowest || (i == 0 && inputGradient)
            guard let dx = blocks[i].backward(d, inputGradient: wantInput || i == 0) else { return nil }
            d = dx
        }
        guard lowest == 0 else { return nil }
        let dx = inputBN.backward(d)
        return inputGradient ? dx.reshaped([dx.shape[0], dx.shape[2], dx.shape[3]]) : nil
    }
}
