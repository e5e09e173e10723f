import Foundation
import MulanCore
@testable import MulanMedia
import MulanTestSupport
import Testing

/// Decoded samples must equal `ffmpeg -i IN -ac 1 -ar RATE -f f32le -`, bit for bit.
@Suite("Decoder parity with the ffmpeg CLI")
struct DecoderParityTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var source: [String]    // ffmpeg input arguments (lavfi)
        var encode: [String]    // output codec arguments
        var ext: String
        var rate: Int
        var description: String { "\(name) → \(rate) Hz" }
    }

    static let stereo = ["-f", "lavfi", "-i", "sine=frequency=440:duration=6:sample_rate=44100",
                         "-f", "lavfi", "-i", "anoisesrc=d=6:r=44100:a=0.2:seed=7",
                         "-filter_complex", "[0][1]amerge=inputs=2"]
    static let cases: [Case] = [
        Case(name: "mp3 stereo 44.1k", source: stereo, encode: ["-c:a", "libmp3lame", "-b:a", "128k"], ext: "mp3", rate: 16000),
        Case(name: "vorbis stereo", source: stereo, encode: ["-c:a", "libvorbis"], ext: "ogg", rate: 16000),
        Case(name: "opus stereo", source: stereo, encode: ["-c:a", "libopus"], ext: "opus", rate: 16000),
        Case(name: "aac m4a stereo", source: stereo, encode: ["-c:a", "aac"], ext: "m4a", rate: 16000),
        Case(name: "flac 5.1 48k", source: ["-f", "lavfi", "-i", "anoisesrc=d=5:r=48000:a=0.3:seed=3",
                                            "-af", "pan=5.1|c0=c0|c1=0.5*c0|c2=0.3*c0|c3=0.1*c0|c4=0.2*c0|c5=0.7*c0"],
             encode: ["-c:a", "flac"], ext: "flac", rate: 16000),
        Case(name: "wav mono 8k s16", source: ["-f", "lavfi", "-i", "anoisesrc=d=5:r=8000:a=0.3:seed=5"],
             encode: ["-c:a", "pcm_s16le"], ext: "wav", rate: 16000),
        Case(name: "wav stereo 48k float", source: ["-f", "lavfi", "-i", "sine=frequency=1000:duration=4:sample_rate=48000",
                                                    "-ac", "2"],
             encode: ["-c:a", "pcm_f32le"], ext: "wav", rate: 48000),
        Case(name: "mp3 stereo → 22.05k", source: stereo, encode: ["-c:a", "libmp3lame"], ext: "mp3", rate: 22050),
        Case(name: "vorbis stereo → 24k", source: stereo, encode: ["-c:a", "libvorbis"], ext: "ogg", rate: 24000),
    ]

    static func decodeAll(_ path: String, rate: Int) throws -> [Float] {
        let decoder = try AudioDecoder(path: path, outputSampleRate: rate)
        var samples: [Float] = []
        _ = try decoder.decode { chunk in
            samples.append(contentsOf: chunk)
            return true
        }
        return samples
    }

    @Test(arguments: cases)
    func samplesEqualFFmpegCLI(_ c: Case) throws {
        let dir = TempDir()
        let file = dir.file("input.\(c.ext)")
        try TestProcess.ffmpeg(c.source + c.encode + [file])
        let reference = try TestProcess.ffmpegDecode(file, rate: c.rate)
        let ours = try Self.decodeAll(file, rate: c.rate)
        #expect(ours.count == reference.count)
        let mismatches = zip(ours, reference).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(mismatches == 0, "\(mismatches) of \(reference.count) samples differ")
        #expect(reference.count > 0)
    }

    @Test func segmentMatchesTrimmedReference() throws {
        let dir = TempDir()
        let file = dir.file("seg.ogg")
        try TestProcess.ffmpeg(Self.stereo + ["-c:a", "libvorbis", file])
        let full = try TestProcess.ffmpegDecode(file, rate: 16000)
        let decoder = try AudioDecoder(path: file, outputSampleRate: 16000)
        var part: [Float] = []
        _ = try decoder.decode(startSeconds: 1.5, endSeconds: 4.0) { part.append(contentsOf: $0); return true }
        #expect(part.count == 40000)
        #expect(Array(full[24000..<64000]) == part)
    }

    @Test func downmixGainMatchesLibswresampleNormalization() throws {
        let dir = TempDir()
        var gains: [Double] = []
        for (name, layout) in [("mono.wav", "mono"), ("stereo.wav", "stereo"), ("surround.wav", "5.1")] {
            try TestProcess.ffmpeg(["-f", "lavfi", "-i", "anoisesrc=d=1:r=16000:a=0.1:seed=2", "-af",
                                    "aformat=channel_layouts=\(layout)", dir.file(name)])
            let decoder = try AudioDecoder(path: dir.file(name), outputSampleRate: 16000)
            _ = try decoder.decode { _ in true }
            gains.append(decoder.downmixGain)
        }
        #expect(gains[0] == 1)
        #expect(abs(gains[1] - 0.5.squareRoot()) < 1e-12)
        #expect(gains[2] < gains[1] && gains[2] > 0)
    }

    @Test func probeReadsContainerFacts() throws {
        let dir = TempDir()
        let file = dir.file("tagged.mp3")
        try TestProcess.ffmpeg(Self.stereo + ["-c:a", "libmp3lame", "-metadata", "title=Blue Tune",
                                              "-metadata", "genre=Jazz", "-metadata", "comment=late night, slow", file])
        let probe = try AudioDecoder(path: file, outputSampleRate: 16000).probe
        #expect(probe.container == "mp3")
        #expect(probe.codec.hasPrefix("mp3"))
        #expect(probe.sampleRate == 44100)
        #expect(probe.channels == 2)
        #expect(abs((probe.durationSeconds ?? 0) - 6) < 0.1)
        let tags = Dictionary(probe.tags.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(tags["title"] == "Blue Tune")
        #expect(tags["genre"] == "Jazz")
        #expect(tags["comment"] == "late night, slow")
    }
}
