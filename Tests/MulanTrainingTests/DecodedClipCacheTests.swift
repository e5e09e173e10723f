import Foundation
import MulanCore
import Testing
@testable import MulanTraining

@Suite("mulan-train --decoded-cache: decoded clips kept between draws")
struct DecodedClipCacheTests {
    /// Samples on the 16-bit grid, as a FLAC clip decodes: k / 32768.
    static func clip(_ n: Int, seed: Int) -> [Float] {
        (0..<n).map { Float(Int16(truncatingIfNeeded: ($0 &* 7919 &+ seed &* 104_729) % 65_536 - 32_768)) / 32768 }
    }

    @Test func levelsGiveBackTheSameFloats() {
        let x = Self.clip(5000, seed: 3) + [-1, 0, 32767.0 / 32768]
        let k = DecodedClipCache.levels(x)
        #expect(k != nil)
        #expect(DecodedClipCache.floats(k ?? []) == x)
        // Not on the grid (audio decoded with resampling), or outside it: not kept as levels.
        #expect(DecodedClipCache.levels([0.5, 0.1]) == nil)
        #expect(DecodedClipCache.levels([1.0]) == nil)
        #expect(DecodedClipCache.levels([.nan]) == nil)
    }

    @Test func keepsClipsWithinItsLimitAndDecodesTheRestEachTime() throws {
        // 1 MiB holds one clip of 400,000 samples (800,000 bytes), not two.
        let cache = DecodedClipCache(capacityMiB: 1)
        var decodes: [Int: Int] = [:]
        let clips = [0: Self.clip(400_000, seed: 1), 1: Self.clip(400_000, seed: 2)]
        for _ in 0..<3 {
            for id in [0, 1] {
                let got = try cache.samples(.init(shard: 0, offset: id)) { () throws(MulanError) in
                    decodes[id, default: 0] += 1
                    return clips[id]!
                }
                #expect(got == clips[id]!)
            }
        }
        #expect(decodes == [0: 1, 1: 3])
        let stats = cache.statistics
        #expect(stats == DecodedCacheStatistics(capacityBytes: 1 << 20, clips: 1, bytes: 800_000, hits: 2, misses: 4))
        // A clip off the 16-bit grid (24-bit FLAC) is kept as its floats, 4 bytes a sample.
        let off = DecodedClipCache(capacityMiB: 8)
        var offDecodes = 0
        let fine: [Float] = [0.3, -0.7, Float(3) / 8_388_608]
        for _ in 0..<2 {
            let got = try off.samples(.init(shard: 1, offset: 0)) { () throws(MulanError) in
                offDecodes += 1
                return fine
            }
            #expect(got == fine)
        }
        #expect(offDecodes == 1 && off.statistics.clips == 1 && off.statistics.bytes == 12)
        // A decoding error reaches the caller and nothing is kept.
        #expect(throws: MulanError.self) {
            try off.samples(.init(shard: 2, offset: 0)) { () throws(MulanError) -> [Float] in throw MulanError(.media, "damaged") }
        }
        #expect(off.statistics.clips == 1)
    }
}
