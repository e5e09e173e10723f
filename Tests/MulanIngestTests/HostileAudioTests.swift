import Foundation
@testable import MulanCatalog
import MulanMedia
import MulanTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Hostile audio inputs (issue 8): each one ends either as a failed track with its reason, or
/// ingested (repaired where needed, with a note in the track's detail); never a crash, a hang or
/// unbounded memory. Every input is generated here. BadInputTests covers the cases listed in
/// docs/reliability.md that are not repeated here (files cut in half, zero.wav, noise.mp3, a wrong
/// extension, a video without audio, a symlink loop and an odd path in a CSV manifest).
@Suite("HostileAudio: every hostile audio input has a defined outcome")
struct HostileAudioTests {
    struct Outcome: CustomStringConvertible {
        var status: String
        var reason: String?
        var detail: String
        var clipsKept: Int
        var channels: Int?
        var layout: String?
        var gain: Double?
        /// "ingested", or the failure reason.
        var verdict: String { status == "ingested" ? "ingested" : (reason ?? "?") }
        var description: String { "\(verdict) [\(detail)]" }
    }

    static func outcomes(_ h: IngestHarness, workdir: String? = nil) throws -> [String: Outcome] {
        let rows = try h.catalog(workdir).database.rows("""
            SELECT track_id, status, reason, detail, clips_kept, orig_channels, channel_layout, downmix_gain FROM tracks
            """)
        return Dictionary(uniqueKeysWithValues: rows.map {
            ($0[0].string!, Outcome(status: $0[1].string!, reason: $0[2].string, detail: $0[3].string ?? "",
                                    clipsKept: $0[4].int ?? 0, channels: $0[5].int, layout: $0[6].string,
                                    gain: $0[7].double))
        })
    }

