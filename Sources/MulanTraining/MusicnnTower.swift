import Foundation
import MulanTensor

/// What the contrastive model needs of an audio tower: log-mel windows [B, melBands, frames] in,
/// unit-norm embeddings [B, embeddingDim] out, and the backward pass of the last training forward.
public protocol AudioEncoder: Module {
    var embeddingDim: Int { get }
    func forward(_ logMel: Tensor, training: Bool) -> Tensor
    /// Adds the parameter gradients of the trained weights; returns the gradient with respect to the
    /// input only when `inputGradient` is true and the whole tower trains.
    @discardableResult
    func backward(_ dEmbedding: Tensor, inputGradient: Bool) -> Tensor?
}

extension AudioTower: AudioEncoder {
    public var embeddingDim: Int { config.embeddingDim }
}

/// musicnn (Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio
/// tagging", 2019; the architecture of musicnn 0.1.0's `models.build_musicnn` with its MSD/MTT
/// sizes) as mulan's audio tower. Tensors are named as the converted pretrained files name them
/// (see the spec in docs/pretrained-audio.md); the layout is [out, in, freq, time] for the 2-D
/// convolutions and [out, in, time] for the mid-end's 1-D ones. Each TensorFlow convolution and
/// dense layer applies its ReLU *before* its batch normalization (ε = 0.001 as TensorFlow's).
///
///     [B, 96, T] → P = ⌊T / 187⌋ patches of 187 frames from the start ([B·P, 1, 96, 187])
///     input_bn (1 channel)
///     front end: timbral.0  conv 38×7 (freq × time), time padded 3 + 3 → ReLU → bn → max over freq   204 ch
///                timbral.1  conv 67×7, likewise                                                     204 ch
///                temporal.0 conv 1×128, time padded 63 + 64 (TF 'same') → ReLU → bn → max over freq   51 ch
///                temporal.1 conv 1×64 (31 + 32), temporal.2 conv 1×32 (15 + 16)                      51 ch each
///                concatenated in that order: 561 channels × 187 frames
///     midend.0: conv1d 561→64, k 7, pad 3 + 3 → ReLU → bn                                            m1
///     midend.1: the same 64→64 on m1, plus m1                                                         m2
///     midend.2: the same on m2, plus m2                                                               m3
///     backend: [front, m1, m2, m3] (753 ch) → per channel (max, mean) over time, interleaved (1506)
///              → pool_bn → dense 1506→200 → ReLU → dense_bn: the penultimate features
///              (logits 200→50 give the taggram, sigmoid(logits); not on the embedding path)
///     mean of the penultimate features over the window's patches → proj → L2 normalization
///
/// Dropout (musicnn trains with 0.5 before and after the dense layer) is not applied, in inference
/// or fine-tuning. `trainedBlocks` says how many of the blocks [front end (with input_bn), midend,
/// backend] counted from the top train; the others run in inference mode (batch norm on its
/// running statistics) and receive no gradient. `proj` always trains; `backend.logits` never does.
public final class MusicnnTower: AudioEncoder {
    public static let melBands = 96
    public static let patchFrames = 187
    public static let tags = 50
    public static let penultimateWidth = 200
    /// Batch-norm ε and momentum: TensorFlow's defaults (ε 0.001, moving-average decay 0.99).
    public static let batchNormEpsilon: Float = 0.001
    public static let batchNormMomentum: Float = 0.01
    /// The blocks, from the bottom, whose depth `trainedBlocks` counts.
    public static let blockNames = ["front end", "midend", "backend"]

    /// A convolution with ReLU, batch norm and max over frequency.
    public final class FrontBlock: Module {
        public let conv: Conv2d
        public let bn: BatchNorm2d
        let relu = ReLU()
        let pool = MaxOverHeight()

        init(filters: Int, kernel: (height: Int, width: Int), timePadding: (Int, Int), random: inout RandomSource) {
            conv = Conv2d(1, filters, kernel: kernel, padding: (0, 0, timePadding.0, timePadding.1), random: &random)
            bn = BatchNorm2d(filters, epsilon: MusicnnTower.batchNormEpsilon, momentum: MusicnnTower.batchNormMomentum)
        }

