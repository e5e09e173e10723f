import Foundation
@testable import MulanCatalog
import MulanMedia
import MulanTestSupport
import Testing

/// mulan-ingest's loudness: every stored clip measured (catalog columns against the ffmpeg CLI's
/// `ebur128` filter on the stored file), `--loudness-target` normalization with its true-peak
/// ceiling, and the backfill of clips ingested before loudness existed.
@Suite("mulan-ingest loudness", .serialized)
struct LoudnessIngestTests {
    /// As in MulanMediaTests' LoudnessTests (docs/ingest.md#loudness).
    static let integratedTolerance = 0.02
    static let rangeTolerance = 0.1
    static let truePeakTolerance = 0.3

    struct ClipRow {
        var track: String
        var index: Int
        var flacPath: String
        var status: String?
        var lufs: Double?
        var range: Double?
        var truePeak: Double?
        var lufsBefore: Double?
        var truePeakBefore: Double?
        var gain: Double?
        var sha: String
    }

    static func clips(_ c: Catalog) throws -> [ClipRow] {
        try c.database.rows("""
            SELECT t.track_id, c.clip_index, c.flac_path, c.loudness_status, c.lufs, c.loudness_range, c.true_peak_db,
                   c.lufs_before, c.true_peak_before_db, c.loudness_gain_db, c.flac_sha256
            FROM clips c JOIN tracks t ON t.id = c.track_rowid WHERE c.status = 'kept' ORDER BY t.track_id, c.clip_index
            """).map {
            ClipRow(track: $0[0].string ?? "", index: $0[1].int ?? -1, flacPath: $0[2].string ?? "", status: $0[3].string,
                    lufs: $0[4].double, range: $0[5].double, truePeak: $0[6].double, lufsBefore: $0[7].double,
                    truePeakBefore: $0[8].double, gain: $0[9].double, sha: $0[10].string ?? "")
        }
    }

