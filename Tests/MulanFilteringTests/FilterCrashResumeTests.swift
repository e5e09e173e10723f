import Foundation
@testable import MulanCatalog
import MulanTestSupport
import Testing

/// `kill -9` during `mulan-filter`, then a re-run: the same decisions (as sets), one completed
/// version per source, an intact catalog and no temporary report file.
@Suite("mulan-filter kill and resume", .serialized)
struct FilterCrashResumeTests {
    /// Texts for 2,500 tracks: enough that filtering descriptions takes seconds, so that kills land
    /// inside the run's transaction rather than at start-up.
    static func texts() -> String {
        var state: UInt64 = 11
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) % n
        }
        let words = ["jazz", "rock", "piano", "guitar", "ambient", "calm", "slow", "fast", "drums", "bass", "vocal",
                     "female", "male", "electronic", "techno", "house", "folk", "sad", "happy", "dark", "bright", "strings"]
        var out = ""
        for i in 0..<2500 {
            let tags = (0..<(2 + next(6))).map { _ in "\"\(words[next(words.count)])\"" }
            let sentence = (0..<(8 + next(20))).map { _ in words[next(words.count)] }.joined(separator: " ")
            let junk = next(5) == 0 ? " Subscribe for more! Visit www.example.com." : ""
            out += "{\"track_id\": \"t\(i)\", \"tags\": [\(tags.joined(separator: ", "))], "
                + "\"description\": \"A \(sentence). It has \(words[next(words.count)]) and \(words[next(words.count)]).\(junk)\"}\n"
        }
        return out
    }

    static func decisions(_ c: Catalog) throws -> Set<[String]> {
        Set(try c.database.rows("""
            SELECT d.version, d.raw_text_id, d.source, d.track_id, d.status, d.reason, d.normalized,
                   COALESCE(d.token_ids, ''), d.token_count, COALESCE(d.details, '')
            FROM text_decisions d
            """).map { $0.map { "\($0)" } })
    }

    static func versions(_ c: Catalog) throws -> Set<[String]> {
        Set(try c.database.rows("""
            SELECT version, source, unfiltered, config, vocab_sha256, completed_at IS NOT NULL FROM filter_versions
            """).map { $0.map { "\($0)" } })
    }

    @Test func crashResumeFilter() throws {
        let h = IngestHarness()
        let vocab = try TestPython.bertVocabulary()
        try h.dir.write("texts.jsonl", Self.texts())
        #expect(try h.ingest(["text", "--format", "generic", "texts.jsonl"]).status == 0)
        let loaded = h.dir.file("loaded.sqlite")
        try FileManager.default.copyItem(atPath: h.workdir + "/catalog.sqlite", toPath: loaded)
        let config = TestPaths.packageRoot + "/manifests/filters.toml"
        func arguments(_ workdir: String, _ source: String) -> [String] {
            ["--source", source, "--vocab", vocab, "--config", config, "--workdir", workdir, "--quiet",
             "--report", workdir + "/filter-\(source).json"]
        }
        func filter(_ workdir: String, _ source: String) throws -> ProcessResult {
            try TestProcess.run(IngestHarness.filterBinary, arguments(workdir, source),
                                environment: ["MULAN_PROGRESS_INTERVAL": "0"])
        }

        // The uninterrupted reference: tags, then descriptions.
        var wall: [String: Double] = [:]
        for source in ["tags", "descriptions"] {
            let started = Date()
            let r = try filter(h.workdir, source)
            #expect(r.status == 0, "\(r.stderr)")
            wall[source] = Date().timeIntervalSince(started)
        }
        let expectedDecisions = try Self.decisions(h.catalog())
        let expectedVersions = try Self.versions(h.catalog())
        #expect(expectedVersions.count == 2)

        // Kill points alternate between the two sources; the tags run has already finished when
        // descriptions are killed, so a kill must neither lose nor repeat the earlier source's work.
        var interrupted = 0
        let delays = KillHarness.delays(wall: wall["tags"]! + wall["descriptions"]!, stage: "filter")
        for (k, delay) in delays.enumerated() {
            let workdir = h.dir.file("killed-\(k)")
            // Kill inside whichever run the delay falls in: tags, or descriptions after a finished tags run.
            let inTags = delay < wall["tags"]!
            let (delay, landed) = try KillHarness.killMidRun(
                IngestHarness.filterBinary, arguments(workdir, inTags ? "tags" : "descriptions"),
                after: inTags ? delay : delay - wall["tags"]!) {
                try KillHarness.remove(workdir)
                try FileManager.default.createDirectory(atPath: workdir, withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: loaded, toPath: workdir + "/catalog.sqlite")
                if !inTags { #expect(try filter(workdir, "tags").status == 0) }
            }
            if landed { interrupted += 1 }
            let progress = try h.catalog(workdir).count("SELECT COUNT(*) FROM filter_versions WHERE completed_at IS NOT NULL")
            // The same commands again, as a scheduler or `make` would after a crash.
            for source in ["tags", "descriptions"] {
                let r = try filter(workdir, source)
                #expect(r.status == 0, "kill point \(k), \(source): \(r.stderr)")
            }
            let catalog = try h.catalog(workdir)
            let integrity = try catalog.database.rows("PRAGMA integrity_check").first?.first?.string
            let decisions = try Self.decisions(catalog)
            let versions = try Self.versions(catalog)
            let leftovers = KillHarness.leftovers(below: workdir)
            #expect(integrity == "ok", "kill point \(k)")
            #expect(decisions == expectedDecisions, "kill point \(k): \(decisions.symmetricDifference(expectedDecisions).count) rows differ")
            #expect(versions == expectedVersions, "kill point \(k)")
            #expect(leftovers.isEmpty, "kill point \(k): \(leftovers)")
            KillHarness.record(stage: inTags ? "filter-tags" : "filter-descriptions", point: k, delay: delay, interrupted: landed, progress: progress,
                               identical: integrity == "ok" && decisions == expectedDecisions && versions == expectedVersions,
                               leftovers: leftovers)
        }
        #expect(interrupted == delays.count, "only \(interrupted) of \(delays.count) runs were interrupted")
    }
}
