import Foundation
@testable import MulanCatalog
import MulanTestSupport
import Testing

/// Corpora whose clips are shorter than 30 s: a run that keeps nothing fails loudly, and
/// `--preset` gives clip lengths that fit MagnaTagATune, MusicCaps and AudioSet.
@Suite("Clip presets and runs that store no clip")
struct ClipPresetTests {
    /// Three 10-s segments (MusicCaps-like) and a 9.6-s one (a download a little short).
    static func segments(_ h: IngestHarness) throws {
        for (i, seconds) in [10.0, 10.0, 10.0, 9.6].enumerated() {
            try TestMedia.tone(h.dir.file("seg\(i).flac"), seconds: seconds, frequency: 300 + 100 * Double(i))
        }
        try h.dir.write("m.csv", "track_id,path\n" + (0..<4).map { "seg\($0),seg\($0).flac\n" }.joined())
    }

    @Test func aRunWhoseTracksAreAllTooShortEndsWithAnErrorThatSaysWhatToPass() throws {
        let h = IngestHarness()
        try Self.segments(h)
        let r = try h.ingest(["--manifest", "m.csv", "--report", "r.json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("no clip stored: all 4 tracks are shorter than a clip with --clip-seconds 30"), "\(r.stderr)")
        #expect(r.stderr.contains("--preset musiccaps") && r.stderr.contains("--preset mtat"), "\(r.stderr)")
        // The summary is still written and printed, every track recorded with its reason.
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["failures_by_reason"] as? [String: Int] == ["too-short": 4])
        #expect(report["clips_written"] as? Int == 0)
        #expect(try h.catalog().database.rows("SELECT reason FROM tracks").map { $0[0].string } == Array(repeating: "too-short", count: 4))
    }

    @Test func musicCapsPresetKeepsOneClipPerSegment() throws {
        let h = IngestHarness()
        try Self.segments(h)
        let r = try h.ingest(["--manifest", "m.csv", "--preset", "musiccaps", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let clips = try h.catalog().database.rows("SELECT duration_s FROM clips ORDER BY duration_s").map { $0[0].double ?? 0 }
        #expect(clips.count == 4)
        #expect(abs(clips[0] - 9.6) < 0.01 && clips[1...].allSatisfy { abs($0 - 10) < 0.01 }, "\(clips)")
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["clip_seconds"] as? Double == 10)
        // An explicit --min-clip-seconds overrides the preset's: the 9.6-s segment is too short then.
        let strict = IngestHarness()
        try Self.segments(strict)
        let s = try strict.ingest(["--manifest", "m.csv", "--preset", "audioset", "--min-clip-seconds", "10"])
        #expect(s.status == 3, "\(s.stderr)")
        #expect(try strict.catalog().database.rows("SELECT COUNT(*) FROM clips")[0][0].int == 3)
    }

    @Test func mtatPresetKeepsEachExcerptWhole() throws {
        let h = IngestHarness()
        // MagnaTagATune's excerpts are about 29.1 s: the default 30-s full clips keep none of them.
        try TestMedia.tone(h.dir.file("a.mp3"), seconds: 29.1, frequency: 440)
        try TestMedia.tone(h.dir.file("b.mp3"), seconds: 29.1, frequency: 550)
        try h.dir.write("m.csv", "track_id,path\na,a.mp3\nb,b.mp3\n")
        let plain = IngestHarness()
        try TestMedia.tone(plain.dir.file("a.mp3"), seconds: 29.1, frequency: 440)
        try plain.dir.write("m.csv", "track_id,path\na,a.mp3\n")
        #expect(try plain.ingest(["--manifest", "m.csv"]).status == 1)
        let r = try h.ingest(["--manifest", "m.csv", "--preset", "mtat"])
        #expect(r.status == 0, "\(r.stderr)")
        let clips = try h.catalog().database.rows("SELECT duration_s FROM clips").map { $0[0].double ?? 0 }
        #expect(clips.count == 2 && clips.allSatisfy { $0 > 29 && $0 < 29.3 }, "\(clips)")
    }

    @Test func anUnknownPresetIsAUsageError() throws {
        let h = IngestHarness()
        let r = try h.ingest(["--scan", ".", "--preset", "mtg"])
        #expect(r.status == 64, "\(r.stderr)")
        #expect(r.stderr.contains("mtat"), "\(r.stderr)")
    }
}
