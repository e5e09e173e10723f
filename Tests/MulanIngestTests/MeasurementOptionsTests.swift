import Foundation
@testable import MulanCatalog
import MulanCore
import MulanShards
import MulanTestSupport
import Testing

/// `mulan-ingest --fingerprint off` and `--loudness off|integrated|full` (issue 18): less measured,
/// the same clips; a later run that asks for more measures only what is missing, from the stored
/// clips, and ends where an ingest with everything on would.
@Suite("Ingest measurement options", .serialized)
struct MeasurementOptionsTests {
    static func tracks(_ h: IngestHarness) throws {
        for (i, f) in [220.0, 330.0, 440.0].enumerated() {
            try TestMedia.tone(h.dir.file("t\(i).flac"), seconds: 21, frequency: f)
        }
        try h.dir.write("m.csv", "track_id,path\n" + (0..<3).map { "t\($0),t\($0).flac\n" }.joined())
    }

    /// (clip hash, status, LUFS, range, true peak) of every kept clip, in clip order.
    static func clips(_ h: IngestHarness) throws -> [(sha: String, status: String?, lufs: Double?, range: Double?, peak: Double?)] {
        try h.catalog().database.rows("""
            SELECT c.flac_sha256, c.loudness_status, c.lufs, c.loudness_range, c.true_peak_db FROM clips c
            JOIN tracks t ON t.id = c.track_rowid WHERE c.status = 'kept' ORDER BY t.track_id, c.clip_index
            """).map { ($0[0].string ?? "", $0[1].string, $0[2].double, $0[3].double, $0[4].double) }
    }

    static func fingerprints(_ h: IngestHarness) throws -> Int {
        try h.catalog().database.rows("SELECT COUNT(*) FROM fingerprints")[0][0].int ?? -1
    }

    @Test func lessMeasuredFirstThenBackfilledToWhatAFullIngestRecords() throws {
        let h = IngestHarness()
        try Self.tracks(h)
        let off = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--fingerprint", "off", "--loudness", "off",
                                "--report", "r1.json"])
        #expect(off.status == 0, "\(off.stderr)")
        let r1 = try h.report(h.dir.file("r1.json"))
        #expect(r1["loudness_measured"] as? String == "off" && r1["fingerprints"] as? Bool == false)
        let stored = try Self.clips(h)
        #expect(stored.count == 6 && stored.allSatisfy { $0.status == nil && $0.lufs == nil && $0.peak == nil })
        #expect(try Self.fingerprints(h) == 0)

        // Integrated loudness only: measured from the stored clips, true peak left empty, nothing re-ingested.
        let integrated = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--fingerprint", "off",
                                       "--loudness", "integrated", "--report", "r2.json"])
        #expect(integrated.status == 0, "\(integrated.stderr)")
        let r2 = try h.report(h.dir.file("r2.json"))
        #expect(r2["tracks_ingested"] as? Int == 0 && r2["clips_loudness_backfilled"] as? Int == 6, "\(r2)")
        let middle = try Self.clips(h)
        #expect(middle.map(\.sha) == stored.map(\.sha))
        #expect(middle.allSatisfy { $0.status == "measured" && $0.lufs != nil && $0.range != nil && $0.peak == nil })
        #expect(try Self.fingerprints(h) == 0)

        // Everything (the defaults): the true peaks and the fingerprints are added.
        let full = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--report", "r3.json"])
        #expect(full.status == 0, "\(full.stderr)")
        let r3 = try h.report(h.dir.file("r3.json"))
        #expect(r3["tracks_ingested"] as? Int == 0 && r3["clips_loudness_backfilled"] as? Int == 6
                && r3["tracks_fingerprinted"] as? Int == 3, "\(r3)")
        let after = try Self.clips(h)
        #expect(after.map(\.sha) == stored.map(\.sha) && after.allSatisfy { $0.peak != nil })
        #expect(try Self.fingerprints(h) == 3)
        // A run with nothing more to measure does nothing.
        let again = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--report", "r4.json"])
        #expect(again.status == 0)
        let r4 = try h.report(h.dir.file("r4.json"))
        #expect(r4["clips_loudness_backfilled"] as? Int == 0 && r4["tracks_fingerprinted"] as? Int == 0, "\(r4)")

        // The same values as an ingest with everything on from the start (the stored 16-bit clip
        // against the float samples before encoding: within 0.01).
        let reference = IngestHarness()
        try Self.tracks(reference)
        #expect(try reference.ingest(["--manifest", "m.csv", "--clip-seconds", "10"]).status == 0)
        let want = try Self.clips(reference)
        #expect(want.map(\.sha) == after.map(\.sha))
        for (a, b) in zip(after, want) {
            #expect(a.status == b.status)
            #expect(abs((a.lufs ?? 0) - (b.lufs ?? 1)) < 0.01 && abs((a.peak ?? 0) - (b.peak ?? 1)) < 0.01
                    && abs((a.range ?? 0) - (b.range ?? 1)) < 0.01, "\(a) vs \(b)")
        }
        #expect(try Self.fingerprints(reference) == 3)
    }

    @Test func loudnessTargetNeedsTheFullMeasurement() throws {
        let h = IngestHarness()
        try Self.tracks(h)
        let r = try h.ingest(["--manifest", "m.csv", "--loudness-target", "-16", "--loudness", "integrated"])
        #expect(r.status == 64 && r.stderr.contains("--loudness-target needs the full loudness measurement"), "\(r.stderr)")
    }

    /// `mulan-shard --max-true-peak` cannot judge a clip measured without its true peak: left out as not measured.
    @Test func shardTruePeakRuleLeavesOutClipsWithoutATruePeak() {
        let filter = LoudnessFilter(maxTruePeakDB: -1)
        #expect(filter.reason(status: "measured", lufs: -20, truePeakDB: nil) == .notMeasured)
        #expect(filter.reason(status: "measured", lufs: -20, truePeakDB: -3) == nil)
        #expect(LoudnessFilter(minLUFS: -30).reason(status: "measured", lufs: -20, truePeakDB: nil) == nil)
    }
}
