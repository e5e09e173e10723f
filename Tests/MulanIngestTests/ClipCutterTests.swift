import MulanCore
@testable import MulanIngest
import Testing

@Suite("Cutting clips")
struct ClipCutterTests {
    func settings(clip: Double = 3, min: Double? = nil, max: Int? = nil) -> IngestSettings {
        var s = IngestSettings()
        s.sampleRate = 16000
        s.clipSeconds = clip
        s.minClipSeconds = min ?? clip
        s.maxClipsPerTrack = max
        return s
    }

    /// Feeds `total` samples whose value encodes their position, in uneven chunks.
    func cut(_ s: IngestSettings, total: Int, expected: Int? = nil) -> (clips: [ClipAudio], dropped: Int) {
        let cutter = ClipCutter(settings: s, expectedSamples: expected ?? total)
        var clips: [ClipAudio] = []
        var position = 0
        var chunk = 1000
        while position < total {
            let n = min(chunk, total - position)
            let samples = (position..<(position + n)).map { Float($0) }
            samples.withUnsafeBufferPointer { cutter.append($0) { clips.append($0) } }
            position += n
            chunk = chunk * 7 % 4093 + 1
        }
        cutter.finish { clips.append($0) }
        return (clips, cutter.droppedTailSamples)
    }

    @Test func fullClipsOnlyByDefault() {
        let (clips, dropped) = cut(settings(), total: 16000 * 10 + 5)
        #expect(clips.map(\.index) == [0, 1, 2])
        #expect(clips.allSatisfy { $0.samples.count == 48000 })
        #expect(clips[1].startSample == 48000)
        #expect(clips[1].samples.first == 48000 && clips[1].samples.last == 95999)
        #expect(dropped == 16000 + 5)
    }

    @Test func tailKeptWhenLongEnough() {
        let (clips, dropped) = cut(settings(min: 1), total: 16000 * 10)
        #expect(clips.map(\.samples.count) == [48000, 48000, 48000, 16000])
        #expect(dropped == 0)
        let (short, droppedShort) = cut(settings(min: 1.5), total: 16000 * 10)
        #expect(short.count == 3)
        #expect(droppedShort == 16000)
    }

    @Test func shorterThanOneClip() {
        let (clips, dropped) = cut(settings(), total: 20000)
        #expect(clips.isEmpty)
        #expect(dropped == 20000)
    }

    @Test func evenlySpacedSelection() {
        #expect(ClipCutter.evenlySpaced(3, of: 10) == [1, 5, 8])
        #expect(ClipCutter.evenlySpaced(1, of: 10) == [5])
        let (clips, _) = cut(settings(max: 2), total: 48000 * 8)
        #expect(clips.map(\.index) == [2, 6])
        #expect(clips[0].samples.first == Float(2 * 48000))
        // Fewer candidates than the maximum: all are kept.
        #expect(cut(settings(max: 5), total: 48000 * 3).clips.count == 3)
        // Unknown duration: the first N.
        let cutter = ClipCutter(settings: settings(max: 2), expectedSamples: nil)
        var got: [Int] = []
        let samples = [Float](repeating: 0.5, count: 48000 * 4)
        samples.withUnsafeBufferPointer { cutter.append($0) { got.append($0.index) } }
        #expect(got == [0, 1])
        #expect(cutter.isDone)
    }

    @Test func statsAndSilence() {
        var s = IngestSettings()
        let zeros = [Float](repeating: 0, count: 1000)
        let z = zeros.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        #expect(z.rms == 0 && z.peak == 0 && z.silenceShare == 1)
        #expect(z.isSilent(s))
        let square = (0..<1000).map { $0 % 2 == 0 ? Float(0.5) : -0.5 }
        let q = square.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        #expect(abs(q.rms - 0.5) < 1e-9 && q.peak == 0.5 && q.silenceShare == 0)
        #expect(abs(q.rmsDB - (-6.0206)) < 1e-3)
        #expect(!q.isSilent(s))
        // Quiet but audible noise is not silent at -60 dBFS; it is at -40.
        let quiet = (0..<1000).map { $0 % 2 == 0 ? Float(0.002) : -0.002 }
        let stats = quiet.withUnsafeBufferPointer { ClipStats(measuring: $0) }
        #expect(!stats.isSilent(s))
        s.silenceThresholdDB = -40
        #expect(stats.isSilent(s))
        // Mostly digital silence with a blip counts as silent.
        var blip = [Float](repeating: 0, count: 1000)
        for i in 0..<50 { blip[i] = 0.9 }
        #expect(blip.withUnsafeBufferPointer { ClipStats(measuring: $0) }.isSilent(IngestSettings()))
    }

    @Test func settingsValidation() {
        var s = IngestSettings()
        #expect(throws: Never.self) { try s.validate() }
        s.sampleRate = 11025
        #expect(throws: MulanError.self) { try s.validate() }
        s = IngestSettings()
        s.minClipSeconds = 31
        #expect(throws: MulanError.self) { try s.validate() }
        #expect(IngestSettings().key(startSeconds: nil, endSeconds: nil)
                != IngestSettings().key(startSeconds: 1, endSeconds: nil))
    }
}
