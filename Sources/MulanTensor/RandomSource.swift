import Foundation

/// A seeded random number generator (SplitMix64) whose whole state is one `UInt64`, so a
/// checkpoint can store it and a resumed run draws the same numbers.
public struct RandomSource: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func unitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func unitDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// A standard normal draw (Box–Muller; one of the pair is discarded to keep the state a single word).
    public mutating func normal() -> Float {
        let u1 = max(unitDouble(), 1e-300), u2 = unitDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// An independent generator derived from this one's next draw and a label.
    public mutating func split(_ label: UInt64 = 0) -> RandomSource {
        RandomSource(seed: next() ^ (label &* 0xD1B5_4A32_D192_ED03))
    }
}
