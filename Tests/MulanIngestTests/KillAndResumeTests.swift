import Foundation
import MulanCatalog
import MulanTestSupport
import Testing

/// `kill -9` at any moment, then a re-run, must give the same catalog and store as an
/// uninterrupted run: no duplicate or missing rows, no orphan or partial files.
@Suite("Kill and resume", .serialized)
struct KillAndResumeTests {
    @Test func killedRunsResumeToTheSameResult() throws {
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

        // Seeded kill points spread over the run.
        var state: UInt64 = 20261125
        var interrupted = 0
        for (k, fraction) in [0.2, 0.5, 0.8].enumerated() {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let jitter = Double(state >> 40) / Double(1 << 24) * 0.1
            let delay = wall * (fraction + jitter - 0.05)
            let workdir = h.dir.file("killed-\(k)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: IngestHarness.binary)
            process.arguments = ["--workdir", workdir, "--quiet", "--manifest", "m.csv", "--jobs", "2"]
            process.currentDirectoryURL = URL(fileURLWithPath: h.dir.path)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(useconds_t(delay * 1_000_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1 }

            let resumed = try h.ingest(["--manifest", "m.csv", "--jobs", "2"], workdir: workdir)
            #expect(resumed.status == 3, "\(resumed.stderr)")
            let got = try IngestHarness.snapshot(h.catalog(workdir))
            #expect(got.tracks == expected.tracks, "kill point \(k)")
            #expect(got.clips == expected.clips, "kill point \(k)")
            #expect(got.texts == expected.texts, "kill point \(k)")
            #expect(got.rejects == expected.rejects, "kill point \(k)")
            #expect(try h.catalog(workdir).count("SELECT COUNT(*) FROM raw_texts") == expected.texts.count)
            #expect(IngestHarness.files(below: workdir + "/clips") == expectedStore, "kill point \(k)")
            #expect(IngestHarness.files(below: workdir + "/staging").isEmpty, "kill point \(k)")
            #expect(!IngestHarness.files(below: workdir).contains { $0.hasSuffix(".part") })
        }
        // The kills must really have landed mid-run for this test to mean anything.
        #expect(interrupted >= 2, "only \(interrupted) of 3 runs were interrupted")
    }
}
