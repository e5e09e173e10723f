import Foundation
import MulanCore
@testable import MulanDedupe
import Testing

@Suite("dedupe matcher")
struct DedupeMatcherTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state ^ (state >> 29)
        }
        mutating func item() -> UInt32 { UInt32(truncatingIfNeeded: next() >> 16) }
        mutating func flip(_ x: UInt32, rate: Double) -> UInt32 {
            var x = x
            for bit in 0..<32 where Double(next() >> 11) / Double(1 << 53) < rate { x ^= 1 << UInt32(bit) }
            return x
        }
    }

    @Test func noisyCopiesAndEmbeddedSpansAreFoundWithTheirOffsets() {
        var rng = Rng(state: 7)
        let original = (0..<400).map { _ in rng.item() }
        let noisy = original.map { rng.flip($0, rate: 0.02) }
        // The original's items 100..<300 inside a longer fingerprint, starting at its item 150.
        let embedded = (0..<150).map { _ in rng.item() } + original[100..<300].map { rng.flip($0, rate: 0.02) }
            + (0..<120).map { _ in rng.item() }
        let distinct = (0..<20).map { _ in (0..<300).map { _ in rng.item() } }
        var stats = MatchStatistics()
        let matches = Matcher().match([original, noisy, embedded] + distinct, statistics: &stats)
        let pairs = Set(matches.map { "\($0.a)-\($0.b)" })
        #expect(pairs == ["0-1", "0-2", "1-2"])
        let m02 = matches.first { $0.a == 0 && $0.b == 2 }!
        #expect(m02.offset == 50)
        #expect(abs(m02.aStart - 100) <= 8 && abs(m02.aEnd - 300) <= 8)
        #expect(m02.bitErrorRate < 0.06)
        let m01 = matches.first { $0.a == 0 && $0.b == 1 }!
        #expect(m01.offset == 0 && m01.length >= 390)
    }

    @Test func constantZeroAndShortFingerprintsNeverMatch() {
        var rng = Rng(state: 9)
        let zeros = [UInt32](repeating: 0, count: 500)
        let constant = [UInt32](repeating: 0xDEAD_BEEF, count: 500)
        let twoValues = (0..<500).map { $0 % 2 == 0 ? UInt32(0x1234_5678) : 0x8765_4321 }
        let short = (0..<60).map { _ in rng.item() }
        var stats = MatchStatistics()
        let fingerprints = [zeros, zeros, constant, constant, twoValues, twoValues, short, short]
        #expect(Matcher().match(fingerprints, statistics: &stats).isEmpty)
        // Verification alone refuses them too, whatever the candidates.
        #expect(Matcher().verify(zeros, zeros, around: 0) == nil)
        #expect(Matcher().verify(twoValues, twoValues, around: 0) == nil)
        #expect(Matcher().verify(short, short, around: 0) == nil)
        #expect(Fingerprint.judge(zeros, itemSeconds: 0.124).0 == .lowInformation)
        #expect(Fingerprint.judge(short, itemSeconds: 0.124).0 == .tooShort)
        #expect(Fingerprint.judge((0..<200).map { _ in rng.item() }, itemSeconds: 0.124).0 == .ok)
    }

    @Test func passesByKeyRangeGiveTheSameMatches() {
        var rng = Rng(state: 11)
        var fingerprints: [[UInt32]] = []
        for i in 0..<60 {
            if i % 6 == 5 {
                fingerprints.append(fingerprints[i - 3].map { rng.flip($0, rate: 0.03) })
            } else {
                fingerprints.append((0..<250).map { _ in rng.item() })
            }
        }
        var one = MatchStatistics(), many = MatchStatistics()
        var settings = MatchSettings()
        let a = Matcher(settings: settings).match(fingerprints, statistics: &one)
        settings.maxPostingsPerPass = 1000
        let b = Matcher(settings: settings).match(fingerprints, statistics: &many)
        #expect(many.passes > 1 && one.passes == 1)
        #expect(a == b)
        #expect(a.count == 10)
    }

    @Test func unionFindGroups() {
        var uf = UnionFind(6)
        uf.union(0, 1); uf.union(3, 4); uf.union(1, 4)
        #expect(uf.find(0) == uf.find(3))
        #expect(uf.find(2) != uf.find(0))
        #expect(uf.find(5) == 5)
    }
}
