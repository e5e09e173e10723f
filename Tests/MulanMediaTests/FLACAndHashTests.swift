import Foundation
import MulanCore
@testable import MulanMedia
import MulanTestSupport
import Testing

@Suite("FLAC writing and hashing")
struct FLACAndHashTests {
    @Test(arguments: [16, 24])
    func flacRoundTripsThroughTheFFmpegCLI(bits: Int) throws {
        let dir = TempDir()
        let samples = (0..<50_000).map { i in Float(0.6 * sin(Double(i) * 0.05) + 0.3 * sin(Double(i) * 0.31)) }
        let path = dir.file("x.flac")
        try samples.withUnsafeBufferPointer { try FLACWriter.write($0, sampleRate: 16000, bits: bits, to: path) }
        let probe = try TestProcess.run("ffprobe", ["-v", "error", "-show_entries",
                                                    "stream=codec_name,sample_rate,channels,bits_per_raw_sample",
                                                    "-of", "csv=p=0", path])
        #expect(probe.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "flac,16000,1,\(bits)")
        let decoded = try TestProcess.ffmpegDecode(path, rate: 16000)
        #expect(decoded.count == samples.count)
        let step: Float = bits == 16 ? 1.0 / 32768 : 1.0 / 8_388_608
        let worst = zip(decoded, samples).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= step / 2 + 1e-9)
        if bits == 16 {
            // Exactly the values libswresample's float → s16 conversion gives.
            let expected = samples.map { Float(FLACWriter.quantize16($0)) / 32768 }
            #expect(decoded == expected)
        }
    }

    @Test func encodingIsDeterministic() throws {
        let dir = TempDir()
        let samples = (0..<40_000).map { Float(sin(Double($0) * 0.01)) * 0.5 }
        for name in ["a.flac", "b.flac"] {
            try samples.withUnsafeBufferPointer { try FLACWriter.write($0, sampleRate: 16000, bits: 16, to: dir.file(name)) }
        }
        #expect(try SHA256Digest.hex(ofFile: dir.file("a.flac")).digest == SHA256Digest.hex(ofFile: dir.file("b.flac")).digest)
    }

    @Test func quantizationClipsAndHandlesNonFinite() {
        #expect(FLACWriter.quantize16(2) == .max)
        #expect(FLACWriter.quantize16(-2) == .min)
        #expect(FLACWriter.quantize16(.nan) == 0)
        #expect(FLACWriter.quantize16(.infinity) == .max)
        #expect(FLACWriter.quantize16(0.5) == 16384)
    }

    @Test func sha256MatchesCoreutils() throws {
        let dir = TempDir()
        let path = dir.file("blob")
        var bytes = [UInt8]()
        for i in 0..<3_000_000 { bytes.append(UInt8(truncatingIfNeeded: i &* 31 &+ i >> 7)) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reference = try TestProcess.run("sha256sum", [path]).stdoutText.split(separator: " ").first.map(String.init)
        let ours = try SHA256Digest.hex(ofFile: path)
        #expect(ours.digest == reference)
        #expect(ours.bytes == bytes.count)
        #expect(SHA256Digest.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