        public var namedParameters: [(name: String, parameter: Parameter)] { nest("conv", conv) + nest("bn", bn) }

        func forward(_ x: Tensor, training: Bool) -> Tensor {
            pool.forward(bn.forward(relu.forward(conv.forward(x, training: training), training: training),
                                    training: training), training: training)
        }

        func backward(_ dy: Tensor) -> Tensor {
            conv.backward(relu.backward(bn.backward(pool.backward(dy))))
        }
    }

    /// A 1-D convolution over time with ReLU and batch norm.
    public final class MidBlock: Module {
        public let conv: Conv1d
        public let bn: BatchNorm2d
        let relu = ReLU()

        init(_ inChannels: Int, _ outChannels: Int, random: inout RandomSource) {
            conv = Conv1d(inChannels, outChannels, kernelSize: 7, padding: (3, 3), random: &random)
            bn = BatchNorm2d(outChannels, epsilon: MusicnnTower.batchNormEpsilon, momentum: MusicnnTower.batchNormMomentum)
        }

        public var namedParameters: [(name: String, parameter: Parameter)] { nest("conv", conv) + nest("bn", bn) }

        func forward(_ x: Tensor, training: Bool) -> Tensor {
            let h = relu.forward(conv.forward(x, training: training), training: training)
            return bn.forward(h.reshaped([h.shape[0], h.shape[1], 1, h.shape[2]]), training: training)
                .reshaped(h.shape)
        }

        func backward(_ dy: Tensor, inputGradient: Bool) -> Tensor? {
            let d = bn.backward(dy.reshaped([dy.shape[0], dy.shape[1], 1, dy.shape[2]])).reshaped(dy.shape)
            return conv.backward(relu.backward(d), inputGradient: inputGradient)
        }
    }

    public let embeddingDim: Int
    public let inputBN: BatchNorm2d
    public let timbral: [FrontBlock]
    public let temporal: [FrontBlock]
    public let midend: [MidBlock]
    public let poolBN: BatchNorm2d
    public let dense: Linear
    public let denseBN: BatchNorm2d
    public let logits: Linear
    public let proj: Linear
    /// How many blocks from the top train (0: frozen, 3: all); see the type's documentation.
    public var trainedBlocks = 3
    private let pool = MaxMeanOverTime()
    private let denseReLU = ReLU()
    private let normalize = L2Normalize()
    private var patchesPerWindow = 0
    private var trainedInLastForward = 0

    public init(embeddingDim: Int, random: inout RandomSource) {
        precondition(embeddingDim > 0, "MusicnnTower needs a positive embedding dimension")
        self.embeddingDim = embeddingDim
        let eps = Self.batchNormEpsilon, momentum = Self.batchNormMomentum
        inputBN = BatchNorm2d(1, epsilon: eps, momentum: momentum)
        timbral = [FrontBlock(filters: 204, kernel: (38, 7), timePadding: (3, 3), random: &random),
                   FrontBlock(filters: 204, kernel: (67, 7), timePadding: (3, 3), random: &random)]
        temporal = [128, 64, 32].map { k in FrontBlock(filters: 51, kernel: (1, k), timePadding: (k / 2 - 1, k / 2), random: &random) }
        midend = [MidBlock(561, 64, random: &random), MidBlock(64, 64, random: &random), MidBlock(64, 64, random: &random)]
        poolBN = BatchNorm2d(1506, epsilon: eps, momentum: momentum)
        dense = Linear(1506, Self.penultimateWidth, random: &random)
        denseBN = BatchNorm2d(Self.penultimateWidth, epsilon: eps, momentum: momentum)
        logits = Linear(Self.penultimateWidth, Self.tags, random: &random)
        proj = Linear(Self.penultimateWidth, embeddingDim, random: &random)
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("input_bn", inputBN)
        for (i, b) in timbral.enumerated() { all += nest("timbral.\(i)", b) }
        for (i, b) in temporal.enumerated() { all += nest("temporal.\(i)", b) }
        for (i, b) in midend.enumerated() { all += nest("midend.\(i)", b) }
        all += nest("backend.pool_bn", poolBN) + nest("backend.dense", dense) + nest("backend.dense_bn", denseBN)
        all += nest("backend.logits", logits)
        return all + nest("proj", proj)
    }

