import Foundation
@testable import MulanCatalog
@testable import MulanIngest
import MulanTestSupport
import Testing

/// Clips stored on an idle core while the track's decoder goes on (`CoreBudget`, `ClipHandOff`;
/// issue 18): only while fewer than `--jobs` cores are busy, failures reach the track, and a track
/// ingested with hand-offs records exactly what one ingested on one core does.
@Suite("Clip hand-off to idle cores")
struct ClipHandOffTests {
    struct Failed: Error {}

    @Test func handsOffOnlyWhileACoreIsIdle() throws {
        let one = CoreBudget(cores: 1)
        one.trackStarted()
        #expect(!ClipHandOff(budget: one).run {})   // --jobs 1: never a second thread

        let two = CoreBudget(cores: 2)
        two.trackStarted()
        let handOff = ClipHandOff(budget: two)
        let gate = DispatchSemaphore(value: 0)
        let ran = Counter()
        #expect(handOff.run { gate.wait(); ran.add() })
        // Both cores busy now (a track and its hand-off): the next clip stays with the track.
        #expect(!handOff.run { ran.add() })
        two.trackStarted()
        gate.signal()
        try handOff.finish()
        #expect(ran.value == 1 && handOff.handedOff == 1)
        // Two tracks running: nothing idle.
        #expect(!ClipHandOff(budget: two).run {})
        two.trackEnded()
        two.trackEnded()
        #expect(two.takeIdle() && two.takeIdle() && !two.takeIdle())
    }

    @Test func aHandedOffFailureReachesTheTrack() throws {
        let budget = CoreBudget(cores: 2)
        budget.trackStarted()
        let handOff = ClipHandOff(budget: budget)
        #expect(handOff.run { throw Failed() })
        #expect(throws: Failed.self) { try handOff.finish() }
        handOff.abandon()
        try handOff.finish()   // forgotten after abandon
        #expect(budget.takeIdle())   // the hand-off's core came back
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func add() { lock.withLock { n += 1 } }
        var value: Int { lock.withLock { n } }
    }

    /// (index, status, hash, LUFS, range, true peak) of every clip of every track, in clip order.
    static func clips(_ h: IngestHarness) throws -> [String] {
        try h.catalog().database.rows("""
            SELECT t.track_id, c.clip_index, c.status, c.flac_sha256, c.lufs, c.loudness_range, c.true_peak_db
            FROM clips c JOIN tracks t ON t.id = c.track_rowid ORDER BY t.track_id, c.rowid
            """).map { row in (0..<7).map { "\(row[$0])" }.joined(separator: "|") }
    }

    /// One long track (so `--jobs 2` has a core idle for all of it) and a short one: the same
    /// clips, hashes, measurements and clip order at 1 and 2 jobs, and with the `all` policy.
    @Test(arguments: [["--clip-policy", "evenly:4"], ["--clip-policy", "all"]])
    func twoJobsRecordWhatOneJobRecords(policy: [String]) throws {
        var results: [[String]] = []
        for jobs in ["1", "2"] {
            let h = IngestHarness()
            try TestMedia.tone(h.dir.file("long.flac"), seconds: 95, frequency: 330)
            try TestMedia.tone(h.dir.file("short.flac"), seconds: 25, frequency: 550)
            try h.dir.write("m.csv", "track_id,path\nlong,long.flac\nshort,short.flac\n")
            let run = try h.ingest(["--manifest", "m.csv", "--clip-seconds", "10", "--jobs", jobs] + policy)
            #expect(run.status == 0, "\(run.stderr)")
            results.append(try Self.clips(h))
        }
        #expect(results[0].count >= 6)
        #expect(results[0] == results[1])
    }
}
