import Foundation
import MulanCatalog
import MulanCore
import MulanReport
import MulanTestSupport
import Testing

/// A small real work directory made by the stages themselves: ingest (with failures on purpose),
/// text, filter (tags and descriptions), shard, a few training steps, mulan-eval and the zero-shot
/// audio filter with the trained model. Clips are normalized (--loudness-target) so the loudness
/// plots include the gain, under a true-peak ceiling that limits the gain of some of the sines.
struct ReportCorpus {
    let harness = IngestHarness()
    var workdir: String { harness.workdir }
    var run: String { harness.dir.file("run") }
    var eval: String { harness.dir.file("eval.json") }
    /// A prompt text that is markup: prompts are free text.
    static let hostilePromptText = "<b>soft</b> drums & 'bass'"

    /// Tags per track, with a long tail: rock on 10 tracks … drums on 2; every track also gets a
    /// tag of its own (dropped as rare), and a few get stoplisted, stop-pattern and duplicate tags.
    static func tags(_ i: Int) -> [String] {
        var t: [String] = []
        if i < 10 { t.append("rock") }
        if i % 2 == 0 { t.append("piano") }
        if [1, 5, 9, 11].contains(i) { t.append("calm") }
        if [3, 7, 11].contains(i) { t.append("jazz") }
        if [4, 10].contains(i) { t.append("drums") }
        t.append("only-on-track-\(i)")
        if i == 0 { t += ["favorite", "1999"] }
        if i == 2 { t += ["hip-hop", "hiphop"] }   // one canonical tag twice on a track
        if i == 4 { t.append("hip hop") }
        return t
    }

    static func bin(_ name: String) -> String { TestPaths.executable(name) }

    static func make() throws -> ReportCorpus {
        let c = ReportCorpus()
        let h = c.harness
        var manifest = "track_id,path,start_s,end_s,split\n"
        var text = ""
        for i in 0..<12 {
            let split = i < 8 ? "train" : i < 10 ? "valid" : "test"
            let volume = 0.9 * pow(0.7, Double(i))   // a spread of levels for the loudness plots
            try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=\(180 + 45 * i):sample_rate=16000:duration=\(31 + i % 3 * 15)",
                                    "-af", "volume=\(volume)", "-ac", "1", "-c:a", "flac", h.dir.file("audio-\(i).flac")])
            manifest += "t\(i),audio-\(i).flac,,,\(split)\n"
            let description = i % 3 == 0 ? "Subscribe to my channel for more!"
                : "A \(i % 2 == 0 ? "slow" : "lively") piano piece with soft drums and a warm bass line."
            let record: [String: Any] = ["track_id": "t\(i)", "tags": Self.tags(i), "description": description]
            text += String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try TestProcess.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=16000:duration=4", "-c:a", "flac",
                                h.dir.file("short.flac")])
        manifest += "short,short.flac,,,train\nmissing,nowhere.flac,,,train\n"
        try h.dir.write("m.csv", manifest)
        try h.dir.write("texts.jsonl", text)

        func check(_ r: ProcessResult, _ what: String, allow: Set<Int32> = [0]) throws {
            if !allow.contains(r.status) { throw TestFailure("\(what) exited \(r.status): \(r.stderr)") }
        }
        try check(try h.ingest(["--manifest", "m.csv", "--sample-rate", "16000", "--loudness-target", "-20",
                                 "--loudness-max-true-peak", "-16.3"]), "ingest", allow: [0, 3])
        try check(try h.ingest(["text", "--format", "generic", "texts.jsonl"]), "ingest text")
        let vocab = try TestPython.bertVocabulary()
        let config = TestPaths.packageRoot + "/manifests/filters.toml"
        for source in ["tags", "descriptions"] {
            try check(try h.filter(["--source", source, "--vocab", vocab, "--config", config]), "filter \(source)")
        }
        try check(try h.shard(["--samples-per-shard", "3"]), "shard")
        let dataset = c.workdir + "/shards/latest"
        try check(try TestProcess.run(bin("mulan-train"), [
            "--dataset", dataset, "--run-dir", c.run, "--batch-size", "4", "--audio-widths", "8,16", "--mel-bands", "32",
            "--text-width", "32", "--text-layers", "1", "--text-heads", "2", "--text-feed-forward", "64",
            "--max-text-length", "16", "--window-seconds", "4", "--shuffle-buffer", "16", "--steps", "6", "--eval-every", "3",
            "--log-every", "1", "--checkpoint-every", "6", "--threads", "1", "--seed", "1", "--quiet"]), "train")
        try check(try TestProcess.run(bin("mulan-eval"), [
            "--run-dir", c.run, "--vocab", vocab, "--shards", dataset, "--split", "train", "--json", c.eval,
            "--threads", "1", "--quiet"]), "eval")
        try check(try h.filter(["audio", "--model", c.run, "--vocab", vocab, "--prompt", "piano=solo piano",
                                "--prompt", "drums=\(Self.hostilePromptText)", "--keep", "piano > drums", "--threads", "1"]),
                  "filter audio")
        return c
    }
}