    /// The pretrained part: every tensor but `proj`.
    public var pretrainedParameters: [(name: String, parameter: Parameter)] {
        namedParameters.filter { !$0.name.hasPrefix("proj.") }
    }

    /// The block (0 front end, 1 midend, 2 backend) of a parameter name, nil for proj and logits.
    public static func block(of name: String) -> Int? {
        if name.hasPrefix("input_bn.") || name.hasPrefix("timbral.") || name.hasPrefix("temporal.") { return 0 }
        if name.hasPrefix("midend.") { return 1 }
        if name.hasPrefix("backend.") && !name.hasPrefix("backend.logits.") { return 2 }
        return nil
    }

    /// Whether parameter `name` trains when the top `trainedBlocks` blocks do.
    public static func trains(_ name: String, trainedBlocks: Int) -> Bool {
        if name.hasPrefix("proj.") { return true }
        guard let b = block(of: name) else { return false }
        return b >= 3 - trainedBlocks
    }

    /// Patches of 187 frames in a window of `frames` frames.
    public static func patches(frames: Int) -> Int { frames / patchFrames }

    /// [B, 96, T] → [B·P, 1, 96, 187]: the window's non-overlapping patches from its start.
    static func patchBatch(_ logMel: Tensor) -> Tensor {
        precondition(logMel.rank == 3 && logMel.shape[1] == melBands && logMel.shape[2] >= patchFrames,
                     "MusicnnTower needs [B, \(melBands), ≥ \(patchFrames)] log-mel, got \(logMel.shape)")
        let b = logMel.shape[0], t = logMel.shape[2], p = patches(frames: t), f = patchFrames
        var x = Tensor(uninitializedShape: [b * p, 1, melBands, f])
        logMel.withUnsafePointer { src in
            x.withUnsafeMutablePointer { dst in
                for i in 0..<b {
                    for k in 0..<p {
                        for m in 0..<melBands {
                            (dst + ((i * p + k) * melBands + m) * f).update(from: src + (i * melBands + m) * t + k * f, count: f)
                        }
                    }
                }
            }
        }
        return x
    }

    /// The penultimate features [N, 200] of patches [N, 1, 96, 187] (BN in inference mode and no
    /// gradient state for blocks that do not train when `training` is true).
    public func penultimate(patches x: Tensor, training: Bool) -> Tensor {
        if (!training || trainedBlocks == 0) && x.shape[0] > Self.inferencePatches {
            return Self.inChunks(x) { penultimate(patches: $0, training: training) }
        }
        trainedInLastForward = training ? trainedBlocks : 0
        let trainFront = training && trainedBlocks >= 3, trainMid = training && trainedBlocks >= 2
        let trainBack = training && trainedBlocks >= 1
        let n = x.shape[0]
        let h0 = inputBN.forward(x, training: trainFront)
        let parts = (timbral + temporal).map { $0.forward(h0, training: trainFront) }
        let front = Self.concatenate(parts)
        let m1 = midend[0].forward(front, training: trainMid)
        var m2 = midend[1].forward(m1, training: trainMid)
        m2.add(m1)
        var m3 = midend[2].forward(m2, training: trainMid)
        m3.add(m2)
        let features = Self.concatenate([front, m1, m2, m3])
        let pooled = pool.forward(features, training: trainBack)
        var h = poolBN.forward(pooled.reshaped([n, 1506, 1, 1]), training: trainBack).reshaped([n, 1506])
        h = denseReLU.forward(dense.forward(h, training: trainBack), training: trainBack)
        return denseBN.forward(h.reshaped([n, Self.penultimateWidth, 1, 1]), training: trainBack)
            .reshaped([n, Self.penultimateWidth])
    }

    /// Per patch, the 50 tag probabilities sigmoid(logits) (inference mode).
    public func taggram(patches x: Tensor) -> Tensor {
        var y = logits.forward(penultimate(patches: x, training: false), training: false)
        for i in y.storage.indices { y.storage[i] = 1 / (1 + Foundation.exp(-y.storage[i])) }
        return y
    }