    /// A WAV file from raw sample bytes: format tag 1 (PCM) or 3 (float); with `mask`, written as
    /// WAVE_FORMAT_EXTENSIBLE with that channel mask.
    static func wav(_ path: String, formatTag: Int, channels: Int, rate: Int, bits: Int, data: Data, mask: UInt32? = nil) throws {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)] }
        let block = channels * bits / 8
        var fmt = le16(mask == nil ? formatTag : 0xFFFE) + le16(channels) + le32(rate) + le32(rate * block) + le16(block) + le16(bits)
        if let mask {
            // cbSize, valid bits, channel mask, sub-format GUID (the format tag + the fixed tail).
            fmt += le16(22) + le16(bits) + le32(Int(mask)) + le32(formatTag) + le16(0) + le16(0x10)
            fmt += [0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
        }
        var out = Data("RIFF".utf8)
        out += le32(4 + 8 + fmt.count + 8 + data.count)
        out += Data("WAVEfmt ".utf8)
        out += le32(fmt.count) + fmt
        out += Data("data".utf8)
        out += le32(data.count)
        out += data
        try out.write(to: URL(fileURLWithPath: path))
    }

    /// Deterministic pseudo-random bytes.
    static func noise(_ count: Int, seed: UInt64) -> Data {
        var state = seed
        return Data((0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        })
    }

    static func manifest(_ h: IngestHarness, _ rows: [(id: String, path: String)]) throws {
        var csv = "track_id,path\n"
        for r in rows { csv += "\(r.id),\"\(r.path.replacingOccurrences(of: "\"", with: "\"\""))\"\n" }
        try h.dir.write("m.csv", csv)
    }

    /// Checks every expected verdict, and that each failure says what happened in words.
    static func expectVerdicts(_ got: [String: Outcome], _ expected: [String: String],
                               sourceLocation: SourceLocation = #_sourceLocation) {
        for (id, verdict) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(got[id]?.verdict == verdict, "\(id): \(got[id]?.description ?? "no row")", sourceLocation: sourceLocation)
            if let o = got[id], o.status == "failed" {
                #expect(o.detail.count > 20, "\(id): unclear detail \(o.detail)", sourceLocation: sourceLocation)
            }
        }
    }

    // MARK: Truncated, empty and random files

    /// Cuts inside the header (16 and 200 bytes), after 4 KiB and one byte short of the end, for
    /// every codec (BadInputTests cuts them in half).
    @Test func truncatedFilesOfEveryCodecAtEveryCut() throws {
        let h = IngestHarness()
        var rows: [(id: String, path: String)] = []
        for ext in ["mp3", "ogg", "opus", "flac", "wav", "m4a"] {
            let good = h.dir.file("good.\(ext)")
            try TestMedia.tone(good, seconds: 40, frequency: 500)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
            for (name, count) in [("h16", 16), ("h200", 200), ("h4k", 4096), ("m1", bytes.count - 1)] {
                try bytes.prefix(count).write(to: URL(fileURLWithPath: h.dir.file("\(name).\(ext)")))
                rows.append(("\(name)-\(ext)", "\(name).\(ext)"))
            }
        }
        try Self.manifest(h, rows)
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 3, "\(r.stderr)")
        let got = try Self.outcomes(h)
        // Cut inside the header: the magic bytes name the container, so the file is damaged, not "not audio".
        var expected: [String: String] = [:]
        for ext in ["mp3", "ogg", "opus", "flac", "wav", "m4a"] {
            expected["h16-\(ext)"] = "corrupt"
            expected["h200-\(ext)"] = ext == "wav" ? "truncated" : "corrupt"
            expected["h4k-\(ext)"] = ["mp3", "wav"].contains(ext) ? "truncated" : "corrupt"
        }
        // One byte short: Ogg and WAV know their end; the lost byte of a FLAC frame is a skipped,
        // noted packet; MP3 and M4A lose nothing that is decoded.
        for ext in ["ogg", "opus", "wav"] { expected["m1-\(ext)"] = "truncated" }
        for ext in ["mp3", "flac", "m4a"] { expected["m1-\(ext)"] = "ingested" }
        Self.expectVerdicts(got, expected)
        #expect(got["h16-flac"]?.detail.contains("looks like flac") == true)
        #expect(got["h16-mp3"]?.detail.contains("looks like mp3") == true)
        #expect(got["h200-wav"]?.detail.contains("RIFF header declares") == true)
        #expect(got["m1-flac"]?.detail == "1 damaged packets skipped")
        for ext in ["mp3", "flac", "m4a"] { #expect(got["m1-\(ext)"]?.clipsKept == 1) }
        // Every failure names the file.
        for (id, o) in got where o.status == "failed" {
            #expect(o.detail.contains(h.dir.path), "\(id): \(o.detail)")
        }
        #expect(IngestHarness.files(below: h.workdir + "/staging").isEmpty)
    }

    /// Zero bytes and random bytes behind every audio extension (BadInputTests has zero.wav and noise.mp3).
    @Test func zeroAndRandomBytesWithEveryAudioExtension() throws {
        let h = IngestHarness()
        var rows: [(id: String, path: String)] = []
        var expected: [String: String] = [:]
        for (i, ext) in ["mp3", "ogg", "opus", "flac", "wav", "m4a", "aac", "wma", "aiff"].enumerated() {
            try Data().write(to: URL(fileURLWithPath: h.dir.file("zero.\(ext)")))
            try Self.noise(30000, seed: UInt64(100 + i)).write(to: URL(fileURLWithPath: h.dir.file("random.\(ext)")))
            rows += [("zero-\(ext)", "zero.\(ext)"), ("random-\(ext)", "random.\(ext)")]
            expected["zero-\(ext)"] = "empty-file"
        }
        try Self.manifest(h, rows)
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 3, "\(r.stderr)")
        let got = try Self.outcomes(h)
        Self.expectVerdicts(got, expected)
        // Random bytes never become a track: FFmpeg cannot open them as media (not-audio), or, where
        // the extension picks a raw demuxer (.flac, .aac), the stream states no usable format (corrupt).
        for (i, ext) in ["mp3", "ogg", "opus", "flac", "wav", "m4a", "aac", "wma", "aiff"].enumerated() {
            let o = got["random-\(ext)"]
            #expect(["not-audio", "corrupt"].contains(o?.verdict ?? ""), "random.\(ext) (seed \(100 + i)): \(o?.description ?? "no row")")
            #expect(o?.detail.contains("random.\(ext)") == true)
        }
        #expect(got["random-flac"]?.verdict == "corrupt")
        #expect(got["random-flac"]?.detail.contains("no usable sample rate or channel count") == true)
    }

    // MARK: Rates, channels and sample formats

    /// 8 and 192 kHz, 1 to 8 channels with common and unusual layouts, a WAV whose channel mask is
    /// 0 (unspecified), and 8/24/32-float/64-float bit WAV: all ingested, and each stored clip equals
    /// what the ffmpeg CLI writes as 16-bit mono at 16 kHz within one step.
    @Test func extremeRatesChannelLayoutsAndSampleFormats() throws {
        let h = IngestHarness()
        func make(_ name: String, rate: Int = 44100, _ filter: String?, _ codec: [String]) throws {
            var args = ["-f", "lavfi", "-i", "sine=frequency=440:duration=33:sample_rate=\(rate)",
                        "-f", "lavfi", "-i", "anoisesrc=d=33:r=\(rate):a=0.05:seed=3",
                        "-filter_complex", "[0][1]amix=inputs=2:normalize=0,volume=0.5" + (filter.map { "," + $0 } ?? "")]
            args += codec + [h.dir.file(name)]
            try TestProcess.ffmpeg(args)
        }
        // (file, channels, layout as recorded)
        var cases: [(file: String, channels: Int, layout: String)] = []
        try make("r8k.wav", rate: 8000, nil, ["-c:a", "pcm_s16le"]); cases.append(("r8k.wav", 1, "1 channels"))
        try make("r192k.flac", rate: 192000, nil, ["-c:a", "flac"]); cases.append(("r192k.flac", 1, "mono"))
        let layouts: [(name: String, channels: Int, codec: [String], ext: String)] = [
            ("stereo", 2, ["-c:a", "libvorbis"], "ogg"), ("3.0", 3, ["-c:a", "flac"], "flac"),
            ("quad", 4, ["-c:a", "flac"], "flac"), ("5.0", 5, ["-c:a", "pcm_s16le"], "wav"),
            ("5.1", 6, ["-c:a", "aac"], "m4a"), ("hexagonal", 6, ["-c:a", "pcm_s16le"], "wav"),
            ("6.1", 7, ["-c:a", "pcm_s16le"], "wav"), ("7.1", 8, ["-c:a", "flac"], "flac"),
            ("7.1", 8, ["-c:a", "libopus"], "opus"), ("octagonal", 8, ["-c:a", "pcm_s16le"], "wav"),
        ]
        for l in layouts {
            let file = "ch\(l.channels)-\(l.name).\(l.ext)"
            try make(file, "aformat=channel_layouts=\(l.name)", l.codec)
            cases.append((file, l.channels, l.name))
        }
        for (codec, fmt) in [("pcm_u8", "u8"), ("pcm_s24le", "s32"), ("pcm_f32le", "flt"), ("pcm_f64le", "dbl")] {
            try make("\(codec).wav", "aformat=sample_fmts=\(fmt)", ["-c:a", codec])
            // FFmpeg writes 24-bit and float WAV as WAVE_FORMAT_EXTENSIBLE, with a mono channel mask.
            cases.append(("\(codec).wav", 1, codec == "pcm_u8" ? "1 channels" : "mono"))
        }
        // Six and two channels with WAVE_FORMAT_EXTENSIBLE and channel mask 0: FFmpeg leaves the layout
        // unspecified and, as the CLI, we take the default one for the count (5.1, stereo).
        let rate = 16000
        for channels in [2, 6] {
            var data = Data(capacity: rate * 31 * channels * 2)
            for i in 0..<(rate * 31) {
                let v = Int16(8000 * sin(2 * Double.pi * 440 * Double(i) / Double(rate)))
                for c in 0..<channels {
                    let s = c == 3 && channels == 6 ? v / 2 : v
                    data.append(UInt8(truncatingIfNeeded: s)); data.append(UInt8(truncatingIfNeeded: s >> 8))
                }
            }
            let file = "mask0-\(channels).wav"
            try Self.wav(h.dir.file(file), formatTag: 1, channels: channels, rate: rate, bits: 16, data: data, mask: 0)
            cases.append((file, channels, "\(channels) channels"))
        }
        try Self.manifest(h, cases.map { ($0.file, $0.file) })
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.outcomes(h)
        let c = try h.catalog()
        for k in cases {
            let o = got[k.file]
            #expect(o?.verdict == "ingested" && o?.clipsKept == 1 && o?.detail == "", "\(k.file): \(o?.description ?? "no row")")
            #expect(o?.channels == k.channels && o?.layout == k.layout, "\(k.file): \(o?.channels ?? 0) \(o?.layout ?? "")")
            guard let clip = try c.database.row("""
                SELECT c.flac_path, c.sample_rate, c.duration_s FROM clips c JOIN tracks t ON t.id = c.track_rowid
                WHERE t.track_id = ? AND c.status = 'kept'
                """, [k.file]) else { continue }
            #expect(clip[1].int == 16000 && clip[2].double == 30)
            let ours = try TestProcess.ffmpegDecode(h.workdir + "/" + clip[0].string!, rate: 16000)
            let reference = try TestProcess.ffmpegDecode16(h.dir.file(k.file), rate: 16000)
            #expect(ours.count == 480_000 && reference.count >= 480_000)
            let worst = zip(ours, reference.prefix(480_000)).map { abs($0 - $1) }.max() ?? 1
            #expect(worst <= 1.0 / 32768 + 1e-9, "\(k.file): largest difference \(worst * 32768) steps")
            #expect(ours.contains { abs($0) > 0.01 }, "\(k.file): the stored clip is (nearly) silent")
        }
        // The integer-downmix gain follows the layout: 1/√2 for stereo, 1/(1+√2) for quad, …
        #expect(abs((got["mask0-2.wav"]?.gain ?? 0) - 0.5.squareRoot()) < 1e-9)
        #expect(abs((got["mask0-6.wav"]?.gain ?? 0) - (got["ch6-5.1.m4a"]?.gain ?? 1)) < 1e-9)
        #expect(abs((got["ch4-quad.flac"]?.gain ?? 0) - 1 / (1 + 2.0.squareRoot())) < 1e-9)
    }

    /// NaN and ±Inf samples inside float WAVs (32 and 64 bit) become 0, counted in the detail; the
    /// stored clip holds the signal with zeros where they were.
    @Test func nonFiniteSamplesInFloatWAVBecomeZero() throws {
        let h = IngestHarness()
        let rate = 16000, n = rate * 31
        var signal = (0..<n).map { 0.3 * sin(2 * Double.pi * 440 * Double($0) / Double(rate)) }
        let bad = Array(stride(from: 1000, to: n, by: 997))
        for (k, i) in bad.enumerated() { signal[i] = [Double.nan, .infinity, -.infinity][k % 3] }
        var f32 = Data(capacity: n * 4), f64 = Data(capacity: n * 8)
        for x in signal {
            withUnsafeBytes(of: Float(x).bitPattern.littleEndian) { f32.append(contentsOf: $0) }
            withUnsafeBytes(of: x.bitPattern.littleEndian) { f64.append(contentsOf: $0) }
        }
        try Self.wav(h.dir.file("nan32.wav"), formatTag: 3, channels: 1, rate: rate, bits: 32, data: f32)
        try Self.wav(h.dir.file("nan64.wav"), formatTag: 3, channels: 1, rate: rate, bits: 64, data: f64)
        try Self.manifest(h, [("nan32", "nan32.wav"), ("nan64", "nan64.wav")])
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.outcomes(h)
        for id in ["nan32", "nan64"] {
            #expect(got[id]?.verdict == "ingested" && got[id]?.clipsKept == 1, "\(id): \(got[id]?.description ?? "")")
            #expect(got[id]?.detail == "\(bad.count) NaN/Inf samples replaced by 0")
            // The decoder's own output is finite everywhere, zero at the bad samples.
            let decoder = try AudioDecoder(path: h.dir.file("\(id).wav"), outputSampleRate: rate)
            var samples: [Float] = []
            let stats = try decoder.decode { samples.append(contentsOf: $0); return true }
            #expect(stats.nonFiniteSamples == bad.count && samples.count == n)
            #expect(samples.allSatisfy { $0.isFinite })
            #expect(bad.allSatisfy { samples[$0] == 0 })
            // The stored clip (16 kHz in, 16 kHz out: no resampling) is the signal with those zeros.
            let path = try h.catalog().database.row("""
                SELECT c.flac_path FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE t.track_id = ?
                """, [id])![0].string!
            let clip = try TestProcess.ffmpegDecode(h.workdir + "/" + path, rate: rate)
            #expect(clip.count == 480_000)
            let badSet = Set(bad)
            let worst = clip.indices.map { i in abs(Double(clip[i]) - (badSet.contains(i) ? 0 : signal[i])) }.max() ?? 1
            #expect(worst <= 1.0 / 32768 + 1e-6, "\(id): largest difference \(worst * 32768) steps")
        }
    }

    // MARK: Length and memory

    /// Writes a mono 16-bit WAV of a 440 Hz tone at 8 kHz, one second repeated (fast to write).
    static func longWAV(_ path: String, seconds: Int) throws {
        let rate = 8000
        var second = Data(capacity: rate * 2)
        for i in 0..<rate {
            let v = Int16(8000 * sin(2 * Double.pi * 440 * Double(i) / Double(rate)))
            second.append(UInt8(truncatingIfNeeded: v)); second.append(UInt8(truncatingIfNeeded: v >> 8))
        }
        try wav(path, formatTag: 1, channels: 1, rate: rate, bits: 16, data: Data())
        // Patch the sizes, then append the samples.
        let total = second.count * seconds
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        func le32(_ v: Int) -> Data { Data([UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)]) }
        try handle.seek(toOffset: 4); handle.write(le32(36 + total))
        try handle.seek(toOffset: 40); handle.write(le32(total))
        try handle.seekToEnd()
        for _ in 0..<seconds { handle.write(second) }
    }

    /// Runs mulan-ingest and returns its exit status and the peak resident memory its summary
    /// reports (`peak_rss_bytes`, the process's own VmHWM). Not wait4's `ru_maxrss`: a child started
    /// with posix_spawn inherits the test runner's high-water mark at exec (seen in CI: 449 MB for a
    /// run that used 77 MB), so it measures whichever tests ran before.
    static func ingestMeasuringMemory(_ h: IngestHarness, _ arguments: [String]) throws -> (status: Int32, peakBytes: Int) {
        let reportPath = h.dir.file("report.json")
        try? FileManager.default.removeItem(atPath: reportPath)
        let result = try h.ingest(["--jobs", "1", "--report", reportPath] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let peak = try #require(try h.report(reportPath)["peak_rss_bytes"] as? Int, "no peak_rss_bytes in \(reportPath)")
        return (result.status, peak)
    }

    /// A 3-hour file is decoded in full (`best:4` scores every clip and holds the 4 best) in the
    /// same memory as a 10-minute one. (`--max-clips-per-track 4` now seeks to its 4 clips and
    /// decodes only about 2 minutes: see ClipPolicyIngestTests.)
    @Test func threeHourFileKeepsMemoryBounded() throws {
        let short = IngestHarness()
        try Self.longWAV(short.dir.file("ten-minutes.wav"), seconds: 600)
        try short.dir.write("m.csv", "track_id,path\nten,ten-minutes.wav\n")
        let a = try Self.ingestMeasuringMemory(short, ["--manifest", short.dir.file("m.csv")])
        #expect(a.status == 0)

        let long = IngestHarness()
        try Self.longWAV(long.dir.file("three-hours.wav"), seconds: 3 * 3600)
        try long.dir.write("m.csv", "track_id,path\nlong,three-hours.wav\n")
        let b = try Self.ingestMeasuringMemory(long, ["--manifest", long.dir.file("m.csv"), "--clip-policy", "best:4"])
        #expect(b.status == 0)

        let ten = try short.catalog().database.row("SELECT clips_kept, duration_s FROM tracks")!
        #expect(ten[0].int == 20 && ten[1].double == 600)
        let c = try long.catalog()
        // 360 candidates of nearly equal score (a steady tone; which 4 win depends on the last bits
        // of their levels): 4 distinct clips kept; all 3 h decoded.
        let kept = try c.database.rows("SELECT clip_index FROM clips ORDER BY clip_index").map { $0[0].int! }
        #expect(kept.count == 4 && Set(kept).count == 4 && kept.allSatisfy { (0..<360).contains($0) }, "\(kept)")
        let decoded = try c.database.row("SELECT duration_s FROM tracks")![0].double!
        #expect(abs(decoded - 3 * 3600) < 0.01)

        let mb = 1 << 20
        #expect(a.peakBytes > 0 && b.peakBytes > 0)
        #expect(b.peakBytes < 200 * mb * TestSanitizer.memoryFactor, "3 h: peak RSS \(b.peakBytes / mb) MB")
        // Eighteen times the audio decoded, not more memory. (Both measure about 77 MB. Growing with
        // the length would add at least the 165 MB of the source's samples.)
        #expect(b.peakBytes < a.peakBytes + 50 * mb * TestSanitizer.memoryFactor, "10 min: \(a.peakBytes / mb) MB, 3 h: \(b.peakBytes / mb) MB")
    }

    /// The summary's peak is the ingest process's own, even when it is started (posix_spawn) from a
    /// process holding far more memory, as a test runner or a notebook does.
    @Test func peakMemoryInTheSummaryIsTheProcesssOwn() throws {
        let size = 768 << 20
        let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { block.deallocate() }
        for page in stride(from: 0, to: size, by: 4096) { block.storeBytes(of: 1, toByteOffset: page, as: UInt8.self) }
        let h = IngestHarness()
        try Self.longWAV(h.dir.file("one-minute.wav"), seconds: 60)
        try h.dir.write("m.csv", "track_id,path\none,one-minute.wav\n")
        let run = try withExtendedLifetime(block) { try Self.ingestMeasuringMemory(h, ["--manifest", h.dir.file("m.csv")]) }
        #expect(run.status == 0)
        #expect(run.peakBytes > 0 && run.peakBytes < (400 << 20) * TestSanitizer.memoryFactor, "peak \(run.peakBytes >> 20) MiB")
    }

    // MARK: Content

    /// 0.2 s of audio, a constant DC offset alone, and a tone on a large DC offset. (All digital
    /// silence: IngestEndToEndTests.clipsCatalogAndMetadata.)
    @Test func veryShortAndDCOffsetFiles() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("blip.wav"), seconds: 0.2)
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "aevalsrc=0.8:d=33:s=44100", "-c:a", "pcm_s16le", h.dir.file("dc-only.wav")])
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "aevalsrc=0.6+0.1*sin(2*PI*440*t):d=33:s=44100", "-c:a", "pcm_s16le",
                                h.dir.file("dc-tone.wav")])
        try Self.manifest(h, [("blip", "blip.wav"), ("dc-only", "dc-only.wav"), ("dc-tone", "dc-tone.wav")])
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 3, "\(r.stderr)")
        let got = try Self.outcomes(h)
        Self.expectVerdicts(got, ["blip": "too-short", "dc-only": "silent", "dc-tone": "ingested"])
        #expect(got["blip"]?.detail.hasPrefix("0.20 s of audio") == true)
        // A constant offset is inaudible: the clip is silent although its RMS is 0.8, and the detail says why.
        #expect(got["dc-only"]?.detail.contains("DC offset of +0.80") == true, "\(got["dc-only"]?.detail ?? "")")
        let levels = try h.catalog().database.rows("""
            SELECT t.track_id, c.rms, c.status FROM clips c JOIN tracks t ON t.id = c.track_rowid ORDER BY t.track_id
            """).map { ($0[0].string!, $0[1].double!, $0[2].string!) }
        #expect(levels.count == 2)
        #expect(levels.first { $0.0 == "dc-only" }.map { abs($0.1 - 0.8) < 1e-3 && $0.2 == "silent" } == true)
        // The tone on an offset is kept as it is (levels include the offset), with a note.
        #expect(levels.first { $0.0 == "dc-tone" }.map { abs($0.1 - (0.36 + 0.005).squareRoot()) < 1e-3 && $0.2 == "kept" } == true)
        #expect(got["dc-tone"]?.detail == "large DC offset (up to +0.60 of full scale), kept as is")
    }

    /// A 5 MB comment tag (FLAC, MP3/ID3, Ogg, M4A) is not stored as a raw text, and the detail
    /// names it; a 3 MB cover picture is an attachment, not text. The audio is ingested.
    @Test func megabytesOfMetadata() throws {
        let h = IngestHarness()
        let words = ["slow", "dreamy", "guitar", "piano", "loud", "jazz"]
        var comment = ""
        comment.reserveCapacity(5_000_100)
        var i: UInt32 = 1
        while comment.utf8.count < 5_000_000 { comment += words[Int(i % 6)] + " "; i = i &* 1_103_515_245 &+ 12345 }
        comment = String(comment.prefix(4_999_999)) + "x"
        try h.dir.write("meta.txt", ";FFMETADATA1\ntitle=Huge Notes\ncomment=\(comment)\n")
        var rows: [(id: String, path: String)] = []
        for ext in ["flac", "mp3", "ogg", "m4a"] {
            try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=31:sample_rate=44100",
                                    "-i", h.dir.file("meta.txt"), "-map_metadata", "1"]
                                   + (ext == "ogg" ? ["-c:a", "libvorbis"] : []) + [h.dir.file("big-tag.\(ext)")])
            rows.append(("tag-\(ext)", "big-tag.\(ext)"))
        }
        // A 1500×1500 noise picture (about 3 MB as PNG) attached as cover art.
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "nullsrc=s=1500x1500,geq=random(1)*255:128:128", "-frames:v", "1",
                                h.dir.file("cover.png")])
        try TestMedia.tone(h.dir.file("plain.mp3"), seconds: 31)
        try TestProcess.ffmpeg(["-i", h.dir.file("plain.mp3"), "-i", h.dir.file("cover.png"), "-map", "0", "-map", "1",
                                "-c", "copy", "-disposition:v", "attached_pic", "-id3v2_version", "3", h.dir.file("cover.mp3")])
        try TestProcess.ffmpeg(["-i", h.dir.file("plain.mp3"), "-i", h.dir.file("cover.png"), "-map", "0:a", "-map", "1",
                                "-c:a", "flac", "-c:v", "copy", "-disposition:v", "attached_pic", h.dir.file("cover.flac")])
        rows += [("cover-mp3", "cover.mp3"), ("cover-flac", "cover.flac")]
        try Self.manifest(h, rows)
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try Self.outcomes(h)
        let c = try h.catalog()
        for (id, o) in got {
            #expect(o.verdict == "ingested" && o.clipsKept == 1, "\(id): \(o)")
        }
        for ext in ["flac", "mp3", "ogg", "m4a"] {
            #expect(got["tag-\(ext)"]?.detail.contains("comment (5000000 bytes) not stored: longer than 65536 bytes") == true,
                    "\(ext): \(got["tag-\(ext)"]?.detail ?? "")")
            let fields = try c.database.rows("SELECT lower(field), text FROM raw_texts WHERE track_id = ?", ["tag-\(ext)"])
            #expect(fields.contains { $0[0].string == "title" && $0[1].string == "Huge Notes" })
            #expect(!fields.contains { $0[0].string == "comment" })
        }
        for id in ["cover-mp3", "cover-flac"] { #expect(got[id]?.detail == "", "\(id): \(got[id]?.detail ?? "")") }
        let longest = try c.database.row("SELECT max(length(CAST(text AS BLOB))) FROM raw_texts")![0].int ?? 0
        #expect(longest <= 65536)
    }

    // MARK: Special files, permissions and names

    /// A named pipe (listed in a manifest, and reached through a symlink in --scan), /dev/zero, a
    /// symlink loop in --scan, and (run as an unprivileged user, since root reads anything) a file
    /// and a folder without read permission.
    @Test func specialFilesAndPermissions() throws {
        let h = IngestHarness()
        try FileManager.default.createDirectory(atPath: h.dir.file("lib/locked-folder"), withIntermediateDirectories: true)
        try TestMedia.tone(h.dir.file("lib/ok.ogg"), seconds: 31)
        try TestMedia.tone(h.dir.file("lib/locked-folder/inside.ogg"), seconds: 31)
        try TestMedia.tone(h.dir.file("lib/locked.ogg"), seconds: 31)
        #expect(mkfifo(h.dir.file("lib/pipe.wav"), 0o644) == 0)
        symlink("pipe.wav", h.dir.file("lib/to-pipe.flac"))
        symlink("loop-b.mp3", h.dir.file("lib/loop-a.mp3"))
        symlink("loop-a.mp3", h.dir.file("lib/loop-b.mp3"))
        try Self.manifest(h, [("pipe", "lib/pipe.wav"), ("dev-zero", "/dev/zero"), ("ok", "lib/ok.ogg")])
        chmod(h.dir.file("lib/locked.ogg"), 0)
        chmod(h.dir.file("lib/locked-folder"), 0)
        defer { chmod(h.dir.file("lib/locked-folder"), 0o755) }

        // Root reads files whatever their mode; run as nobody then, in a work area nobody may write.
        let asRoot = getuid() == 0
        chmod(h.dir.path, 0o777)
        let prefix = asRoot ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        func ingest(_ args: [String], workdir: String) throws -> ProcessResult {
            let argv = prefix + [IngestHarness.binary, "--workdir", workdir, "--quiet"] + args
            return try TestProcess.run(argv[0], Array(argv.dropFirst()), cwd: h.dir.path,
                                       environment: ["MULAN_PROGRESS_INTERVAL": "0"])
        }
        let started = Date()
        let manifestRun = try ingest(["--manifest", "m.csv"], workdir: h.dir.file("w-manifest"))
        #expect(manifestRun.status == 3, "\(manifestRun.stderr)")
        let scanRun = try ingest(["--scan", "lib"], workdir: h.dir.file("w-scan"))
        #expect(scanRun.status == 3, "\(scanRun.stderr)")
        #expect(Date().timeIntervalSince(started) < 60, "a special file made ingest wait")

        let m = try Self.outcomes(h, workdir: h.dir.file("w-manifest"))
        Self.expectVerdicts(m, ["pipe": "not-audio", "dev-zero": "not-audio", "ok": "ingested"])
        #expect(m["pipe"]?.detail.contains("is a named pipe (FIFO), not a regular file") == true)
        #expect(m["dev-zero"]?.detail.contains("/dev/zero is a character device") == true)

        let s = try Self.outcomes(h, workdir: h.dir.file("w-scan"))
        Self.expectVerdicts(s, ["to-pipe.flac": "not-audio", "loop-a.mp3": "unreadable", "loop-b.mp3": "unreadable",
                                "ok.ogg": "ingested", "locked.ogg": "unreadable"])
        #expect(s["locked.ogg"]?.detail.contains("Permission denied") == true)
        #expect(s["pipe.wav"] == nil)  // --scan lists regular files and links only
        // The folder it cannot list is a rejected row, with its path.
        let rejects = try Catalog(path: h.dir.file("w-scan/catalog.sqlite")).database
            .rows("SELECT reason, detail FROM rejected_rows").map { "\($0[0].string!): \($0[1].string!)" }
        #expect(rejects.count == 1 && rejects.first?.hasPrefix("unreadable: cannot list folder") == true, "\(rejects)")
        #expect(scanRun.stderr.contains("locked-folder"))
    }

    /// Spaces, tabs, quotes, newlines and non-ASCII characters in file and folder names, through a
    /// JSONL manifest, a CSV manifest, and --scan (BadInputTests has one such path in a CSV).
    @Test func oddPathsInManifestsAndScan() throws {
        let h = IngestHarness()
        let names = ["lib/dir with space/Ünï çödé 日本/new\nline.ogg", "lib/tab\tand  spaces .mp3",
                     "lib/quote\"d, comma.flac", "lib/emoji 🎵 name.wav", "lib/-leading-dash.opus"]
        for (i, name) in names.enumerated() { try TestMedia.tone(h.dir.file(name), seconds: 31, seed: i + 1) }
        func jsonString(_ s: String) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]), as: UTF8.self)
                .dropFirst().dropLast().description
        }
        try h.dir.write("m.jsonl", names.enumerated().map { "{\"track_id\": \"j\($0.offset)\", \"path\": \(jsonString($0.element))}" }
            .joined(separator: "\n") + "\n")
        var csv = "track_id,path\n"
        for (i, name) in names.enumerated() { csv += "c\(i),\"\(name.replacingOccurrences(of: "\"", with: "\"\""))\"\n" }
        try h.dir.write("m.csv", csv)
        let r = try h.ingest(["--manifest", "m.jsonl", "--manifest", "m.csv"])
        #expect(r.status == 0, "\(r.stderr)")
        let scan = try h.ingest(["--scan", "lib"], workdir: h.dir.file("w-scan"))
        #expect(scan.status == 0, "\(scan.stderr)")

        let c = try h.catalog()
        let paths = Dictionary(uniqueKeysWithValues: try c.database.rows("SELECT track_id, source_path, status FROM tracks")
            .map { ($0[0].string!, ($0[1].string!, $0[2].string!)) })
        #expect(paths.count == 2 * names.count)
        for (i, name) in names.enumerated() {
            for id in ["j\(i)", "c\(i)"] {
                #expect(paths[id]?.0 == h.dir.file(name) && paths[id]?.1 == "ingested", "\(id): \(paths[id].map { "\($0)" } ?? "no row")")
            }
        }
        let scanned = try Catalog(path: h.dir.file("w-scan/catalog.sqlite")).database
            .rows("SELECT track_id, status FROM tracks").map { "\($0[0].string!)=\($0[1].string!)" }
        #expect(Set(scanned) == Set(names.map { String($0.dropFirst("lib/".count)) + "=ingested" }) && scanned.count == names.count)
        // The same bytes give the same clips, whichever way the file was named.
        let clips = try c.database.row("SELECT COUNT(DISTINCT flac_sha256), COUNT(*) FROM clips")!
        #expect(clips[0].int == names.count && clips[1].int == 2 * names.count)
    }
}

