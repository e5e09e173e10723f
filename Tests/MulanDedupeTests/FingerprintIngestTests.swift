import Foundation
@testable import MulanCatalog
import MulanCore
import MulanMedia
import MulanTestSupport
import Testing

@Suite("fingerprints in ingest", .serialized)
struct FingerprintIngestTests {
    /// Bit error rate of two raw fingerprints at their best offset within ±`range` items.
    static func bestBER(_ a: [UInt32], _ b: [UInt32], range: Int = 8) -> Double {
        var best = 1.0
        for off in -range...range {
            var bits = 0, n = 0
            for i in 0..<a.count where i + off >= 0 && i + off < b.count {
                bits += (a[i] ^ b[i + off]).nonzeroBitCount
                n += 1
            }
            if n > 50 { best = min(best, Double(bits) / Double(32 * n)) }
        }
        return best
    }

    static func fpcalcRaw(_ path: String) throws -> [UInt32] {
        let r = try TestProcess.run("fpcalc", ["-raw", "-plain", "-length", "0", path])
        // fpcalc exits 2 after a final "Error decoding audio frame (End of file)" of some Ogg files,
        // having printed the whole fingerprint.
        guard r.status == 0 || !r.stdoutText.isEmpty else { throw TestFailure("fpcalc failed (install libchromaprint-tools): \(r.stderr)") }
        return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
            .compactMap { Int64($0) }.map { UInt32(truncatingIfNeeded: $0) }
    }

    static func fingerprint(_ c: Catalog, _ track: String) throws -> (status: String, items: [UInt32], detail: String?) {
        let r = try c.database.row("""
            SELECT f.status, f.raw, f.detail FROM fingerprints f JOIN tracks t ON t.id = f.track_rowid WHERE t.track_id = ?
            """, [track])
        return (r?[0].string ?? "none", Fingerprint.items(littleEndian: r?[1].bytes ?? []), r?[2].string)
    }

    /// Ingest's fingerprint (fed from its own 16 kHz decode) is Chromaprint's: it agrees with the
    /// fpcalc tool on the same file; bad input gets a status and a reason, never a crash; tracks
    /// ingested before fingerprints existed get one on the next run without their clips being redone.
    @Test func fingerprintsAgreeWithFpcalcBadInputIsRecordedAndOldTracksGetOne() throws {
        let h = IngestHarness()
        let music = DedupeCorpus.wesnoth + "/elvish-theme.ogg"
        let real = FileManager.default.fileExists(atPath: music)
        let piece = real ? music : h.dir.file("a/piece.wav")
        if !real { try SyntheticMusic.write(piece, seconds: 60, seed: 3) }
        try TestMedia.silence(h.dir.file("a/silence.wav"), seconds: 40)
        try TestMedia.tone(h.dir.file("a/short.wav"), seconds: 6, frequency: 300)
        // A pure tone: every item alike.
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=40:sample_rate=44100", h.dir.file("a/tone.wav")])
        try h.dir.write("m.csv", """
            track_id,path
            piece,\(piece)
            silence,a/silence.wav
            short,a/short.wav
            tone,a/tone.wav
            """)
        let r = try h.ingest(["--manifest", "m.csv", "--min-clip-seconds", "5", "--report", h.dir.file("r1.json")])
        #expect(r.status == 3, "\(r.stderr)")  // silence fails as silent
        let c = try h.catalog()

        let ours = try Self.fingerprint(c, "piece")
        #expect(ours.status == "ok")
        let reference = try Self.fpcalcRaw(piece)
        let ber = Self.bestBER(ours.items, reference)
        print(String(format: "ingest fingerprint vs fpcalc: %d vs %d items, bit error rate %.4f", ours.items.count, reference.count, ber))
        #expect(abs(ours.items.count - reference.count) <= 4)
        #expect(ber < 0.05)

        #expect(try Self.fingerprint(c, "silence").status == "silent")
        let short = try Self.fingerprint(c, "short")
        #expect(short.status == "too-short" && short.detail?.contains("fewer than") == true)
        let tone = try Self.fingerprint(c, "tone")
        #expect(tone.status == "low-information" || tone.status == "silent", "\(tone)")
        let r1 = try h.report(h.dir.file("r1.json"))
        #expect((r1["fingerprints_by_status"] as? [String: Int])?["ok"] == 1)

        // None of the bad ones is ever grouped, with each other or with anything else.
        let d = try TestProcess.run(DedupeEndToEndTests.dedupeBinary, ["--workdir", h.workdir, "--quiet"])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(try c.count("SELECT COUNT(*) FROM dup_members") == 0)

        // A catalog from before fingerprints: the next run adds them, clips untouched.
        let clipsBefore = try c.database.rows("SELECT id, flac_sha256 FROM clips ORDER BY id").map { "\($0)" }
        try c.database.run("DELETE FROM fingerprints")
        let again = try h.ingest(["--manifest", "m.csv", "--min-clip-seconds", "5", "--report", h.dir.file("r2.json")])
        #expect(again.status == 3)
        let r2 = try h.report(h.dir.file("r2.json"))
        #expect(r2["tracks_fingerprinted"] as? Int == 3)   // the ingested ones; silence failed
        #expect(r2["clips_written"] as? Int == 0)
        #expect(try c.database.rows("SELECT id, flac_sha256 FROM clips ORDER BY id").map { "\($0)" } == clipsBefore)
        #expect(try Self.fingerprint(c, "piece").items == ours.items)
        // And a third run has nothing to do.
        #expect(try h.ingest(["--manifest", "m.csv", "--min-clip-seconds", "5", "--report", h.dir.file("r3.json")]).status == 3)
        #expect(try h.report(h.dir.file("r3.json"))["tracks_fingerprinted"] as? Int == 0)
    }
}
