import MulanTensor

/// An Audio Spectrogram Transformer (Gong et al., 2021; MuLan's second audio tower) over a window's
/// log-mel, with the text tower's Transformer encoder layers:
///
///     [B, M, T] → [B, 1, M, T]
///     patch_embed: conv 16×16, stride 10 in both axes (overlapping patches), 1 → width, with bias:
///                  [B, width, P_f, P_t], P_f = ⌊(M − 16) / 10⌋ + 1, P_t = ⌊(T − 16) / 10⌋ + 1
///     tokens: the P = P_f·P_t patches in row-major (band, frame) order, [B, P, width]
///     [cls_token; tokens] + pos_embed ([1 + P, width], learned), then
///     encoder.layer.{i}: `TransformerEncoderLayer` (BERT's post-LayerNorm layer, as the text tower)
///     the [CLS] state → proj (width → embeddingDim) → L2 normalization
///
/// The patch grid is that of the configuration's window (`frames`), so every window the model sees
/// (training windows and `mulan-embed`'s zero-padded ones) has the same number of positions. The AST
/// paper uses a pre-LayerNorm ViT encoder (from DeiT); this tower reuses mulan's BERT layer, which
/// puts LayerNorm after each residual sum, and has no dropout.
public final class ASTTower: AudioEncoder {
    public let config: ASTConfig
    public let melBands: Int
    public let frames: Int
    public let embeddingDim: Int
    public let patchEmbed: Conv2d
    public let clsToken: Parameter
    public let positionEmbedding: Parameter
    public let layers: [TransformerEncoderLayer]
    public let proj: Linear
    private let normalize = L2Normalize()
    private var lastBatch = 0

    /// Patches along an axis of `size` rows or frames.
    public static func patches(_ size: Int) -> Int { size < ASTConfig.patch ? 0 : (size - ASTConfig.patch) / ASTConfig.stride + 1 }

    public var patchGrid: (bands: Int, frames: Int) { (Self.patches(melBands), Self.patches(frames)) }

    public init(_ config: ASTConfig, melBands: Int, frames: Int, embeddingDim: Int, random: inout RandomSource) {
        precondition(config.width > 0 && config.layers > 0 && config.heads > 0 && config.width % config.heads == 0
                     && config.feedForward > 0 && embeddingDim > 0, "invalid ASTConfig \(config)")
        precondition(Self.patches(melBands) > 0 && Self.patches(frames) > 0,
                     "the AST needs at least \(ASTConfig.patch) mel bands and frames, got \(melBands) × \(frames)")
        self.config = config
        self.melBands = melBands
        self.frames = frames
        self.embeddingDim = embeddingDim
        patchEmbed = Conv2d(1, config.width, kernelSize: ASTConfig.patch, stride: ASTConfig.stride, padding: 0, bias: true,
                            random: &random)
        let positions = 1 + Self.patches(melBands) * Self.patches(frames)
        clsToken = Parameter(.normal(shape: [config.width], std: 0.02, using: &random), decays: false)
        positionEmbedding = Parameter(.normal(shape: [positions, config.width], std: 0.02, using: &random), decays: false)
        layers = (0..<config.layers).map { _ in
            TransformerEncoderLayer(width: config.width, heads: config.heads, feedForward: config.feedForward, random: &random)
        }
        proj = Linear(config.width, embeddingDim, random: &random)
    }

    /// `patch_embed.{weight,bias}`, `cls_token`, `pos_embed`, `encoder.layer.{i}.…` (the text
    /// tower's names), `proj.{weight,bias}`.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var all = nest("patch_embed", patchEmbed) + [("cls_token", clsToken), ("pos_embed", positionEmbedding)]
        for (i, layer) in layers.enumerated() { all += nest("encoder.layer.\(i)", layer) }
        return all + nest("proj", proj)
    }

    public func forward(_ logMel: Tensor, training: Bool) -> Tensor {
        precondition(logMel.rank == 3 && logMel.shape[1] == melBands && logMel.shape[2] == frames,
                     "ASTTower(\(melBands) bands × \(frames) frames) got input \(logMel.shape)")
        let b = logMel.shape[0], w = config.width, p = patchGrid.bands * patchGrid.frames, l = p + 1
        let patches = patchEmbed.forward(logMel.reshaped([b, 1, melBands, frames]), training: training)  // [B, w, P_f, P_t]
        var x = Tensor(uninitializedShape: [b, l, w])
        patches.withUnsafePointer { src in
            clsToken.value.withUnsafePointer { cls in
                positionEmbedding.value.withUnsafePointer { pos in
                    x.withUnsafeMutablePointer { dst in
                        for s in 0..<b {
                            let row0 = dst + s * l * w
                            for j in 0..<w { row0[j] = cls[j] + pos[j] }
                            for c in 0..<w {
                                let plane = src + (s * w + c) * p
                                for k in 0..<p { row0[(k + 1) * w + c] = plane[k] + pos[(k + 1) * w + c] }
                            }
                        }
                    }
                }
            }
        }
        let lengths = [Int](repeating: l, count: b)
        for (i, layer) in layers.enumerated() {
            x = layer.forward(x, lengths: lengths, firstPositionOnly: i == layers.count - 1, training: training)
        }
        lastBatch = training ? b : 0
        return normalize.forward(proj.forward(x.reshaped([b, w]), training: training), training: training)
    }

    @discardableResult
    public func backward(_ dEmbedding: Tensor, inputGradient: Bool = false) -> Tensor? {
        let b = lastBatch, w = config.width, p = patchGrid.bands * patchGrid.frames
        precondition(b > 0 && dEmbedding.shape == [b, embeddingDim], "ASTTower.backward without a matching training forward")
        var g = proj.backward(normalize.backward(dEmbedding)).reshaped([b, 1, w])
        for layer in layers.reversed() { g = layer.backward(g) }  // [B, 1 + P, w]
        var dPatches = Tensor(uninitializedShape: [b, w, patchGrid.bands, patchGrid.frames])
        let l = p + 1
        g.withUnsafePointer { gp in
            dPatches.withUnsafeMutablePointer { dp in
                clsToken.grad.withUnsafeMutablePointer { clsGrad in
                    positionEmbedding.grad.withUnsafeMutablePointer { posGrad in
                        for s in 0..<b {
                            let rows = gp + s * l * w
                            for j in 0..<w {
                                clsGrad[j] += rows[j]
                                posGrad[j] += rows[j]
                            }
                            for k in 0..<p {
                                for c in 0..<w {
                                    let v = rows[(k + 1) * w + c]
                                    dp[(s * w + c) * p + k] = v
                                    posGrad[(k + 1) * w + c] += v
                                }
                            }
                        }
                    }
                }
            }
        }
        lastBatch = 0
        guard let dx = patchEmbed.backward(dPatches, inputGradient: inputGradient) else { return nil }
        return dx.reshaped([b, melBands, frames])
    }
}