    public func forward(_ logMel: Tensor, training: Bool) -> Tensor {
        let x = Self.patchBatch(logMel)
        patchesPerWindow = x.shape[0] / max(logMel.shape[0], 1)
        let mean = Self.windowMeans(penultimate(patches: x, training: training), windows: logMel.shape[0])
        return normalize.forward(proj.forward(mean, training: training), training: training)
    }

    /// The embedding of precomputed window features: `proj` and the L2 normalization of [B, 200]
    /// means of penultimate features over each window's patches (`FrozenFeatureCache`). Equals
    /// `forward` on the windows' log-mel when the tower is frozen; `backward` then reaches `proj` only.
    public func forward(meanPenultimate mean: Tensor, training: Bool) -> Tensor {
        precondition(mean.rank == 2 && mean.shape[1] == Self.penultimateWidth,
                     "MusicnnTower needs [B, \(Self.penultimateWidth)] mean penultimate features, got \(mean.shape)")
        trainedInLastForward = 0
        return normalize.forward(proj.forward(mean, training: training), training: training)
    }

    @discardableResult
    public func backward(_ dEmbedding: Tensor, inputGradient: Bool = false) -> Tensor? {
        let dMean = proj.backward(normalize.backward(dEmbedding))
        let depth = trainedInLastForward
        guard depth >= 1 else { return nil }
        let w = Self.penultimateWidth, n = dMean.shape[0] * patchesPerWindow
        let dPen = Self.spreadOverPatches(dMean, patches: patchesPerWindow)
        var d = denseBN.backward(dPen.reshaped([n, w, 1, 1])).reshaped([n, w])
        d = dense.backward(denseReLU.backward(d))
        d = poolBN.backward(d.reshaped([n, 1506, 1, 1])).reshaped([n, 1506])
        guard depth >= 2 else { return nil }
        let dFeatures = pool.backward(d)
        let split = Self.split(dFeatures, [561, 64, 64, 64])
        let dm3 = split[3]
        var dm2 = split[2]
        dm2.add(dm3)
        dm2.add(midend[2].backward(dm3, inputGradient: true)!)
        var dm1 = split[1]
        dm1.add(dm2)
        dm1.add(midend[1].backward(dm2, inputGradient: true)!)
        let toFront = midend[0].backward(dm1, inputGradient: depth >= 3)
        guard depth >= 3, var dFront = toFront else { return nil }
        dFront.add(split[0])
        let dParts = Self.split(dFront, [204, 204, 51, 51, 51])
        var dh0: Tensor?
        for (block, dp) in zip(timbral + temporal, dParts) {
            let g = block.backward(dp)
            if dh0 == nil { dh0 = g } else { dh0!.add(g) }
        }
        let dx = inputBN.backward(dh0!)
        return inputGradient ? dx.reshaped([dx.shape[0], dx.shape[2], dx.shape[3]]) : nil
    }

    /// Concatenates [N, C_i, T] tensors along the channels.
    static func concatenate(_ parts: [Tensor]) -> Tensor {
        let n = parts[0].shape[0], t = parts[0].shape[2]
        let total = parts.reduce(0) { $0 + $1.shape[1] }
        var y = Tensor(uninitializedShape: [n, total, t])
        y.withUnsafeMutablePointer { dst in
            var offset = 0
            for part in parts {
                precondition(part.rank == 3 && part.shape[0] == n && part.shape[2] == t, "concatenate: \(part.shape)")
                let c = part.shape[1]
                part.withUnsafePointer { src in
                    for i in 0..<n { (dst + (i * total + offset) * t).update(from: src + i * c * t, count: c * t) }
                }
                offset += c
            }
        }
        return y
    }

    /// The inverse of `concatenate`: [N, ΣC_i, T] → [N, C_i, T] for the given widths.
    static func split(_ x: Tensor, _ widths: [Int]) -> [Tensor] {
        let n = x.shape[0], total = x.shape[1], t = x.shape[2]
        precondition(widths.reduce(0, +) == total, "split \(x.shape) into \(widths)")
        var offset = 0
        return widths.map { c in
            var y = Tensor(uninitializedShape: [n, c, t])
            x.withUnsafePointer { src in
                y.withUnsafeMutablePointer { dst in
                    for i in 0..<n { (dst + i * c * t).update(from: src + (i * total + offset) * t, count: c * t) }
                }
            }
            offset += c
            return y
        }
    }
}