/// Headless Chromium, when installed (scripts/setup.sh installs the Debian package `chromium`).
enum Chromium {
    static var path: String? {
        let env = ProcessInfo.processInfo.environment
        if let p = env["MULAN_CHROMIUM"], FileManager.default.isExecutableFile(atPath: p) { return p }
        for dir in (env["PATH"] ?? "/usr/bin").split(separator: ":") {
            for name in ["chromium", "chromium-browser", "google-chrome"] {
                let p = "\(dir)/\(name)"
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }

    /// Loads `file` headless (inline script on), with a private profile; a timeout guards a hung browser.
    static func run(_ chromium: String, _ arguments: [String], file: String, profile: String) throws -> ProcessResult {
        try TestProcess.run("/usr/bin/timeout", ["120", chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                                 "--no-first-run", "--user-data-dir=\(profile)"] + arguments + ["file://" + file])
    }
}

@Suite("mulan-report end to end", .serialized)
struct ReportEndToEndTests {
    static let hostileTag = "<b>\"r&b\"</b> & 'soul'"
    static let expectedPlots: Set<String> = [
        "fig-track-outcomes", "fig-clip-duration", "fig-track-duration", "fig-clip-rms", "fig-clip-peak",
        "fig-loudness-status", "fig-clip-lufs", "fig-clip-true-peak", "fig-clip-lra", "fig-loudness-gain",
        "fig-audio-filter-funnel", "fig-audio-score-1", "fig-audio-score-2",
        "fig-texts-per-source", "fig-funnel-tags", "fig-tokens-tags", "fig-funnel-descriptions", "fig-sentences-descriptions",
        "fig-tokens-descriptions",
        "fig-tags-top", "fig-tags-rank", "fig-shard-sizes", "fig-loss", "fig-temperature", "fig-recall10",
        "fig-tag-auc", "fig-tag-auc-distribution",
    ]

    static func report(_ arguments: [String]) throws -> ProcessResult {
        try TestProcess.run(TestPaths.executable("mulan-report"), arguments + ["--quiet"])
    }

    @Test func everyPlotOfARealWorkdirDrawsInHeadlessChromium() throws {
        let corpus = try ReportCorpus.make()
        let dir = corpus.harness.dir
        // mulan-eval's report plus a tag whose name is markup: a MagnaTagATune-style CSV header can say anything.
        var eval = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: corpus.eval))) as? [String: Any])
        var tagging = try #require(eval["tagging"] as? [String: Any])
        var perTag = try #require(tagging["per_tag"] as? [[String: Any]])
        #expect(perTag.contains { $0["roc_auc"] is NSNumber }, "mulan-eval scored some tags: \(perTag)")
        perTag.append(["tag": Self.hostileTag, "positives": 1, "roc_auc": 0.25, "average_precision": 0.1])
        tagging["per_tag"] = perTag
        eval["tagging"] = tagging
        let evalPath = dir.file("eval-hostile.json")
        try JSONSerialization.data(withJSONObject: eval, options: [.sortedKeys]).write(to: URL(fileURLWithPath: evalPath))

        let catalog = corpus.workdir + "/catalog.sqlite"
        let before = try SHA256Digest.hex(ofFile: catalog).digest
        let out = dir.file("report.html")
        let r = try Self.report(["--workdir", corpus.workdir, "--run", corpus.run, "--eval", evalPath, "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutText.contains("in 7 sections written to \(out)"), "\(r.stdoutText)")
        #expect(!FileManager.default.fileExists(atPath: out + ".tmp"))
        #expect(try SHA256Digest.hex(ofFile: catalog).digest == before, "the catalog is opened read-only")
        let html = try String(contentsOfFile: out, encoding: .utf8)
        #expect(!html.contains("(not available)"), "every section has plots")
        #expect(!html.contains("src=") && !html.contains("href=\"http"), "no external resource")

        // Same inputs, same bytes.
        let again = dir.file("again.html")
        #expect(try Self.report(["--workdir", corpus.workdir, "--run", corpus.run, "--eval", evalPath, "--out", again]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: again)) == Data(contentsOf: URL(fileURLWithPath: out)))

        let ids = Set(html.components(separatedBy: "<svg class=\"plot\" id=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) })
        #expect(ids.isSuperset(of: Self.expectedPlots), "missing: \(Self.expectedPlots.subtracting(ids))")
        // The funnel shows the reasons the stages recorded.
        for reason in ["− rare", "− stoplist", "− stop-pattern", "− duplicate", "− no-sentence-kept", "failed: missing-file",
                       "failed: too-short"] {
            #expect(html.contains(">\(reason)</text>"), "\(reason)")
        }
        // The audio filter's funnel and the loudness outcomes against counts done here with SQL.
        let db = try Database(path: catalog, readOnly: true)
        let decided = try #require(try db.row("SELECT COUNT(*) FROM audio_decisions")?[0].int)
        let kept = try #require(try db.row("SELECT COUNT(*) FROM audio_decisions WHERE status = 'kept'")?[0].int)
        #expect(decided > 0)
        #expect(html.contains(">all clips</text>") && html.contains(">\(Markup.grouped(decided))</text>"))
        #expect(html.contains(">\(Markup.grouped(kept)) (\(Markup.percent(kept, of: decided)))</text>"), "kept \(kept) of \(decided)")
        let measured = try #require(try db.row("SELECT COUNT(*) FROM clips WHERE status = 'kept' AND loudness_status = 'measured'")?[0].int)
        let clips = try #require(try db.row("SELECT COUNT(*) FROM clips WHERE status = 'kept'")?[0].int)
        #expect(measured > 0 && html.contains(">\(Markup.grouped(measured)) (\(Markup.percent(measured, of: clips)))</text>"))
        #expect(html.contains(Markup.escape(ReportCorpus.hostilePromptText)))
        // The clips at the true-peak ceiling, derived from the catalog's columns, are those ingest counted as limited.
        let summary = try #require(try db.row("SELECT summary FROM runs WHERE stage = 'ingest' ORDER BY id DESC")?[0].string)
        let ingest = try #require(try JSONSerialization.jsonObject(with: Data(summary.utf8)) as? [String: Any])
        let limited = try #require(ingest["clips_gain_limited"] as? Int), normalized = try #require(ingest["clips_normalized"] as? Int)
        #expect(limited > 0 && limited < normalized, "the ceiling limits some clips, not all: \(limited) of \(normalized)")
        #expect(html.contains("\(Markup.grouped(limited)) of \(Markup.grouped(clips)) normalized clips"), "\(limited) of \(clips)")

        guard let chromium = Chromium.path else {
            print("SKIPPED the headless rendering check: no chromium on PATH (install the Debian package `chromium`, "
                  + "as scripts/setup.sh --python does, or set MULAN_CHROMIUM)")
            return
        }
        let dom = try Chromium.run(chromium, ["--dump-dom"], file: out, profile: dir.file("chromium-profile"))
        #expect(dom.status == 0, "\(dom.stderr)")
        let text = dom.stdoutText
        let check = try #require(text.components(separatedBy: "<pre id=\"plot-check\">").dropFirst().first?
            .components(separatedBy: "</pre>").first, "the self-check ran: \(text.suffix(400))")
        let json = check.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
        let plots = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(plots.count == ids.count, "one entry per plot")
        for p in plots {
            let id = p["id"] as? String ?? "?"
            let marks = p["marks"] as? Int ?? 0, width = p["width"] as? Double ?? 0, height = p["height"] as? Double ?? 0
            #expect(marks > 0 && width > 0 && height > 0, "\(id) did not draw: \(p)")
        }
        // The hostile tag is text in the rendered DOM, not an element.
        #expect(text.contains("&lt;b&gt;\"r&amp;b\"&lt;/b&gt; &amp; 'soul'"), "the tag name shows as written")
        #expect(!text.contains("<b>"), "no element was injected")
        #expect(text.contains("&lt;b&gt;soft&lt;/b&gt; drums &amp; 'bass'"), "the prompt text shows as written")

        // And the page is not blank when painted.
        let png = dir.file("report.png")
        let shot = try Chromium.run(chromium, ["--hide-scrollbars", "--window-size=1400,2400", "--screenshot=\(png)"],
                                    file: out, profile: dir.file("chromium-profile"))
        #expect(shot.status == 0, "\(shot.stderr)")
        let size = (try FileManager.default.attributesOfItem(atPath: png)[.size] as? NSNumber)?.intValue ?? 0
        #expect(size > 40_000, "a screenshot of \(size) bytes looks blank")
    }

    @Test func exitCodesFollowTheConventions() throws {
        let dir = TempDir("mulan-report")
        let out = dir.file("r.html")
        // Nothing exists: still a page, every section saying what is missing.
        let empty = try Self.report(["--workdir", dir.file("nothing"), "--out", out])
        #expect(empty.status == 0, "\(empty.stderr)")
        #expect(empty.stdoutText.contains("report: 0 plots in 0 sections"))
        // A named input that cannot be read: the page is written, the exit code is 3, stderr says why.
        let named = try Self.report(["--workdir", dir.path, "--run", dir.file("no-run"), "--out", out])
        #expect(named.status == 3, "\(named.stderr)")
        #expect(named.stderr.contains("no-run/metrics.jsonl"))
        #expect(FileManager.default.fileExists(atPath: out))
        // Usage errors.
        #expect(try Self.report(["--workdir", dir.path]).status == 64)
        #expect(try Self.report(["--workdir", dir.path, "--out", out, "--top-tags", "0"]).status == 64)
        // An unwritable destination is fatal.
        #expect(try Self.report(["--workdir", dir.path, "--out", dir.file("no/such/dir/r.html")]).status == 1)
    }
}
