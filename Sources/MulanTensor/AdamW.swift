import Foundation

/// AdamW (Loshchilov & Hutter): Adam moments with decoupled weight decay, applied to the
/// trainable parameters given at construction; the step count and both moments are state a
/// checkpoint saves.
public final class AdamW {
    public struct Settings: Codable, Sendable, Equatable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0.01
        public init() {}
    }

    public let settings: Settings
    public let parameters: [(name: String, parameter: Parameter)]
    /// Each parameter's factor on the learning rate of `update(lr:)`, in the order of `parameters`
    /// (weight decay scales with it, as in PyTorch's parameter groups).
    public let learningRateScales: [Float]
    /// First and second moments, by parameter name.
    public var m: [String: Tensor]
    public var v: [String: Tensor]
    public var step = 0

    /// `learningRateScale` gives a parameter's factor on the learning rate, by its name (default 1 for all).
    public init(_ parameters: [(name: String, parameter: Parameter)], settings: Settings = Settings(),
                learningRateScale: (String) -> Float = { _ in 1 }) {
        self.parameters = parameters.filter { $0.parameter.trainable }
        learningRateScales = self.parameters.map { learningRateScale($0.name) }
        self.settings = settings
        m = [:]
        v = [:]
        for (name, p) in self.parameters {
            m[name] = Tensor(shape: p.value.shape)
            v[name] = Tensor(shape: p.value.shape)
        }
    }

    /// The global L2 norm of all gradients.
    public func gradientNorm() -> Float {
        var s = 0.0
        for (_, p) in parameters { for g in p.grad.storage { s += Double(g) * Double(g) } }
        return Float(s.squareRoot())
    }

    /// Scales all gradients so that their global norm is at most `maxNorm`; returns the norm before.
    @discardableResult
    public func clipGradients(maxNorm: Float) -> Float {
        let norm = gradientNorm()
        if norm > maxNorm && norm.isFinite {
            let k = maxNorm / norm
            for (_, p) in parameters { for i in p.grad.storage.indices { p.grad.storage[i] *= k } }
        }
        return norm
    }

    /// One update with learning rate `lr`.
    public func update(lr: Float) {
        step += 1
        let b1 = settings.beta1, b2 = settings.beta2
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(step)))
        let c2 = 1 - Float(Foundation.pow(Double(b2), Double(step)))
        let items = parameters
        // The update itself: element-wise, parallel over chunks of each large tensor.
        for ((name, p), scale) in zip(items, learningRateScales) {
            let lr = lr * scale
            let decay = p.decays ? settings.weightDecay : 0
            let n = p.value.count
            m[name]!.withUnsafeMutablePointer { mp in
                v[name]!.withUnsafeMutablePointer { vp in
                    p.value.withUnsafeMutablePointer { wp in
                        p.grad.withUnsafePointer { gp in
                            let chunk = 1 << 16
                            let parts = (n + chunk - 1) / chunk
                            let box = Pointers(m: mp, v: vp, w: wp, g: gp)
                            Parallel.forEach(parts) { c in
                                let lo = c * chunk, hi = min(n, lo + chunk)
                                for i in lo..<hi {
                                    let g = box.g[i]
                                    box.m[i] = b1 * box.m[i] + (1 - b1) * g
                                    box.v[i] = b2 * box.v[i] + (1 - b2) * g * g
                                    let mh = box.m[i] / c1, vh = box.v[i] / c2
                                    box.w[i] -= lr * (mh / (vh.squareRoot() + settings.epsilon) + decay * box.w[i])
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private struct Pointers {
        let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
        let w: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>
    }
}

/// Linear warm-up to the peak rate, then cosine decay to `minimum` at `totalSteps`.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public var peak: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minimum: Float

    public init(peak: Float, warmupSteps: Int, totalSteps: Int, minimum: Float = 0) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minimum = minimum
    }

    /// The rate for 0-based step `step`.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        return minimum + (peak - minimum) * Float(0.5 * (1 + Foundation.cos(Double.pi * progress)))
    }
}