    /// 50 ms bursts of a 1 kHz tone, once a second, over a −56 dBFS noise floor (not digital
    /// silence): about 12 dB between true peak and loudness, so a loud target hits the ceiling.
    static func bursts(_ path: String) throws {
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "aevalsrc=0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,0.05):s=44100:d=31",
                                "-f", "lavfi", "-i", "anoisesrc=d=31:r=44100:a=0.003:seed=8",
                                "-filter_complex", "[0][1]amix=inputs=2:normalize=0", "-c:a", "pcm_s16le", path])
    }

    @Test func storedClipsAreMeasuredAsFFmpegMeasuresThem() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("loud.ogg"), seconds: 65, frequency: 330, seed: 2)
        try TestMedia.tone(h.dir.file("quiet.mp3"), seconds: 31, frequency: 523, seed: 3, gainDB: -22)
        try Self.bursts(h.dir.file("bursts.wav"))
        try h.dir.write("m.csv", "track_id,path\nloud,loud.ogg\nquiet,quiet.mp3\nbursts,bursts.wav\n")
        let r = try h.ingest(["--manifest", "m.csv", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try Self.clips(h.catalog())
        #expect(rows.count == 4)
        for row in rows {
            #expect(row.status == "measured")
            #expect(row.lufsBefore == nil && row.gain == nil, "normalization is off by default")
            let reference = try FFmpegLoudness.measure(h.workdir + "/" + row.flacPath)
            print("loudness ingest \(row.track)/\(row.index): catalog I \(row.lufs ?? .nan) LRA \(row.range ?? .nan) "
                  + "TP \(row.truePeak ?? .nan); \(reference)")
            #expect(abs((row.lufs ?? .nan) - (reference.integrated ?? .nan)) <= Self.integratedTolerance, "\(row.track)")
            #expect(abs((row.range ?? .nan) - reference.range) <= Self.rangeTolerance, "\(row.track)")
            #expect(abs((row.truePeak ?? .nan) - (reference.truePeak ?? .nan)) <= Self.truePeakTolerance, "\(row.track)")
        }
        // Against ffmpeg's own decode, downmix (stereo → 0.5·(L+R), as stored) and resampling of the source.
        let reference16 = h.dir.file("loud-clip0.wav")
        try TestProcess.ffmpeg(["-i", h.dir.file("loud.ogg"), "-t", "30", "-ac", "1", "-ar", "16000", "-sample_fmt", "s16",
                                reference16])
        let source = try FFmpegLoudness.measure(reference16)
        let clip0 = try #require(rows.first { $0.track == "loud" && $0.index == 0 })
        #expect(abs((clip0.lufs ?? .nan) - (source.integrated ?? .nan)) <= Self.integratedTolerance, "\(source)")
        // 22 dB quieter source, 22 LU quieter clip.
        let quiet = try #require(rows.first { $0.track == "quiet" })
        #expect(abs((clip0.lufs ?? 0) - (quiet.lufs ?? 0) - 22) < 0.5)
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["loudness_by_status"] as? [String: Int] == ["measured": 4])
        #expect(report["clips_normalized"] as? Int == 0)
    }

    @Test func normalizationReachesTheTargetUnderTheTruePeakCeiling() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("tone.ogg"), seconds: 65, frequency: 330, seed: 2, gainDB: -10)
        try Self.bursts(h.dir.file("bursts.wav"))
        try h.dir.write("m.csv", "track_id,path\ntone,tone.ogg\nbursts,bursts.wav\n")
        let target = -10.0, ceiling = -1.0
        let options = ["--manifest", "m.csv", "--loudness-target", "\(target)", "--loudness-max-true-peak", "\(ceiling)"]
        let r = try h.ingest(options + ["--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try h.catalog()
        let rows = try Self.clips(c)
        #expect(rows.count == 3)
        for row in rows {
            let before = try #require(row.lufsBefore)
            let gain = try #require(row.gain)
            let peakBefore = try #require(row.truePeakBefore)
            let lufs = try #require(row.lufs)
            let peak = try #require(row.truePeak)
            // The stored file, measured again: by libebur128 and by ffmpeg.
            let file = h.workdir + "/" + row.flacPath
            let remeasured = LoudnessMeter.measure(file: file, sampleRate: 16000)
            let reference = try FFmpegLoudness.measure(file)
            print("loudness normalized \(row.track)/\(row.index): before I \(before) TP \(peakBefore), gain \(gain) → "
                  + "I \(lufs) TP \(peak); stored file: libebur128 I \(remeasured.integratedLUFS ?? .nan) TP "
                  + "\(remeasured.truePeakDB ?? .nan); \(reference)")
            #expect(abs((remeasured.integratedLUFS ?? .nan) - lufs) <= 0.01)
            #expect(abs((reference.integrated ?? .nan) - lufs) <= Self.integratedTolerance)
            #expect(peak <= ceiling)
            #expect((remeasured.truePeakDB ?? .nan) <= ceiling, "the stored file, after 16-bit rounding, is under the ceiling too")
            if row.track == "tone" {
                // Unlimited: at the target.
                #expect(abs(lufs - target) <= 0.01)
                #expect(abs((remeasured.integratedLUFS ?? .nan) - target) <= 0.1)
                #expect(abs(gain - (target - before)) <= 0.02)
            } else {
                // The ceiling holds the gain back: true peak 0.01 dB under the ceiling, quieter than the target.
                #expect(abs(gain - (ceiling - 0.01 - peakBefore)) <= 1e-6)
                #expect(abs(peak - (ceiling - 0.01)) <= 0.001)
                #expect(lufs < target - 1)
            }
        }
        #expect(try c.count("SELECT COUNT(*) FROM tracks WHERE loudness_target_lufs = -10 AND loudness_max_true_peak_db = -1") == 2)
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["clips_normalized"] as? Int == 3)
        #expect(report["clips_gain_limited"] as? Int == 1)

        // The same settings again: nothing to redo. Normalization off: a re-ingest at the clips' own level.
        let again = try h.ingest(options + ["--report", "r2.json"])
        #expect(again.status == 0)
        #expect(try h.report(h.dir.file("r2.json"))["tracks_skipped"] as? Int == 2)
        #expect(try h.ingest(["--manifest", "m.csv", "--report", "r3.json"]).status == 0)
        #expect(try h.report(h.dir.file("r3.json"))["tracks_ingested"] as? Int == 2)
        let plain = try Self.clips(h.catalog())
        for (normalized, row) in zip(rows, plain) {
            #expect(row.gain == nil && row.lufsBefore == nil)
            #expect(abs((row.lufs ?? .nan) - (normalized.lufsBefore ?? .nan)) <= 1e-9)
            #expect(row.sha != normalized.sha)
        }
        #expect(try h.catalog().count("SELECT COUNT(*) FROM tracks WHERE loudness_target_lufs IS NOT NULL") == 0)
    }

    @Test func aReRunMeasuresClipsIngestedBeforeLoudness() throws {
        let h = IngestHarness()
        try TestMedia.tone(h.dir.file("a.ogg"), seconds: 65, frequency: 330, seed: 2)
        try TestMedia.tone(h.dir.file("b.flac"), seconds: 31, frequency: 440, channels: 1, seed: 5, gainDB: -15)
        try h.dir.write("m.csv", "track_id,path\na,a.ogg\nb,b.flac\n")
        #expect(try h.ingest(["--manifest", "m.csv"]).status == 0)
        let measured = try Self.clips(h.catalog())
        let store = IngestHarness.files(below: h.workdir + "/clips")
        // As a catalog from before schema 5 has them: no loudness, and (for b) no fingerprint either.
        let c = try h.catalog()
        try c.database.run("UPDATE clips SET lufs = NULL, loudness_range = NULL, true_peak_db = NULL, loudness_status = NULL")
        try c.database.run("DELETE FROM fingerprints WHERE track_rowid = (SELECT id FROM tracks WHERE track_id = 'b')")
        let r = try h.ingest(["--manifest", "m.csv", "--report", "r.json"])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try h.report(h.dir.file("r.json"))
        #expect(report["tracks_skipped"] as? Int == 2)
        #expect(report["clips_loudness_backfilled"] as? Int == 3)
        #expect(report["tracks_fingerprinted"] as? Int == 1)
        #expect(try h.catalog().count("SELECT COUNT(*) FROM fingerprints") == 2)
        let backfilled = try Self.clips(h.catalog())
        #expect(backfilled.count == measured.count)
        for (before, after) in zip(measured, backfilled) {
            #expect(after.status == "measured")
            // From the stored 16-bit file instead of the float samples: the same to 0.01.
            #expect(abs((after.lufs ?? .nan) - (before.lufs ?? .nan)) <= 0.01)
            #expect(abs((after.range ?? .nan) - (before.range ?? .nan)) <= 0.01)
            #expect(abs((after.truePeak ?? .nan) - (before.truePeak ?? .nan)) <= 0.01)
            #expect(after.sha == before.sha)
        }
        #expect(IngestHarness.files(below: h.workdir + "/clips") == store)
        // Nothing left to measure: the next run skips the tracks outright.
        #expect(try h.ingest(["--manifest", "m.csv", "--report", "r2.json"]).status == 0)
        #expect(try h.report(h.dir.file("r2.json"))["clips_loudness_backfilled"] as? Int == 0)
    }

    @Test func badLoudnessOptionsAreUsageErrors() throws {
        let h = IngestHarness()
        try h.dir.write("m.csv", "track_id,path\n")
        let orphan = try h.ingest(["--manifest", "m.csv", "--loudness-max-true-peak", "-2"])
        #expect(orphan.status == 64)
        #expect(orphan.stderr.contains("--loudness-target"))
        #expect(try h.ingest(["--manifest", "m.csv", "--loudness-target", "5"]).status == 64)
        let loudCeiling = try h.ingest(["--manifest", "m.csv", "--loudness-target", "-14", "--loudness-max-true-peak", "1"])
        #expect(loudCeiling.status == 64)
        #expect(loudCeiling.stderr.contains("--loudness-max-true-peak"))
    }
}
