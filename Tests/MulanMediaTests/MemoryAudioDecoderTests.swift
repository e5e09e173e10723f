import Foundation
import MulanCore
import MulanMedia
import MulanTestSupport
import Testing

/// Decoding from memory must give `ffmpeg -i FILE -ac 1 [-ar RATE] -f f32le -` bit for bit, and
/// damaged bytes must give a MulanError naming the label, never a crash.
@Suite("MemoryAudioDecoder")
struct MemoryAudioDecoderTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var source: [String]    // ffmpeg input arguments (lavfi)
        var encode: [String]    // output codec arguments
        var ext: String
        var nativeRate: Int
        var target: Int?        // nil: keep the stream's rate
        var description: String { "\(name) → \(target.map { "\($0) Hz" } ?? "native rate")" }
    }

    static let stereo48k = ["-f", "lavfi", "-i", "sine=frequency=523:duration=3.3:sample_rate=48000",
                            "-f", "lavfi", "-i", "anoisesrc=d=3.3:r=48000:a=0.2:seed=11",
                            "-filter_complex", "[0][1]amerge=inputs=2"]
    static let mono16k = ["-f", "lavfi", "-i", "anoisesrc=d=2.7:r=16000:a=0.3:seed=4"]

    static let cases: [Case] = [
        Case(name: "flac mono 16k s16", source: mono16k, encode: ["-c:a", "flac", "-sample_fmt", "s16"], ext: "flac",
             nativeRate: 16000, target: nil),
        Case(name: "flac mono 16k s16", source: mono16k, encode: ["-c:a", "flac", "-sample_fmt", "s16"], ext: "flac",
             nativeRate: 16000, target: 16000),
        Case(name: "flac stereo 48k s32 (24-bit)", source: stereo48k, encode: ["-c:a", "flac", "-sample_fmt", "s32"],
             ext: "flac", nativeRate: 48000, target: nil),
        Case(name: "flac stereo 48k s32 (24-bit)", source: stereo48k, encode: ["-c:a", "flac", "-sample_fmt", "s32"],
             ext: "flac", nativeRate: 48000, target: 16000),
        Case(name: "flac stereo 48k s16", source: stereo48k, encode: ["-c:a", "flac", "-sample_fmt", "s16"], ext: "flac",
             nativeRate: 48000, target: 24000),
        // The MP4 muxer writes its index after the data: the demuxer must seek through the callbacks.
        Case(name: "aac m4a stereo 48k", source: stereo48k, encode: ["-c:a", "aac", "-b:a", "96k"], ext: "m4a",
             nativeRate: 48000, target: 22050),
        Case(name: "vorbis stereo 48k", source: stereo48k, encode: ["-c:a", "libvorbis"], ext: "ogg",
             nativeRate: 48000, target: nil),
    ]

    /// What the ffmpeg CLI decodes, mono float, at `rate` or (nil) the input's own rate.
    static func reference(_ path: String, rate: Int?) throws -> [Float] {
        let r = try TestProcess.run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-ac", "1"]
                                    + (rate.map { ["-ar", "\($0)"] } ?? []) + ["-f", "f32le", "-"])
        if r.status != 0 { throw TestFailure("ffmpeg decode of \(path) failed: \(r.stderr)") }
        return r.stdout.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    @Test(arguments: cases)
    func samplesEqualFFmpegCLI(_ c: Case) throws {
        let dir = TempDir()
        let file = dir.file("input.\(c.ext)")
        try TestProcess.ffmpeg(c.source + c.encode + [file])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let expected = try Self.reference(file, rate: c.target)
        let decoded = try MemoryAudioDecoder.decode(bytes, label: "test member \(c.name)", sampleRate: c.target)
        #expect(decoded.sampleRate == c.target ?? c.nativeRate)
        #expect(decoded.samples.count == expected.count)
        let mismatches = zip(decoded.samples, expected).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(mismatches == 0, "\(mismatches) of \(expected.count) samples differ")
        #expect(expected.count > 0)
    }

    @Test func byteArraysDataAndBufferPointersAgree() throws {
        let dir = TempDir()
        let file = dir.file("clip.flac")
        try TestProcess.ffmpeg(Self.mono16k + ["-c:a", "flac", file])
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        let array = [UInt8](data)
        let a = try MemoryAudioDecoder.decode(data, label: "data", sampleRate: 8000)
        let b = try MemoryAudioDecoder.decode(array, label: "array", sampleRate: 8000)
        let c = try array.withUnsafeBytes { raw throws(MulanError) in
            try MemoryAudioDecoder.decode(raw, label: "pointer", sampleRate: 8000)
        }
        #expect(a == b)
        #expect(a == c)
        #expect(a.sampleRate == 8000)
        // Strict decoding of undamaged bytes gives the same samples.
        #expect(try MemoryAudioDecoder.decode(array, label: "strict", sampleRate: 8000, strict: true) == a)
    }

    /// Damaged buffers of several kinds: each must throw a MulanError that names the label.
    @Test(arguments: [false, true])
    func damagedBytesThrowNamingTheLabel(strict: Bool) throws {
        FFmpegVersions.quietLibraryLogs()   // the decoder's complaints about the damage are expected
        let dir = TempDir()
        let file = dir.file("clip.flac")
        try TestProcess.ffmpeg(Self.stereo48k + ["-c:a", "flac", file])
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(good.count > 10_000)

        var flipped = good
        for i in stride(from: good.count / 3, to: good.count / 3 + 2000, by: 7) { flipped[i] ^= 0x5A }
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let damaged: [(String, [UInt8])] = [
            ("empty", []),
            ("first 100 bytes", Array(good.prefix(100))),
            ("first 60 percent", Array(good.prefix(good.count * 6 / 10))),
            ("last byte missing", Array(good.dropLast())),
            ("header only", Array(good.prefix(8192))),
            ("bytes flipped in the middle", flipped),
            ("no header", Array(good.dropFirst(4096))),
            ("random bytes", noise),
            ("text", Array("this is not audio at all, just a sentence repeated. ".utf8)),
        ]
        for (what, bytes) in damaged {
            let label = "shard-000007.tar member \(what.replacingOccurrences(of: " ", with: "_")).flac"
            do {
                let decoded = try MemoryAudioDecoder.decode(bytes, label: label, sampleRate: 16000, strict: strict)
                // Damage the decoder cannot see is only acceptable where samples survive intact:
                // never for cut or noise buffers.
                Issue.record("\(what): decoded \(decoded.samples.count) samples instead of failing")
            } catch {
                #expect(error.description.contains(label), "\(what): \(error.description)")
                #expect(error.code == .media || error.code == .usage, "\(what): \(error.code)")
            }
        }
    }

    /// A FLAC stream cut exactly between two frames decodes without a single error, but shorter
    /// than its STREAMINFO header says: that must fail too.
    @Test func flacCutAtAFrameBoundaryIsTruncated() throws {
        let dir = TempDir()
        let file = dir.file("clip.flac")
        try TestProcess.ffmpeg(Self.stereo48k + ["-c:a", "flac", file])
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let probe = try TestProcess.run("ffprobe", ["-v", "error", "-show_entries", "packet=pos", "-of", "csv=p=0", file])
        let positions = probe.stdoutText.split(whereSeparator: \.isNewline).compactMap { Int($0) }
        try #require(positions.count > 4, "ffprobe listed no packets: \(probe.stderr)")
        let cut = positions[positions.count / 2]
        let label = "shard-000001.tar member cut.flac"
        do {
            let decoded = try MemoryAudioDecoder.decode(Array(good.prefix(cut)), label: label)
            Issue.record("decoded \(decoded.samples.count) samples of a stream cut at byte \(cut)")
        } catch {
            #expect(error.description.contains(label))
            #expect(error.description.contains("truncated"), "\(error.description)")
        }
        // The same stream, whole, decodes.
        #expect(try MemoryAudioDecoder.decode(good, label: label).samples.count == 3 * 48000 + 14400)
    }

    @Test func nonPositiveTargetRateIsAUsageError() throws {
        let dir = TempDir()
        let file = dir.file("clip.flac")
        try TestProcess.ffmpeg(Self.mono16k + ["-c:a", "flac", file])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(throws: MulanError.self) { try MemoryAudioDecoder.decode(bytes, label: "zero", sampleRate: 0) }
    }
}
