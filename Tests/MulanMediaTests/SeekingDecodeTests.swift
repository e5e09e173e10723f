import Foundation
import MulanCore
@testable import MulanMedia
import MulanTestSupport
import Testing

/// The seeking path (`decodeWindows`) against the same spans cut from a full decode, per codec.
@Suite("Seeking to clip windows")
struct SeekingDecodeTests {
    struct Case: Sendable, CustomStringConvertible {
        var ext: String
        var encode: [String]
        var rate: Int
        /// Seek in a codec ingest decodes in full (AAC), to measure what seeking would give.
        var experimental = false
        var description: String { "\(ext) \(rate) Hz\(experimental ? " \(encode.joined(separator: " "))" : "")" }
    }

    /// 64 s of stereo whose content changes all the time: a chirp (200 Hz rising 40 Hz per second)
    /// with a slow tremolo on the left, the chirp at half level plus seeded noise on the right.
    static func source(rate: Int) -> [String] {
        let chirp = "aevalsrc=exprs='0.5*sin(2*PI*(200*t+20*t*t))*(0.6+0.4*sin(2*PI*0.3*t))':s=\(rate):d=64:c=mono"
        return ["-f", "lavfi", "-i", chirp, "-f", "lavfi", "-i", "anoisesrc=d=64:r=\(rate):a=0.1:seed=11",
                "-filter_complex", "[0]asplit[a][b];[b]volume=0.5[h];[h][1]amix=inputs=2:normalize=0[r];[a][r]join=inputs=2:channel_layout=stereo"]
    }

    static let cases: [Case] = [
        Case(ext: "mp3", encode: ["-c:a", "libmp3lame", "-b:a", "128k"], rate: 44100),
        Case(ext: "ogg", encode: ["-c:a", "libvorbis", "-q:a", "4"], rate: 44100),
        Case(ext: "opus", encode: ["-c:a", "libopus", "-b:a", "96k"], rate: 48000),
        Case(ext: "flac", encode: ["-c:a", "flac"], rate: 48000),
        Case(ext: "wav", encode: ["-c:a", "pcm_s16le"], rate: 44100),
        // AAC without noise substitution seeks exactly; ingest still decodes AAC in full (see
        // `aacWithNoiseSubstitutionIsDecodedInFull`).
        Case(ext: "m4a", encode: ["-c:a", "aac", "-aac_pns", "0", "-b:a", "128k"], rate: 44100, experimental: true),
    ]

    /// Windows at odd sample positions, far enough apart that each needs a seek, one of them
    /// ending at the very end of the stream; and one near the start (decoded on from the start).
    static func windows(total: Int, rate: Int) -> [DecodeWindow] {
        [DecodeWindow(index: 0, start: rate / 2 + 3, count: 3 * rate),
         DecodeWindow(index: 1, start: 17 * rate + 1234, count: 10 * rate),
         DecodeWindow(index: 2, start: 41 * rate + 777, count: 5 * rate + 11),
         DecodeWindow(index: 3, start: total - 4 * rate, count: 4 * rate)]
    }

    static func snrDB(_ reference: ArraySlice<Float>, _ ours: [Float]) -> Double {
        var signal = 0.0, noise = 0.0
        for (r, o) in zip(reference, ours) {
            signal += Double(r) * Double(r)
            noise += Double(r - o) * Double(r - o)
        }
        return noise == 0 ? .infinity : 10 * log10(signal / noise)
    }

