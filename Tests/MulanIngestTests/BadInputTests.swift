import Foundation
@testable import MulanCatalog
import MulanTestSupport
import Testing

@Suite("Bad input is recorded, never fatal")
struct BadInputTests {
    /// Writes a WAV whose format tag no FFmpeg decoder knows.
    static func unknownCodecWAV(_ path: String) throws {
        var data = Data("RIFF".utf8)
        let payload = [UInt8](repeating: 7, count: 32000)
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24 & 0xff)] }
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        data += le32(4 + 24 + 8 + payload.count) + Array("WAVEfmt ".utf8) + le32(16)
        data += le16(0x4242) + le16(1) + le32(16000) + le32(32000) + le16(2) + le16(16)
        data += Array("data".utf8) + le32(payload.count) + payload
        try data.write(to: URL(fileURLWithPath: path))
    }

    static func truncate(_ source: String, to destination: String, keeping fraction: Double) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        try bytes.prefix(Int(Double(bytes.count) * fraction)).write(to: URL(fileURLWithPath: destination))
    }

    @Test func everyRowEndsIngestedOrFailedWithItsReason() throws {
        let h = IngestHarness()
        let d = h.dir
        // Good sources, some to damage.
        for ext in ["mp3", "ogg", "opus", "flac", "wav", "m4a"] {
            try TestMedia.tone(d.file("good.\(ext)"), seconds: 40, frequency: 500)
            try Self.truncate(d.file("good.\(ext)"), to: d.file("cut.\(ext)"), keeping: 0.5)
        }
        var damaged = try Data(contentsOf: URL(fileURLWithPath: d.file("good.mp3")))
        var state: UInt64 = 42
        for i in stride(from: damaged.count / 4, to: damaged.count * 3 / 4, by: 1) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            if state >> 59 == 0 { damaged[i] = UInt8(truncatingIfNeeded: state >> 24) }
        }
        try damaged.write(to: URL(fileURLWithPath: d.file("damaged.mp3")))
        try Data().write(to: URL(fileURLWithPath: d.file("zero.wav")))
        try Data((0..<20000).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ $0 >> 3) }).write(to: URL(fileURLWithPath: d.file("noise.mp3")))
        try d.write("notes.wav", "these are liner notes, not audio\n")
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "testsrc=d=2:s=64x64", "-c:v", "mpeg4", d.file("video.mp4")])
        try Self.unknownCodecWAV(d.file("alien.wav"))
        try FileManager.default.createDirectory(atPath: d.file("folder.mp3"), withIntermediateDirectories: true)
        symlink(d.file("loop-b.ogg"), d.file("loop-a.ogg"))
        symlink(d.file("loop-a.ogg"), d.file("loop-b.ogg"))
        try FileManager.default.copyItem(atPath: d.file("good.ogg"), toPath: d.file("odd name\nwith newline é.ogg"))
        try FileManager.default.copyItem(atPath: d.file("good.ogg"), toPath: d.file("wrong-extension.mp3"))

        let rows: [(id: String, path: String, expected: String)] = [
            ("good-mp3", "good.mp3", "ingested"), ("good-ogg", "good.ogg", "ingested"),
            ("good-opus", "good.opus", "ingested"), ("good-flac", "good.flac", "ingested"),
            ("good-wav", "good.wav", "ingested"), ("good-m4a", "good.m4a", "ingested"),
            ("odd-path", "odd name\nwith newline é.ogg", "ingested"),
            ("wrong-ext", "wrong-extension.mp3", "ingested"),
            ("cut-mp3", "cut.mp3", "truncated"), ("cut-ogg", "cut.ogg", "truncated"),
            ("cut-opus", "cut.opus", "truncated"), ("cut-flac", "cut.flac", "truncated"),
            ("cut-wav", "cut.wav", "truncated"), ("cut-m4a", "cut.m4a", "corrupt"),
            ("damaged", "damaged.mp3", "corrupt"),
            ("missing", "not-there.ogg", "missing-file"), ("zero", "zero.wav", "empty-file"),
            ("noise", "noise.mp3", "not-audio"), ("text", "notes.wav", "not-audio"),
            ("video", "video.mp4", "no-audio-stream"), ("alien", "alien.wav", "unsupported-codec"),
            ("folder", "folder.mp3", "not-audio"), ("loop", "loop-a.ogg", "unreadable"),
        ]
        var csv = "track_id,path\n"
        for r in rows { csv += "\(r.id),\"\(r.path)\"\n" }
        csv += "good-mp3,good.mp3\n"            // duplicate id
        csv += ",good.mp3\n"                    // no id
        csv += "extra,good.mp3,surplus\n"       // wrong field count
        try d.write("m.csv", csv)

        let result = try h.ingest(["--manifest", "m.csv", "--report", "r.json"])
        #expect(result.status == 3, "\(result.stderr)")
        let c = try h.catalog()
        let outcome = Dictionary(uniqueKeysWithValues: try c.database.rows("SELECT track_id, status, reason FROM tracks")
            .map { ($0[0].string!, $0[1].string == "ingested" ? "ingested" : ($0[2].string ?? "?")) })
        for r in rows {
            #expect(outcome[r.id] == r.expected, "\(r.id): \(outcome[r.id] ?? "no row")")
        }
        // Every failure says what happened in words, and warnings name the manifest line.
        let details = try c.database.rows("SELECT track_id, detail FROM tracks WHERE status = 'failed'")
        #expect(details.allSatisfy { ($0[1].string ?? "").count > 20 })
        #expect(result.stderr.contains("m.csv:18, track missing: missing-file"))

        let rejects = try c.database.rows("SELECT manifest_line, reason FROM rejected_rows ORDER BY manifest_line")
            .map { "\($0[0].int!):\($0[1].string!)" }
        let n = rows.count
        // Lines after the quoted path with a newline in it are one further down.
        #expect(rejects == ["\(n + 3):duplicate-track-id", "\(n + 4):invalid-row", "\(n + 5):invalid-row"])
        // Nothing lost: every manifest row is a track or a rejected row.
        #expect(outcome.count + rejects.count == n + 3)
        let report = try h.report(d.file("r.json"))
        #expect(report["tracks_total"] as? Int == n + 3)
        let byReason = report["failures_by_reason"] as? [String: Int] ?? [:]
        #expect(byReason["truncated"] == 5 && byReason["invalid-row"] == 2 && byReason["duplicate-track-id"] == 1)
        #expect(IngestHarness.files(below: h.workdir + "/staging").isEmpty)
    }

    @Test func unreadableFileIsRecorded() throws {
        // Permission bits do not stop root, so this case is only meaningful for other users.
        guard getuid() != 0 else { return }
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("locked.wav"), seconds: 31)
        chmod(h.dir.file("locked.wav"), 0)
        try h.dir.write("m.csv", "track_id,path\nlocked,locked.wav\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 3)
        #expect(try h.catalog().database.row("SELECT reason FROM tracks")?[0].string == "unreadable")
    }
}
