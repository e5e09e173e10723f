import MulanTensor

/// The pitch-class branch of `mulan-train --pitch-profiles K` (docs/training.md, "Pitch-class
/// branch"): it adds what a window's 12-bin pitch-class profile (`PitchClassProfile`) says to the
/// audio tower's embedding, the same for every transposition of the input.
///
///     z       = (c − mean c) / std c                                   per window, 12 bins (0 when std < 1e-6)
///     s[k, r] = (1/12) Σ_j profiles[k, j] · z[(j + r) mod 12]            K learned profiles, 12 rotations
///     f[k]    = max_r s[k, r]                                           first r on ties
///     u       = proj(norm(f))                                           batch norm over K, Linear K → embeddingDim
///     e       = L2-normalize(a + u)                                     a: the tower's unit-norm embedding
///
/// Rows 0 and 1 of `profiles` start as Krumhansl and Kessler's major and minor key profiles
/// (standardized, so f starts as the best Pearson correlation with a major and a minor key), further
/// rows N(0, 1); `proj` starts at zero, so a fresh branch leaves the tower's embedding as it is.
///
/// The batch norm (`norm`: PyTorch's BatchNorm1d, ε 1e-5, momentum 0.1; running statistics in
/// inference) is there because the correlations differ little between windows: tonal music
/// correlates well with every key profile, and what tells major from minor is a difference of a
/// tenth or two between them. Standardized, that difference is what the projection sees, and a step
/// of the optimizer moves the embedding along it as much as along anything else.
public final class PitchClassBranch: Module {
    public static let classes = 12
    /// Krumhansl & Kessler's probe-tone ratings (1982), tonic first.
    public static let krumhanslKesslerMajor: [Float] = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]
    public static let krumhanslKesslerMinor: [Float] = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]

    public let profileCount: Int
    public let profiles: Parameter
    public let norm: BatchNorm2d
    public let proj: Linear
    private let normalize = L2Normalize()
    /// What the backward pass needs of the last training forward: the standardized inputs [B, 12]
    /// and the winning rotation per (example, profile).
    private var standardized: [Float] = []
    private var rotations: [Int] = []

    public init(profiles k: Int, embeddingDim: Int, random: inout RandomSource) {
        precondition(k > 0, "a pitch-class branch needs at least one profile")
        profileCount = k
        var values = [Float](repeating: 0, count: k * Self.classes)
        for row in 0..<k {
            let start: [Float]
            switch row {
            case 0: start = Self.standardize(Self.krumhanslKesslerMajor)
            case 1: start = Self.standardize(Self.krumhanslKesslerMinor)
            default: start = (0..<Self.classes).map { _ in random.normal() }
            }
            for j in 0..<Self.classes { values[row * Self.classes + j] = start[j] }
        }
        profiles = Parameter(Tensor(shape: [k, Self.classes], values), decays: false)
        norm = BatchNorm2d(k)
        proj = Linear(k, embeddingDim, random: &random)
        proj.weight.value = Tensor(shape: proj.weight.value.shape)
        if let bias = proj.bias { bias.value = Tensor(shape: bias.value.shape) }
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("profiles", profiles)] + nest("norm", norm) + nest("proj", proj)
    }

    /// (c − mean) / population std over the 12 bins; all zeros when the std is below 1e-6.
    public static func standardize(_ c: some Collection<Float>) -> [Float] {
        let n = Float(c.count)
        let mean = c.reduce(0, +) / n
        let variance = c.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        let sd = variance.squareRoot()
        guard sd >= 1e-6 else { return [Float](repeating: 0, count: c.count) }
        return c.map { ($0 - mean) / sd }
    }

    /// f [B, K]: each profile's best correlation over the 12 rotations of each window's profile
    /// `pitchClasses` [B, 12].
    public func features(_ pitchClasses: Tensor, training: Bool) -> Tensor {
        let n = Self.classes, k = profileCount
        precondition(pitchClasses.shape.last == n, "pitch-class input must be [B, 12], not \(pitchClasses.shape)")
        let b = pitchClasses.count / n
        var f = Tensor(shape: [b, k])
        var z = [Float](repeating: 0, count: b * n)
        var best = [Int](repeating: 0, count: b * k)
        let p = profiles.value.storage
        for row in 0..<b {
            let zs = Self.standardize(pitchClasses.storage[(row * n)..<((row + 1) * n)])
            for j in 0..<n { z[row * n + j] = zs[j] }
            for profile in 0..<k {
                var top = -Float.infinity, at = 0
                for r in 0..<n {
                    var s: Float = 0
                    for j in 0..<n { s += p[profile * n + j] * zs[(j + r) % n] }
                    s /= Float(n)
                    if s > top { top = s; at = r }
                }
                f.storage[row * k + profile] = top
                best[row * k + profile] = at
            }
        }
        if training {
            standardized = z
            rotations = best
        }
        return f
    }

    /// L2-normalize(a + proj(norm(f))): the audio embedding with the branch, from the tower's unit-norm
    /// embedding `audio` [B, D] and the windows' profiles [B, 12].
    public func forward(audio: Tensor, pitchClasses: Tensor, training: Bool) -> Tensor {
        precondition(audio.shape[0] * Self.classes == pitchClasses.count,
                     "\(audio.shape[0]) audio embeddings but \(pitchClasses.count / Self.classes) pitch-class profiles")
        let f = features(pitchClasses, training: training)
        let b = f.shape[0], k = profileCount
        let normalized = norm.forward(f.reshaped([b, k, 1, 1]), training: training).reshaped([b, k])
        let u = proj.forward(normalized, training: training)
        var sum = audio
        for i in sum.storage.indices { sum.storage[i] += u.storage[i] }
        return normalize.forward(sum, training: training)
    }

    /// Adds the gradients of `profiles` and `proj` and returns the gradient with respect to the
    /// tower's embedding `audio`.
    public func backward(_ dEmbedding: Tensor) -> Tensor {
        let dSum = normalize.backward(dEmbedding)
        let n = Self.classes, k = profileCount
        let b = dSum.count / proj.outFeatures
        let df = norm.backward(proj.backward(dSum).reshaped([b, k, 1, 1])).reshaped([b, k])
        precondition(standardized.count == b * n, "PitchClassBranch.backward without a matching training forward")
        profiles.grad.withUnsafeMutablePointer { g in
            for row in 0..<b {
                for profile in 0..<k {
                    let d = df.storage[row * k + profile] / Float(n), r = rotations[row * k + profile]
                    guard d != 0 else { continue }
                    for j in 0..<n { g[profile * n + j] += d * standardized[row * n + (j + r) % n] }
                }
            }
        }
        return dSum
    }
}
