/// The exact GELU of BERT: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)), element-wise.
///
/// A training forward keeps the derivative Φ(x) + x·φ(x) (φ the standard normal density), so the
/// backward pass is one multiplication.
///
/// Φ is computed in branch-free arithmetic that the compiler vectorizes (libm's `erff` and `expf`
/// made GELU a fifth of the text tower's time): for u = |x|, Φ(−u) = exp(−u²/2) · t·P(t) with
/// t = 1/(1 + 0.3u) and P a degree-8 polynomial fitted to relative error 8e-8 on [0, 13]
/// (3e-7 evaluated in Float), and exp by range reduction with a degree-7 Taylor polynomial.
/// Beyond |x| = 13, Φ is 0 or 1 in Float.
public final class GELU: Module {
    private var derivative = Tensor(shape: [0])
    static let chunk = 4096

    public init() {}
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }

    public func forward(_ x: Tensor, training: Bool = true) -> Tensor {
        let n = x.count
        var y = Tensor(shape: x.shape)
        // (One element when not training, so that the buffer has an address.)
        var dydx = Tensor(shape: training ? x.shape : [1])
        let chunks = (n + Self.chunk - 1) / Self.chunk
        x.withUnsafePointer { xp in
            y.withUnsafeMutablePointer { yp in
                dydx.withUnsafeMutablePointer { dp in
                    Parallel.forEach(chunks) { c in
                        let i0 = c * Self.chunk, i1 = min(n, i0 + Self.chunk)
                        if training {
                            for i in i0..<i1 {
                                let v = xp[i]
                                let (cdf, density) = normalCDFAndDensity(v)
                                yp[i] = v * cdf
                                dp[i] = cdf + v * density
                            }
                        } else {
                            for i in i0..<i1 {
                                let v = xp[i]
                                yp[i] = v * normalCDFAndDensity(v).cdf
                            }
                        }
                    }
                }
            }
        }
        derivative = training ? dydx : Tensor(shape: [0])
        return y
    }

    public func backward(_ dy: Tensor) -> Tensor {
        precondition(dy.count == derivative.count, "GELU.backward without a matching forward")
        var dx = Tensor(shape: derivative.shape)
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

/// Φ(x) and φ(x) = exp(−x²/2)/√(2π) of the standard normal distribution (see `GELU`).
@inline(__always)
fileprivate func normalCDFAndDensity(_ x: Float) -> (cdf: Float, density: Float) {
    let u = min(abs(x), 13)
    let e = expNonPositive(-0.5 * u * u)
    let t = 1 / (1 + 0.3 * u)
    var p: Float = 3.339537834e-03
    p = p * t + 2.098957067e-02
    p = p * t - 1.300987052e-01
    p = p * t + 1.790577372e-01
    p = p * t - 3.736540779e-02
    p = p * t + 1.226660156e-01
    p = p * t + 1.011624090e-01
    p = p * t + 1.206131770e-01
    p = p * t + 1.196357042e-01
    let lower = e * t * p  // Φ(−u)
    return (x < 0 ? lower : 1 - lower, e * 0.39894228040143267794)
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
