import Foundation
import MulanCore
@testable import MulanMedia
import Testing

/// The fingerprinter brings any rate to Chromaprint's 11025 Hz itself (libswresample, in blocks);
/// what it computes must not depend on how the stream is cut into chunks, nor on the rate it comes at.
@Suite("Chromaprint fingerprinter")
struct FingerprinterTests {
    /// Notes with harmonics changing every 0.2–0.5 s, at `rate`, the same music at any rate.
    static func music(seconds: Double, rate: Int, seed: UInt64 = 7) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Double {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Double(state >> 11) / Double(1 << 53)
        }
        var out: [Float] = []
        out.reserveCapacity(Int(seconds * Double(rate)))
        var t0 = 0.0
        while t0 < seconds {
            let length = 0.2 + 0.3 * next()
            let notes = (0..<3).map { _ in 110 * pow(2, Double(Int(next() * 36)) / 12) }
            let end = min(seconds, t0 + length)
            let first = Int((t0 * Double(rate)).rounded(.up)), last = Int((end * Double(rate)).rounded(.up))
            for i in first..<last {
                let t = Double(i) / Double(rate) - t0
                let envelope = min(1, t * 40) * exp(-2 * t)
                var x = 0.0
                for f in notes { x += sin(2 * .pi * f * t) + 0.4 * sin(4 * .pi * f * t) }
                out.append(Float(0.15 * envelope * x))
            }
            t0 = end
        }
        return out
    }

    static func fingerprint(_ samples: [Float], rate: Int, chunk: Int, gain: Float = 1) -> Fingerprint {
        let f = Fingerprinter(sampleRate: rate)
        samples.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let n = min(chunk, all.count - start)
                f.feed(UnsafeBufferPointer(rebasing: all[start..<start + n]), gain: gain)
                start += n
            }
        }
        return f.finish()
    }

    /// Bit error rate of two raw fingerprints at their best offset within ±4 items.
    static func bitErrorRate(_ a: [UInt32], _ b: [UInt32]) -> Double {
        var best = 1.0
        for off in -4...4 {
            var bits = 0, n = 0
            for i in a.indices where i + off >= 0 && i + off < b.count {
                bits += (a[i] ^ b[i + off]).nonzeroBitCount
                n += 1
            }
            if n > 50 { best = min(best, Double(bits) / Double(32 * n)) }
        }
        return best
    }

    @Test func chunkingDoesNotChangeTheFingerprint() {
        let x = Self.music(seconds: 40, rate: 16000)
        let whole = Self.fingerprint(x, rate: 16000, chunk: x.count)
        #expect(whole.status == .ok)
        #expect(whole.items.count > 300)
        #expect(abs(whole.durationSeconds - 40) < 0.001)
        for chunk in [333, 8192, 8193, 20_000] {
            let f = Self.fingerprint(x, rate: 16000, chunk: chunk)
            #expect(f.items == whole.items, "chunk \(chunk)")
            #expect(f.status == whole.status)
        }
    }

    @Test func gainIsAppliedBeforeRounding() {
        let x = Self.music(seconds: 20, rate: 16000)
        let scaled = Self.fingerprint(x.map { $0 * 0.5 }, rate: 16000, chunk: 5000)
        let byGain = Self.fingerprint(x, rate: 16000, chunk: 5000, gain: 0.5)
        #expect(byGain.items == scaled.items)
        // Far below the silence level, it is silent; the level is measured after the gain.
        #expect(Self.fingerprint(x, rate: 16000, chunk: 5000, gain: 1e-4).status == .silent)
    }

    /// The same music at 11025 Hz (fed to Chromaprint unresampled), 16 kHz and 48 kHz.
    @Test(arguments: [16000, 48000])
    func ratesAgree(rate: Int) {
        let native = Self.fingerprint(Self.music(seconds: 30, rate: 11025), rate: 11025, chunk: 4096)
        let other = Self.fingerprint(Self.music(seconds: 30, rate: rate), rate: rate, chunk: 4096)
        #expect(native.status == .ok && other.status == .ok)
        #expect(abs(native.items.count - other.items.count) <= 2)
        let ber = Self.bitErrorRate(native.items, other.items)
        #expect(ber < 0.05, "bit error rate \(ber) at \(rate) Hz")
    }
}
