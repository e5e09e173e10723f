import Foundation
@testable import MulanCatalog
import MulanCore
import MulanTestSupport
import Testing

@Suite("mulan-ingest --clip-policy")
struct ClipPolicyIngestTests {
    static func clips(_ h: IngestHarness) throws -> [(track: String, index: Int, start: Double, duration: Double, path: String?)] {
        try h.catalog().database.rows("""
            SELECT t.track_id, c.clip_index, c.start_s, c.duration_s, c.flac_path FROM clips c
            JOIN tracks t ON t.id = c.track_rowid ORDER BY t.track_id, c.start_s
            """).map { ($0[0].string!, $0[1].int!, $0[2].double!, $0[3].double!, $0[4].string) }
    }

    /// `center` keeps the middle 30 s, decoded by seeking; the stored clip matches the same span of
    /// the ffmpeg CLI's full decode, and the report and the settings key say what was done.
    @Test func centerSeeksAndMatchesFullDecode() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 100, frequency: 300)
        try h.dir.write("m.csv", "track_id,path\na,a.ogg\n")
        let r = try h.ingest(["--manifest", "m.csv", "--clip-policy", "center", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["clip_policy"] as? String == "center")
        #expect(report["tracks_seeked"] as? Int == 1)
        #expect(report["seek_fallbacks"] as? Int == 0)
        let clips = try Self.clips(h)
        #expect(clips.count == 1)
        // floor((1 600 000 − 480 000) / 2) = 560 000 samples = 35 s.
        #expect(clips[0].start == 35 && clips[0].duration == 30)
        let decoded = try TestProcess.ffmpegDecode(h.workdir + "/" + clips[0].path!, rate: 16000)
        let reference = try TestProcess.ffmpegDecode16(h.dir.file("a.ogg"), rate: 16000)
        #expect(decoded.count == 480_000)
        var signal = 0.0, noise = 0.0
        for (a, b) in zip(decoded, reference[560_000..<1_040_000]) {
            signal += Double(b) * Double(b)
            noise += Double(a - b) * Double(a - b)
        }
        // 16-bit storage bounds this (one step of rounding noise on a −12 dBFS signal ≈ 85 dB).
        #expect(10 * log10(signal / max(noise, 1e-30)) > 60)
        let track = try h.catalog().database.row("SELECT duration_s, settings_key, detail FROM tracks")!
        #expect(abs(track[0].double! - 100) < 0.05)
        #expect(track[1].string!.hasSuffix(";policy=center"))
        #expect(track[2].string == nil)

        // Another policy re-ingests; the same one skips.
        let again = try h.ingest(["--manifest", "m.csv", "--clip-policy", "center", "--report", "r2.json"])
        #expect(try h.report(h.dir.file("r2.json"))["tracks_skipped"] as? Int == 1, "\(again.stderr)")
        #expect(try h.ingest(["--manifest", "m.csv", "--clip-policy", "evenly:2", "--report", "r3.json"]).status == 0)
        #expect(try h.report(h.dir.file("r3.json"))["tracks_ingested"] as? Int == 1)
        #expect(try Self.clips(h).map(\.index) == [0, 2])  // 3 candidates → floor(0.75) = 0, floor(2.25) = 2
    }

    /// `random` picks the same window on a re-run, per track; another seed picks another.
    @Test func randomIsReproducible() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.flac"), seconds: 200)
        try TestMedia.tone(h.dir.file("b.flac"), seconds: 200, frequency: 500)
        try h.dir.write("m.csv", "track_id,path\na,a.flac\nb,b.flac\n")
        let args = ["--manifest", "m.csv", "--clip-policy", "random", "--clip-seed", "42"]
        #expect(try h.ingest(args).status == 0)
        let first = try Self.clips(h)
        #expect(first.count == 2)
        let other = h.dir.file("w2")
        #expect(try h.ingest(args, workdir: other).status == 0)
        let second = try IngestHarness.snapshot(try h.catalog(other))
        #expect(second.clips == (try IngestHarness.snapshot(try h.catalog())).clips)
        let third = h.dir.file("w3")
        #expect(try h.ingest(["--manifest", "m.csv", "--clip-policy", "random", "--clip-seed", "43"], workdir: third).status == 0)
        let starts = try h.catalog(third).database.rows("SELECT start_s FROM clips ORDER BY start_s").map { $0[0].double! }
        #expect(starts != first.map(\.start))
        #expect(first[0].start != first[1].start)  // per track
    }

    /// `best:N` decodes everything and keeps the loudest, least silent windows, in time order.
    @Test func bestKeepsTheLoudestWindows() throws {
        let h = IngestHarness()
        // Six 10-s sections at different levels; section 4 is loud but half digital silence.
        let levels = ["0.05", "0.4", "0.02", "0.3", "0", "0.6"]
        var filters = levels.enumerated().map { i, v in
            "sine=frequency=\(300 + 50 * i):duration=10:sample_rate=44100,volume=\(v)[s\(i)]"
        }
        filters[4] = "sine=frequency=500:duration=5:sample_rate=44100,volume=0.9,apad=whole_dur=10[s4]"
        let graph = filters.joined(separator: ";") + ";" + (0..<6).map { "[s\($0)]" }.joined() + "concat=n=6:v=0:a=1"
        try TestProcess.ffmpeg(["-filter_complex", graph, "-c:a", "flac", h.dir.file("levels.flac")])
        try h.dir.write("m.csv", "track_id,path\nx,levels.flac\n")
        let r = try h.ingest(["--manifest", "m.csv", "--clip-policy", "best:2", "--clip-seconds", "10", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.clips(h).map(\.index) == [1, 5])
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["tracks_seeked"] as? Int == 0)
        // What chose the windows, with their scores (dB: ffmpeg's sine is at 1/8 of full scale), is in the report
        // and the track's detail.
        #expect(report["clip_ranking"] as? String == "loudness")
        let detail = try h.catalog().database.row("SELECT detail FROM tracks")?[0].string ?? ""
        #expect(detail.hasPrefix("best:2 by loudness of 6 candidates: clip 1 (-29.") && detail.contains(", clip 5 (-25."),
                "\(detail)")
    }

    /// A container without an exact duration (an MP3 without a Xing/Info header) cannot place
    /// windows before decoding, and AAC cannot seek within the bound: both are decoded in full
    /// (the MP3 twice: to count, then to cut), and the report and the tracks' detail say why.
    @Test func unseekableInputsFallBackAndSaySo() throws {
        let h = IngestHarness()
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=70:sample_rate=44100", "-ac", "2",
                                "-c:a", "libmp3lame", "-write_xing", "0", h.dir.file("noxing.mp3")])
        try TestMedia.tone(h.dir.file("a.m4a"), seconds: 70)
        try h.dir.write("m.csv", "track_id,path\nnoxing,noxing.mp3\naac,a.m4a\n")
        let r = try h.ingest(["--manifest", "m.csv", "--clip-policy", "center", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["seek_fallbacks"] as? Int == 2)
        #expect(report["seek_fallbacks_by_reason"] as? [String: Int] == ["unknown-duration": 1, "codec-not-seek-accurate": 1])
        #expect(report["tracks_seeked"] as? Int == 0)
        let details = Dictionary(uniqueKeysWithValues: try h.catalog().database.rows("SELECT track_id, detail FROM tracks")
            .map { ($0[0].string!, $0[1].string ?? "") })
        #expect(details["noxing"]?.contains("decoded in full instead of seeking (unknown-duration)") == true)
        #expect(details["aac"]?.contains("decoded in full instead of seeking (codec-not-seek-accurate)") == true)
        let clips = try Self.clips(h)
        #expect(clips.count == 2)
        // The centre of the decoded length (70 s, plus the MP3 encoder's padding when not trimmed).
        for clip in clips { #expect(abs(clip.start - 20) < 0.1, "\(clip)") }
        #expect(r.stdoutText.contains("2 decoded in full instead (codec-not-seek-accurate: 1, unknown-duration: 1)"))
    }

    /// A seeking policy decodes only what it keeps: a track whose container states exactly a length
    /// under --min-clip-seconds fails as too short without being decoded; one whose length is only
    /// estimated (an MP3 without a Xing header) is decoded to find out, as before.
    @Test func tooShortByTheContainerIsNotDecoded() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("short.ogg"), seconds: 8, frequency: 300)
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=8:sample_rate=44100",
                                "-c:a", "libmp3lame", "-write_xing", "0", h.dir.file("noxing.mp3")])
        try TestMedia.tone(h.dir.file("long.ogg"), seconds: 60, frequency: 500)
        // A 10-s segment of a long file is too short in the same way.
        try h.dir.write("m.csv", "track_id,path,start_s,end_s\nshort,short.ogg,,\nnoxing,noxing.mp3,,\nseg,long.ogg,20,30\n")
        let r = try h.ingest(["--manifest", "m.csv", "--clip-policy", "center", "--report", "r.json"])
        // Every track too short: the run ends with an error that says so (ClipPresetTests).
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("no clip stored: all 3 tracks are shorter than a clip"), "\(r.stderr)")
        let rows = Dictionary(uniqueKeysWithValues: try h.catalog().database.rows(
            "SELECT track_id, status, reason, detail, duration_s FROM tracks").map { ($0[0].string!, $0) })
        let short = try #require(rows["short"])
        #expect(short[1].string == "failed" && short[2].string == "too-short")
        #expect(short[3].string?.contains("the container states 8.00 s") == true, "\(short)")
        #expect(short[3].string?.contains("not decoded") == true)
        #expect(abs((short[4].double ?? 0) - 8) < 0.01)
        let mp3 = try #require(rows["noxing"])
        #expect(mp3[2].string == "too-short")
        #expect(mp3[3].string?.contains("of audio is shorter than") == true, "\(mp3)")
        let segment = try #require(rows["seg"])
        #expect(segment[2].string == "too-short")
        #expect(segment[3].string?.contains("the segment holds (by the container's exact length) 10.00 s") == true, "\(segment)")
        // Only the MP3 was decoded.
        let report = try h.report(h.dir.file("r.json"))
        let hours = try #require(report["hours_in"] as? Double)
        #expect(hours * 3600 > 7 && hours * 3600 < 9.5, "\(hours * 3600) s decoded")
        #expect(report["failures_by_reason"] as? [String: Int] == ["too-short": 3])
    }

    @Test func contradictoryOptionsAreAUsageError() throws {
        let h = IngestHarness()
        #expect(try h.ingest(["--scan", ".", "--clip-policy", "middle"]).status == 64)
        #expect(try h.ingest(["--scan", ".", "--clip-policy", "evenly:0"]).status == 64)
        let both = try h.ingest(["--scan", ".", "--clip-policy", "center", "--max-clips-per-track", "2"])
        #expect(both.status == 64)
        #expect(both.stderr.contains("--max-clips-per-track 2 means --clip-policy evenly:2"))
    }
}
