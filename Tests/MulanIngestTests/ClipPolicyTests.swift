import MulanCore
@testable import MulanIngest
import Testing

@Suite("Clip policies")
struct ClipPolicyTests {
    func settings(clip: Double = 30, min: Double? = nil, policy: ClipPolicy = .all, seed: UInt64 = 0) -> IngestSettings {
        var s = IngestSettings()
        s.sampleRate = 16000
        s.clipSeconds = clip
        s.minClipSeconds = min ?? clip
        s.clipPolicy = policy
        s.clipSeed = seed
        return s
    }

    func plan(_ policy: ClipPolicy, seconds: Double, min: Double? = nil, seed: UInt64 = 0, track: String = "t") -> ClipPlan? {
        ClipPlan(policy: policy, totalSamples: Int(seconds * 16000), settings: settings(min: min, policy: policy, seed: seed),
                 trackID: track)
    }

    @Test func parsesEveryPolicyAndRejectsOthers() throws {
        for text in ["all", "center", "random", "evenly:3", "best:2"] {
            #expect(try ClipPolicy(parsing: text).description == text)
        }
        #expect(try ClipPolicy(parsing: "Centre") == .center)
        for bad in ["", "middle", "evenly", "evenly:0", "best:-1", "best:x", "center:2", "all:1"] {
            #expect(throws: MulanError.self, "\(bad)") { try ClipPolicy(parsing: bad) }
        }
    }

