import Foundation
@testable import MulanCatalog
import MulanCore
import MulanMedia
import MulanTestSupport
import Testing

@Suite("mulan-ingest end to end")
struct IngestEndToEndTests {
    @Test func clipsCatalogAndMetadata() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("media/long.ogg"), seconds: 65, frequency: 330,
                           tags: ["title": "Night Drive", "genre": "Synthwave", "comment": "slow, dreamy"])
        try TestMedia.tone(h.dir.file("media/one.mp3"), seconds: 31, frequency: 550)
        try TestMedia.tone(h.dir.file("media/short.wav"), seconds: 20)
        try TestMedia.silence(h.dir.file("media/quiet.flac"), seconds: 35)
        try h.dir.write("tracks.jsonl", """
            {"track_id": "long", "path": "media/long.ogg", "split": "train"}
            {"track_id": "one", "path": "media/one.mp3"}
            {"track_id": "short", "path": "media/short.wav"}
            {"track_id": "quiet", "path": "media/quiet.flac"}
            """)
        let r = try h.ingest(["--manifest", "tracks.jsonl", "--report", "report.json"])
        #expect(r.status == 3, "stderr: \(r.stderr)")  // completed, with failed inputs
        let c = try h.catalog()
        let status = Dictionary(uniqueKeysWithValues: try c.database.rows(
            "SELECT track_id, status, reason FROM tracks").map { ($0[0].string!, "\($0[1].string!)/\($0[2].string ?? "")") })
        #expect(status == ["long": "ingested/", "one": "ingested/", "short": "failed/too-short", "quiet": "failed/silent"])

        // Clips: 65 s → two 30-s clips, 5 s tail dropped; 31 s → one clip.
        let clips = try c.database.rows("""
            SELECT t.track_id, c.clip_index, c.start_s, c.duration_s, c.status, c.flac_path, c.flac_sha256, c.rms, c.peak
            FROM clips c JOIN tracks t ON t.id = c.track_rowid ORDER BY t.track_id, c.clip_index
            """)
        #expect(clips.map { "\($0[0].string!):\($0[1].int!):\($0[4].string!)" }
                == ["long:0:kept", "long:1:kept", "one:0:kept", "quiet:0:silent"])
        #expect(clips[1][2].double == 30 && clips[1][3].double == 30)
        #expect(try c.database.row("SELECT tail_dropped_s FROM tracks WHERE track_id = 'long'")?[0].double == 5)

        // Each stored clip is FLAC whose samples equal, within one 16-bit step, what the ffmpeg CLI
        // writes as 16-bit mono (its integer downmix: 0.5·(L+R) for this stereo file, no clipping).
        let reference = try TestProcess.ffmpegDecode(h.dir.file("media/long.ogg"), rate: 16000, extra: [])
        let reference16 = try TestProcess.ffmpegDecode16(h.dir.file("media/long.ogg"), rate: 16000)
        let gain = 0.5.squareRoot()
        #expect(try c.database.row("SELECT downmix_gain FROM tracks WHERE track_id = 'long'")?[0].double
                .map { abs($0 - gain) < 1e-9 } == true)
        for clip in clips.prefix(2) {
            let path = h.workdir + "/" + clip[5].string!
            #expect(try SHA256Digest.hex(ofFile: path).digest == clip[6].string)
            let decoded = try TestProcess.ffmpegDecode(path, rate: 16000)
            let start = clip[1].int! * 480_000
            let expected = reference16[start..<(start + 480_000)]
            #expect(decoded.count == 480_000)
            let worst = zip(decoded, expected).map { abs($0 - $1) }.max() ?? 1
            #expect(worst <= 1.0 / 32768 + 1e-9, "largest difference \(worst * 32768) steps")
            let rms = (reference[start..<(start + 480_000)].reduce(0.0) { $0 + Double($1) * Double($1) } / 480_000)
                .squareRoot() * gain
            #expect(abs(clip[7].double! - rms) < 1e-6)
        }

        // Container tags become raw texts with their tag names.
        let texts = Set(try c.database.rows("SELECT field, text FROM raw_texts WHERE track_id = 'long'")
            .map { "\($0[0].string!.lowercased())=\($0[1].string!)" })
        #expect(texts.isSuperset(of: ["title=Night Drive", "genre=Synthwave", "comment=slow, dreamy"]))

        let track = try c.database.row("""
            SELECT container, codec, orig_sample_rate, orig_channels, file_size, content_hash, split, manifest_line
            FROM tracks WHERE track_id = 'long'
            """)!
        #expect(track[0].string == "ogg" && track[1].string == "vorbis")
        #expect(track[2].int == 44100 && track[3].int == 2)
        #expect(track[4].int == (try FileManager.default.attributesOfItem(atPath: h.dir.file("media/long.ogg"))[.size] as? Int))
        #expect(track[5].string == (try SHA256Digest.hex(ofFile: h.dir.file("media/long.ogg")).digest))
        #expect(track[6].string == "train" && track[7].int == 1)

        // The report.
        let report = try h.report(h.dir.file("report.json"))
        #expect(report["tracks_total"] as? Int == 4)
        #expect(report["tracks_ingested"] as? Int == 2)
        #expect(report["tracks_failed"] as? Int == 2)
        #expect(report["tracks_skipped"] as? Int == 0)
        #expect(report["clips_written"] as? Int == 3)
        #expect(report["tails_dropped"] as? Int == 2)  // long (5 s) and one (1 s); failed tracks do not count
        #expect(report["failures_by_reason"] as? [String: Int] == ["too-short": 1, "silent": 1])
        #expect(abs((report["hours_kept"] as? Double ?? 0) - 90.0 / 3600) < 1e-9)
        #expect(abs((report["hours_in"] as? Double ?? 0) - 151.0 / 3600) < 0.01 / 3600 * 100)
        #expect(r.stdoutText.contains("too-short: 1"))

        // The store holds exactly the referenced files; nothing is left in staging.
        let store = IngestHarness.files(below: h.workdir + "/clips")
        #expect(store == Set(clips.compactMap { $0[5].string.map { String($0.dropFirst("clips/".count)) } }))
        #expect(IngestHarness.files(below: h.workdir + "/staging").isEmpty)
    }

    @Test func loudStereoIsNotClipped() throws {
        let h = IngestHarness()
        // Identical loud channels: the float downmix (0.707·(L+R)) would reach 1.27 × full scale.
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=220:duration=31:sample_rate=44100", "-af", "volume=2.3",
                                "-ac", "2", "-c:a", "pcm_s16le", h.dir.file("loud.wav")])
        try h.dir.write("m.csv", "track_id,path\nloud,loud.wav\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        let row = try h.catalog().database.row("SELECT flac_path, peak FROM clips")!
        #expect((row[1].double ?? 2) < 1)
        let decoded = try TestProcess.ffmpegDecode(h.workdir + "/" + row[0].string!, rate: 16000)
        #expect(decoded.filter { abs($0) >= 32767.0 / 32768 }.count == 0)
    }

    @Test func optionsShapeTheClips() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.flac"), seconds: 100)
        try h.dir.write("m.csv", "track_id,path,start_s,end_s\nfull,a.flac,,\nseg,a.flac,12.5,50\n")
        let r = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--min-clip-seconds", "4",
                              "--max-clips-per-track", "3", "--sample-rate", "24000", "--silence-db", "-50"])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try h.catalog()
        let rows = try c.database.rows("""
            SELECT t.track_id, c.clip_index, c.duration_s, c.sample_rate FROM clips c JOIN tracks t ON t.id = c.track_rowid
            ORDER BY t.track_id, c.clip_index
            """).map { "\($0[0].string!):\($0[1].int!):\($0[2].double!):\($0[3].int!)" }
        // full: 10 candidates → picks 1, 5, 8; seg: 37.5 s → 3 full + a 7.5-s tail = 4 candidates → 0, 2, 3.
        #expect(rows == ["full:1:10.0:24000", "full:5:10.0:24000", "full:8:10.0:24000",
                         "seg:0:10.0:24000", "seg:2:10.0:24000", "seg:3:7.5:24000"])
        let path = h.workdir + "/" + (try c.database.row(
            "SELECT flac_path FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE t.track_id = 'seg' AND clip_index = 3")![0].string!)
        let probe = try TestProcess.run("ffprobe", ["-v", "error", "-show_entries", "stream=sample_rate,channels",
                                                    "-of", "csv=p=0", path])
        #expect(probe.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "24000,1")
    }

    @Test func scanDerivesTrackIDsFromRelativePaths() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("lib/Artist Ä/01 first.mp3"), seconds: 31)
        try TestMedia.tone(h.dir.file("lib/second.ogg"), seconds: 31)
        try h.dir.write("lib/cover.txt", "not audio")
        let r = try h.ingest(["--scan", "lib", "--glob", "*.mp3", "--glob", "*.ogg"])
        #expect(r.status == 0, "\(r.stderr)")
        let ids = try h.catalog().database.rows("SELECT track_id FROM tracks ORDER BY track_id").map { $0[0].string! }
        #expect(ids == ["Artist Ä/01 first.mp3", "second.ogg"])
    }

    @Test func rerunSkipsUnchangedAndRedoesChangedFiles() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 62, frequency: 300)
        try TestMedia.tone(h.dir.file("b.ogg"), seconds: 31, frequency: 400)
        try h.dir.write("m.csv", "track_id,path\na,a.ogg\nb,b.ogg\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        let first = try IngestHarness.snapshot(h.catalog())
        let storeBefore = IngestHarness.files(below: h.workdir + "/clips")

        let again = try h.ingest(["--manifest", "m.csv", "--report", "r2.json"])
        #expect(again.status == 0)
        #expect(try h.report(h.dir.file("r2.json"))["tracks_skipped"] as? Int == 2)
        let second = try IngestHarness.snapshot(h.catalog())
        #expect(second.tracks == first.tracks && second.clips == first.clips)

        // Change a's content: it is re-ingested and its old clips leave the store.
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 31, frequency: 800)
        let third = try h.ingest(["--manifest", "m.csv", "--report", "r3.json"])
        #expect(third.status == 0)
        let report = try h.report(h.dir.file("r3.json"))
        #expect(report["tracks_ingested"] as? Int == 1 && report["tracks_skipped"] as? Int == 1)
        let c = try h.catalog()
        #expect(try c.count("SELECT COUNT(*) FROM clips") == 2)
        let storeAfter = IngestHarness.files(below: h.workdir + "/clips")
        #expect(storeAfter.count == 2)
        #expect(storeAfter.intersection(storeBefore).count == 1)  // b's clip stays
        #expect(try c.pendingGarbage().isEmpty)

        // Other settings re-ingest everything.
        let fourth = try h.ingest(["--manifest", "m.csv", "--sample-rate", "22050", "--report", "r4.json"])
        #expect(fourth.status == 0)
        #expect(try h.report(h.dir.file("r4.json"))["tracks_ingested"] as? Int == 2)
    }

    @Test func unchangedFailuresAreReportedAgain() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("short.wav"), seconds: 5)
        try TestMedia.tone(h.dir.file("ok.wav"), seconds: 31)
        try h.dir.write("m.csv", "track_id,path\nshort,short.wav\nok,ok.wav\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 3)
        let again = try h.ingest(["--manifest", "m.csv", "--report", "r.json"])
        #expect(again.status == 3)
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["tracks_skipped"] as? Int == 1)
        #expect(report["tracks_failed"] as? Int == 1)
        #expect(report["failures_by_reason"] as? [String: Int] == ["too-short": 1])
        #expect(again.stderr.contains("unchanged since an earlier run"))
    }

    @Test func secondWriterOnOneWorkdirIsRefused() throws {
        let h = IngestHarness()
        try FileManager.default.createDirectory(atPath: h.workdir, withIntermediateDirectories: true)
        let lock = try WorkdirLockHolder(path: h.workdir + "/.lock")
        try TestMedia.tone(h.dir.file("a.wav"), seconds: 31)
        try h.dir.write("m.csv", "track_id,path\na,a.wav\n")
        let r = try h.ingest(["--manifest", "m.csv"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("in use"))
        withExtendedLifetime(lock) {}
    }

    @Test func usageErrorsExit64() throws {
        let h = IngestHarness()
        #expect(try h.ingest([]).status == 64)
        #expect(try h.ingest(["--scan", ".", "--sample-rate", "11025"]).status == 64)
        #expect(try h.ingest(["--scan", ".", "--jobs", "0"]).status == 64)
        let missing = try h.ingest(["--manifest", "nope.csv"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.csv"))
    }

    @Test func progressAndJSONLogs() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.wav"), seconds: 31)
        try h.dir.write("m.csv", "track_id,path\na,a.wav\nb,missing.wav\n")
        let r = try TestProcess.run(IngestHarness.binary, ["--workdir", h.workdir, "--manifest", "m.csv",
                                                           "--log-format", "json"],
                                    cwd: h.dir.path, environment: ["MULAN_PROGRESS_INTERVAL": "0"])
        #expect(r.status == 3)
        let events = r.stderr.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
        #expect(events.count == r.stderr.split(separator: "\n").count)  // every line is JSON
        #expect(events.contains { $0["event"] == "progress" && $0["done"] == "2" && $0["total"] == "2" })
        #expect(events.contains { $0["event"] == "input_failed" && $0["reason"] == "missing-file" && $0["line"] == "3" })
        // Text mode off a terminal: plain progress lines.
        let text = try TestProcess.run(IngestHarness.binary, ["--workdir", h.dir.file("w2"), "--manifest", "m.csv"],
                                       cwd: h.dir.path, environment: ["MULAN_PROGRESS_INTERVAL": "0"])
        #expect(text.stderr.contains("progress: 2/2 tracks"))
    }
}

/// Holds the work directory's lock as another process would.
final class WorkdirLockHolder {
    let fd: Int32
    init(path: String) throws {
        fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else { throw TestFailure("cannot lock \(path)") }
        _ = "test pid \(getpid())\n".withCString { write(fd, $0, strlen($0)) }
    }
    deinit { close(fd) }
}
