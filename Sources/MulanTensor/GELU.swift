/// The exact GELU of BERT: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)), element-wise.
///
/// A training forward keeps the derivative Φ(x) + x·φ(x) (φ the standard normal density), so the
/// backward pass is one multiplication.
///
/// Φ is computed in branch-free arithmetic that the compiler vectorizes (libm's `erff` and `expf`
/// made GELU a fifth of the text tower's time): erf(z) = z·P(z²)/Q(z²) on |z| ≤ 4 (beyond, erf is ±1
/// in Float), P and Q of degree 5 in z², fitted minimax to an absolute error of 8e-8 (3.7e-7 when
/// evaluated in Float; the value of GELU is within 1.8e-7·max(1, |x|) of the exact one). That is the
/// form PyTorch computes (1 + erf, whose erf has an absolute error of about 1e-7) and about half the
/// arithmetic of an exp-based tail formula. The density φ of the derivative uses `expNonPositive`.
/// Training and inference forwards give the same values, bit for bit.
public final class GELU: Module {
    private var derivative = Tensor(shape: [0])
    static let chunk = 4096

    public init() {}
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        let n = x.count
        var y = Tensor(uninitializedShape: x.shape)
        // (One element when not training, so that the buffer has an address.)
        var dydx = Tensor(uninitializedShape: training ? x.shape : [1])
        let chunks = (n + Self.chunk - 1) / Self.chunk
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                dydx.withUnsafeMutablePointer { dp in
                    Parallel.forEach(chunks) { c in
                        let i0 = c * Self.chunk, i1 = min(n, i0 + Self.chunk)
                        if training {
                            for i in i0..<i1 {
                                let v = xp[i]
                                let cdf = normalCDF(v)
                                yp[i] = v * cdf
                                dp[i] = cdf + v * (expNonPositive(-0.5 * v * v) * 0.39894228040143267794)
                            }
                        } else {
                            geluValues(xp + i0, yp + i0, i1 - i0)
                        }
                    }
                }
            }
        }
        derivative = training ? dydx : Tensor(shape: [0])
        return y
    }

    /// Inference in place: x ← GELU(x) (the values of `forward`), on `BLAS.threads` threads.
    public static func applyInPlace(_ x: inout Tensor) {
        let n = x.count
        let chunks = (n + chunk - 1) / chunk
        x.withUnsafeMutablePointer { xp in
            Parallel.forEach(chunks) { c in
                let i0 = c * chunk, i1 = min(n, i0 + chunk)
                geluValues(xp + i0, xp + i0, i1 - i0)
            }
        }
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == derivative.count, "GELU.backward without a matching forward")
        var dx = Tensor(uninitializedShape: derivative.shape)
        let n = dy.count
        let chunks = (n + Self.chunk - 1) / Self.chunk
        dy.withUnsafePointer { gp in
            derivative.withUnsafePointer { dp in
                dx.withUnsafeMutablePointer { xp in
                    Parallel.forEach(chunks) { c in
                        let i0 = c * Self.chunk, i1 = min(n, i0 + Self.chunk)
                        for i in i0..<i1 { xp[i] = gp[i] * dp[i] }
                    }
                }
            }
        }
        return dx
    }
}

/// y[i] = x[i]·Φ(x[i]) for i in 0..<n (y may be x).
@inline(__always)
fileprivate func geluValues(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n {
        let v = x[i]
        y[i] = v * normalCDF(v)
    }
}

/// Φ(x) = 0.5·(1 + erf(x/√2)) (see `GELU`).
@inline(__always)
fileprivate func normalCDF(_ x: Float) -> Float {
    let z = min(max(x * 0.70710678118654752, -4), 4)
    let s = z * z
    var p: Float = 1.955346078830189e-06
    p = p * s + 2.9152040951885283e-04
    p = p * s + 4.142167512327433e-03
    p = p * s + 5.389713868498802e-02
    p = p * s + 1.994164139032364e-01
    p = p * s + 1.128378987312317
    var q: Float = 3.7460758903762326e-05
    q = q * s + 1.2506003258749843e-03
    q = q * s + 1.572204940021038e-02
    q = q * s + 1.1779490858316422e-01
    q = q * s + 5.10059118270874e-01
    q = q * s + 1
    return 0.5 + 0.5 * (z * p / q)
}

/// e^a for a ≤ 0 (a below −87 counts as −87, e⁻⁸⁷ ≈ 1.6e-38), without branches or calls, so loops
/// over it vectorize (also the attention softmax's exp): a = n·ln 2 + r with |r| ≤ ln 2 / 2 (n found by
/// the 1.5·2²³ rounding trick), e^r by a degree-7 Taylor polynomial (relative error 5e-9), and 2ⁿ
/// built in the exponent bits.
@inline(__always)
func expNonPositive(_ a: Float) -> Float {
    let a = max(a, -87)
    let shifter: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer in the low mantissa bits
    let k = a * 1.44269504088896341 + shifter
    let n = k - shifter
    let r = (a - n * 0.693145751953125) - n * 1.42860682030941723e-06
    var p: Float = 1.0 / 5040
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // n = k.bitPattern − shifter.bitPattern (as a signed integer); 2ⁿ has exponent bits n + 127.
    let scale = Float(bitPattern: (k.bitPattern &- shifter.bitPattern &+ 127) << 23)
    return p * scale
}