    @Test func centerIsTheMiddleWindow() throws {
        let p = try #require(plan(.center, seconds: 240))
        #expect(p.windows == [ClipWindow(index: 0, start: 105 * 16000, count: 30 * 16000)])
        // Odd slack: floor((T − C) / 2).
        let odd = try #require(ClipPlan(policy: .center, totalSamples: 480_001 + 480_000, settings: settings(policy: .center),
                                        trackID: "t"))
        #expect(odd.windows.first?.start == 240_000)
        // A track shorter than a clip but at least --min-clip-seconds: all of it; shorter: nothing.
        #expect(plan(.center, seconds: 20, min: 10)?.windows == [ClipWindow(index: 0, start: 0, count: 20 * 16000)])
        #expect(plan(.center, seconds: 20)?.windows == [])
    }

    @Test func evenlyPicksTheGridClipsOfMaxClipsPerTrack() throws {
        let p = try #require(plan(.evenly(3), seconds: 300))
        #expect(p.windows.map(\.index) == ClipCutter.evenlySpaced(3, of: 10).sorted())
        #expect(p.windows.map(\.start) == [1, 5, 8].map { $0 * 30 * 16000 })
        #expect(plan(.evenly(5), seconds: 95)?.windows.map(\.index) == [0, 1, 2])
        #expect(plan(.evenly(5), seconds: 95)?.droppedTailSamples == 5 * 16000)
        #expect(plan(.all, seconds: 95)?.windows.count == 3)
        #expect(plan(.best(2), seconds: 95) == nil)
        var s = IngestSettings()
        s.maxClipsPerTrack = 4
        #expect(s.clipPolicy == .evenly(4))
    }

    @Test func randomIsDeterministicPerSeedAndTrack() throws {
        let a = try #require(plan(.random, seconds: 240, seed: 7, track: "artist/song.mp3")?.windows.first)
        let again = try #require(plan(.random, seconds: 240, seed: 7, track: "artist/song.mp3")?.windows.first)
        #expect(a == again)
        #expect(a.count == 30 * 16000 && a.start >= 0 && a.start <= 210 * 16000)
        let otherSeed = (0..<5).compactMap { plan(.random, seconds: 240, seed: UInt64(100 + $0), track: "artist/song.mp3")?.windows.first?.start }
        #expect(otherSeed.contains { $0 != a.start })
        let otherTracks = (0..<20).compactMap { plan(.random, seconds: 240, seed: 7, track: "track-\($0)")?.windows.first?.start }
        #expect(Set(otherTracks).count >= 15)
        // Spread over the whole track, not bunched.
        let starts = (0..<400).map { ClipPlan.randomStart(slack: 1000, seed: 3, trackID: "t\($0)") }
        #expect(starts.min()! < 50 && starts.max()! > 950)
        // A pinned value: the generator and the hash must not change silently (re-runs would
        // re-ingest every random-policy track).
        // (998123: FNV-1a 64 of "a", SplitMix64, second draw, computed independently in Python.)
        #expect(ClipPlan.randomStart(slack: 1_000_000, seed: 0, trackID: "a") == 998_123)
    }

    @Test func settingsKeyChangesWithThePolicy() {
        let all = settings().key(startSeconds: nil, endSeconds: nil)
        // `all` keeps the key ingest used before policies existed: upgrading re-ingests nothing.
        #expect(all == "v3;sr=16000;clip=30.0;min=30.0;max=all;silence=-60.0/0.9;flac=16;seg=-..-")
        let keys = [ClipPolicy.all, .center, .random, .evenly(2), .evenly(3), .best(2)].map {
            settings(policy: $0).key(startSeconds: nil, endSeconds: nil)
        }
        #expect(Set(keys).count == keys.count)
        #expect(settings(policy: .random, seed: 1).key(startSeconds: nil, endSeconds: nil)
                != settings(policy: .random, seed: 2).key(startSeconds: nil, endSeconds: nil))
        // The seed shapes only `random`.
        #expect(settings(policy: .center, seed: 1).key(startSeconds: nil, endSeconds: nil)
                == settings(policy: .center, seed: 2).key(startSeconds: nil, endSeconds: nil))
    }

    /// A model ranking of best:N is part of the key (and only of best:N's); loudness adds nothing.
    @Test func aModelRankingIsPartOfTheKey() throws {
        var s = settings(policy: .best(2))
        let loudness = s.key(startSeconds: nil, endSeconds: nil)
        #expect(loudness == "v3;sr=16000;clip=30.0;min=30.0;max=all;silence=-60.0/0.9;flac=16;seg=-..-;policy=best:2")
        s.clipRanking = "model-a"
        let a = s.key(startSeconds: nil, endSeconds: nil)
        s.clipRanking = "model-b"
        #expect(Set([loudness, a, s.key(startSeconds: nil, endSeconds: nil)]).count == 3)
        try s.validate()
        s.clipPolicy = .evenly(2)
        #expect(throws: MulanError.self) { try s.validate() }
    }

    /// Scores by a given table (keyed by the clip's length less 2: the scorer sees only samples),
    /// to check the ranking seam with another scorer than loudness.
    struct TableScorer: ClipScorer {
        var table: [Int: Double]
        var name: String { "table" }
        var key: String? { "table" }
        func score(_ samples: [Float], stats: ClipStats) -> Double { table[samples.count - 2] ?? -.infinity }
    }

    /// An audible clip (±0.1, −20 dBFS) of `i + 2` samples, as `TableScorer` reads it.
    static func tableClip(_ i: Int) -> ClipAudio {
        let samples = (0..<(i + 2)).map { Float($0 % 2 == 0 ? 0.1 : -0.1) }
        return ClipAudio(index: i, startSample: i * 10, samples: samples,
                         stats: samples.withUnsafeBufferPointer { ClipStats(measuring: $0) })
    }

    @Test func anyScorerRanksAndTheSummarySaysWhat() {
        let s = settings(clip: 1)
        let table = [0: 0.1, 1: 0.7, 2: 0.3, 3: 0.7, 4: 0.65]
        var best = BestClips(count: 2, scorer: TableScorer(table: table), settings: s)
        for i in 0..<5 {
            best.offer(Self.tableClip(i))
        }
        #expect(best.clips.map(\.index) == [1, 3])
        #expect(best.offered == 5)
        #expect(best.summary(scorer: TableScorer(table: table)) == "best:2 by table of 5 candidates: clip 1 (0.7000), clip 3 (0.7000)")
    }

    /// A clip ingest calls silent scores −∞ whatever the scorer would say, and the scorer is not
    /// asked (a model is not run on silence): it is kept only when there are not N audible clips.
    @Test func aSilentClipIsNotScored() {
        let s = settings(clip: 1)
        let silence = [Float](repeating: 0, count: 2)
        let silent = ClipAudio(index: 0, startSample: 0, samples: silence,
                               stats: silence.withUnsafeBufferPointer { ClipStats(measuring: $0) })
        let table = [0: 5.0, 1: 0.2]
        var one = BestClips(count: 1, scorer: TableScorer(table: table), settings: s)
        one.offer(silent)
        one.offer(Self.tableClip(1))
        #expect(one.clips.map(\.index) == [1])
        var two = BestClips(count: 2, scorer: TableScorer(table: table), settings: s)
        two.offer(silent)
        two.offer(Self.tableClip(1))
        #expect(two.summary(scorer: TableScorer(table: table)) == "best:2 by table of 2 candidates: clip 0 (-inf), clip 1 (0.2000)")
    }

    @Test func bestKeepsTheLoudestInTimeOrder() {
        let s = settings(clip: 1)
        func clip(_ i: Int, level: Float, silentShare: Double = 0) -> ClipAudio {
            let n = 1000
            let silent = Int(Double(n) * silentShare)
            let samples = (0..<n).map { j in j < silent ? Float(0) : level * (j % 2 == 0 ? 1 : -1) }
            return ClipAudio(index: i, startSample: i * n, samples: samples,
                             stats: samples.withUnsafeBufferPointer { ClipStats(measuring: $0) })
        }
        var best = BestClips(count: 2, settings: s)
        for c in [clip(0, level: 0.01), clip(1, level: 0.5), clip(2, level: 0.0), clip(3, level: 0.2),
                  clip(4, level: 0.5, silentShare: 0.5), clip(5, level: 0.2)] {
            best.offer(c)
        }
        // 1 (−6 dB) and 3 (−14 dB, earlier than the tie 5); 4 is loud but half silence (−6 − 30 dB).
        #expect(best.clips.map(\.index) == [1, 3])
        var fewer = BestClips(count: 3, settings: s)
        fewer.offer(clip(0, level: 0))
        fewer.offer(clip(1, level: 0.1))
        #expect(fewer.clips.map(\.index) == [0, 1])
    }
}