    @Test(arguments: cases, [16000, 48000])
    func windowsMatchFullDecode(_ c: Case, outputRate: Int) throws {
        let dir = TempDir()
        let file = dir.file("input.\(c.ext)")
        try TestProcess.ffmpeg(Self.source(rate: c.rate) + c.encode + [file])
        let full = try DecoderParityTests.decodeAll(file, rate: outputRate)
        let decoder = try AudioDecoder(path: file, outputSampleRate: outputRate)
        let unavailable = decoder.seekUnavailable(experimental: c.experimental)
        #expect(unavailable == nil, "\(unavailable.map(String.init(describing:)) ?? "")")
        let windows = Self.windows(total: full.count, rate: outputRate)
        var got: [Int: [Float]] = [:]
        let stats = try decoder.decodeWindows(windows, offset: 0, experimental: c.experimental) { window, samples in
            got[window.index] = samples
        }
        #expect(stats.seeks >= 2)
        var figures: [String] = []
        for w in windows {
            let samples = try #require(got[w.index])
            #expect(samples.count == w.count)
            let snr = Self.snrDB(full[w.start..<w.end], samples)
            figures.append(snr.isInfinite ? "exact" : String(format: "%.1f dB", snr))
            #expect(snr >= 60, "\(c) window \(w.index) at \(w.start): SNR \(snr) dB")
        }
        // The window near the start is decoded on from the start: the full decode's samples exactly.
        #expect(got[0] == Array(full[windows[0].start..<windows[0].end]))
        print("seek SNR \(c) → \(outputRate) Hz: \(figures.joined(separator: ", ")); decoded "
              + String(format: "%.1f", Double(stats.decodedInputSamples) / Double(c.rate)) + " s of "
              + String(format: "%.1f", Double(full.count) / Double(outputRate)) + " s")
    }

    /// An MP3 without a Xing/Info header states a duration estimated from its bit rate only.
    @Test func containerWithoutExactDurationFallsBack() throws {
        let dir = TempDir()
        let file = dir.file("noxing.mp3")
        try TestProcess.ffmpeg(Self.source(rate: 44100) + ["-t", "20", "-c:a", "libmp3lame", "-write_xing", "0", file])
        let decoder = try AudioDecoder(path: file, outputSampleRate: 16000)
        let reason = try #require(decoder.seekUnavailable)
        #expect(reason.reason == .unknownDuration)
        #expect(throws: SeekFallback.self) {
            _ = try decoder.decodeWindows([DecodeWindow(index: 0, start: 160_000, count: 16000)]) { _, _ in }
        }
    }

    /// FFmpeg's AAC encoder uses noise substitution by default: after a seek, the noise bands
    /// differ from a full decode, so ingest decodes AAC in full. The figures are printed.
    @Test func aacWithNoiseSubstitutionIsDecodedInFull() throws {
        let dir = TempDir()
        let file = dir.file("pns.m4a")
        try TestProcess.ffmpeg(Self.source(rate: 44100) + ["-c:a", "aac", "-b:a", "128k", file])
        let decoder = try AudioDecoder(path: file, outputSampleRate: 16000)
        #expect(decoder.seekUnavailable?.reason == .codecNotSeekAccurate)
        let full = try DecoderParityTests.decodeAll(file, rate: 16000)
        var figures: [String] = []
        _ = try decoder.decodeWindows(Self.windows(total: full.count, rate: 16000), offset: 0, experimental: true) { w, samples in
            let snr = Self.snrDB(full[w.start..<w.end], samples)
            figures.append(snr.isInfinite ? "exact" : String(format: "%.1f dB", snr))
        }
        print("seek SNR m4a with PNS (what seeking would give; ingest decodes it in full): \(figures.joined(separator: ", "))")
    }

    @Test func preRollIsKnownForTheTestedCodecsOnly() {
        for codec in ["mp3", "vorbis", "opus", "flac", "pcm_s16le", "pcm_f32le"] {
            #expect(SeekPreroll.decoderSeconds(codec: codec) != nil, "\(codec)")
        }
        #expect(SeekPreroll.decoderSeconds(codec: "aac") == nil)
        #expect(SeekPreroll.decoderSeconds(codec: "wmav2") == nil)
        #expect(SeekPreroll.decoderSeconds(codec: "opus")! >= 0.08)  // RFC 7845 §4.6
    }
}
