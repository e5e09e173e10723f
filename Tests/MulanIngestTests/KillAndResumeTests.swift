import Foundation
@testable import MulanCatalog
import MulanTestSupport
import Testing

/// `kill -9` at any moment, then a re-run, must give the same catalog and store as an
/// uninterrupted run: no duplicate or missing rows, no orphan or partial files.
@Suite("Kill and resume", .serialized)
struct KillAndResumeTests {
    @Test func crashResumeIngest() throws {
        let h = IngestHarness()
        var csv = "track_id,path\n"
        for i in 0..<12 {
            let name = "t\(i).ogg"
            try TestMedia.tone(h.dir.file(name), seconds: 65, frequency: 200 + Double(i) * 37,
                               tags: ["title": "Track \(i)"], seed: i + 1)
            csv += "t\(i),\(name)\n"
        }
        csv += "gone,missing.ogg\n"
        try h.dir.write("m.csv", csv)

        // The uninterrupted reference.
        let reference = h.dir.file("reference")
        let started = Date()
        #expect(try h.ingest(["--manifest", "m.csv", "--jobs", "2"], workdir: reference).status == 3)
        let wall = Date().timeIntervalSince(started)
        let expected = try IngestHarness.snapshot(h.catalog(reference))
        let expectedStore = IngestHarness.files(below: reference + "/clips")
        #expect(expected.clips.count == 24 && expectedStore.count == 24)

        // Seeded kill points spread over the run (MULAN_KILL_POINTS of them; 3 in `make test`).
        var interrupted = 0
        let delays = KillHarness.delays(wall: wall, stage: "ingest")
        for (k, delay) in delays.enumerated() {
            let workdir = h.dir.file("killed-\(k)")
            let (delay, landed) = try KillHarness.killMidRun(
                IngestHarness.binary, ["--workdir", workdir, "--quiet", "--manifest", "m.csv", "--jobs", "2"],
                cwd: h.dir.path, after: delay) { try KillHarness.remove(workdir) }
            if landed { interrupted += 1 }
            let progress = IngestHarness.files(below: workdir + "/clips").count

            let resumed = try h.ingest(["--manifest", "m.csv", "--jobs", "2"], workdir: workdir)
            #expect(resumed.status == 3, "\(resumed.stderr)")
            let got = try IngestHarness.snapshot(h.catalog(workdir))
            let rows = try h.catalog(workdir).count("SELECT COUNT(*) FROM raw_texts")
            let store = IngestHarness.files(below: workdir + "/clips")
            let leftovers = KillHarness.leftovers(below: workdir)
            #expect(got.tracks == expected.tracks, "kill point \(k)")
            #expect(got.clips == expected.clips, "kill point \(k)")
            #expect(got.texts == expected.texts, "kill point \(k)")
            #expect(got.rejects == expected.rejects, "kill point \(k)")
            #expect(rows == expected.texts.count, "kill point \(k): duplicate raw texts")
            #expect(store == expectedStore, "kill point \(k)")
            #expect(leftovers.isEmpty, "kill point \(k): \(leftovers)")
            KillHarness.record(stage: "ingest", point: k, delay: delay, interrupted: landed, progress: progress,
                               identical: got.tracks == expected.tracks && got.clips == expected.clips
                                   && got.texts == expected.texts && got.rejects == expected.rejects
                                   && rows == expected.texts.count && store == expectedStore,
                               leftovers: leftovers)
        }
        // The kills must really have landed mid-run for this test to mean anything.
        #expect(interrupted == delays.count, "only \(interrupted) of \(delays.count) runs were interrupted")
    }
}
