import Foundation
import MulanTestSupport
import Testing

/// `scripts/demo-summary.py --also`: two models' evaluations side by side, each target of issue 19
/// marked per model from that model's held-out-soundfont score.
@Suite("demo summary")
struct DemoSummaryTests {
    /// A `mulan-eval --json` report with every tag at `auc` but piano at `piano`, and Recall@10.
    /// With `exclusive`, every tag but drums also has that exclusive ROC-AUC (`mulan-eval --exclusive`).
    static func report(auc: Double, piano: Double, recall: Double, items: Int, step: Int, exclusive: Double? = nil) -> String {
        let tags = ["piano", "guitar", "strings", "brass", "flute", "organ", "bass", "synth", "slow", "fast", "major", "minor",
                    "drums", "loud", "quiet"]
        let perTag = tags.map { tag in
            let among = exclusive.map { tag == "drums" ? "" : #", "exclusive_roc_auc": \#($0)"# } ?? ""
            return #"{"tag": "\#(tag)", "roc_auc": \#(tag == "piano" ? piano : auc)\#(among)}"#
        }.joined(separator: ", ")
        return """
            {"checkpoint": "c", "step": \(step), "tagging": {"items": \(items), "macro_roc_auc": \(auc), "per_tag": [\(perTag)]},
             "retrieval": {"pairs": \(items), "text_to_audio": {"recall_at_10": \(recall)}, "audio_to_text": {"recall_at_10": \(recall)}}}
            """
    }

    /// demo-summary.py on `dir`'s a.json, a-h.json (from scratch) and b.json, b-h.json ("pretrained"), as `make demo` runs it.
    static func sideBySide(_ dir: TempDir) throws -> ProcessResult {
        try TestProcess.run("python3", [
            TestPaths.packageRoot + "/scripts/demo-summary.py", dir.file("a.json"), dir.file("a.out"), "make demo",
            "--heldout", dir.file("a-h.json"), dir.file("a-h.out"), "held-out soundfont",
            "--also", "pretrained", dir.file("b.json"), dir.file("b.out"), dir.file("b-h.json"), dir.file("b-h.out")])
    }

    @Test func twoModelsSideBySideWithTargetsPerModel() throws {
        let dir = TempDir("mulan-demo-summary")
        try dir.write("a.json", Self.report(auc: 0.6, piano: 0.9, recall: 0.5, items: 32, step: 600))
        try dir.write("a-h.json", Self.report(auc: 0.55, piano: 0.5, recall: 0.3, items: 64, step: 600))
        try dir.write("b.json", Self.report(auc: 0.8, piano: 0.95, recall: 0.7, items: 32, step: 300))
        try dir.write("b-h.json", Self.report(auc: 0.92, piano: 0.97, recall: 0.88, items: 64, step: 300))
        let r = try Self.sideBySide(dir)
        try #require(r.status == 0, "\(r.stderr)")
        let lines = r.stdoutText.split(separator: "\n").map(String.init)
        func line(_ prefix: String) -> String { lines.first { $0.hasPrefix(prefix) } ?? "" }
        // Family: the mean of the eight families, as the script sums them (piano first).
        func mean(_ piano: Double, _ auc: Double) -> String {
            String(format: "%.3f", ([piano] + Array(repeating: auc, count: 7)).reduce(0, +) / 8)
        }
        let family = line("zero-shot ROC-AUC, instrument family")
        for expected in [mean(0.9, 0.6), mean(0.5, 0.55), mean(0.95, 0.8), mean(0.97, 0.92)] {
            #expect(family.contains(expected), "\(expected) not in \(family)")
        }
        #expect(family.hasSuffix("≥ 0.90: not met / met"), "\(family)")
        #expect(line("Recall@10, text to audio").hasSuffix("≥ 0.85: not met / met"), "\(line("Recall@10"))")
        #expect(line("zero-shot ROC-AUC, tempo").hasSuffix("≥ 0.75: not met / met"))
        #expect(line("zero-shot ROC-AUC, drums").hasSuffix("0.500"), "no target for drums: \(line("zero-shot ROC-AUC, drums"))")
        #expect(r.stdoutText.contains("checkpoint step 600 (from scratch), 300 (pretrained)"), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("from scratch 0 of 5, pretrained 5 of 5"), "\(r.stdoutText)")
        let piano = line("piano")
        #expect(piano.contains("0.900") && piano.contains("0.500") && piano.contains("0.950") && piano.contains("0.970"), "\(piano)")
        // Each evaluation's summary JSON is written.
        for name in ["a.out", "a-h.out", "b.out", "b-h.out"] {
            #expect(FileManager.default.fileExists(atPath: dir.file(name)), "\(name)")
        }
        // A short --also is refused with its usage.
        let short = try TestProcess.run("python3", [
            TestPaths.packageRoot + "/scripts/demo-summary.py", dir.file("a.json"), dir.file("a.out"), "make demo",
            "--heldout", dir.file("a-h.json"), dir.file("a-h.out"), "held-out", "--also", "pretrained", dir.file("b.json")])
        #expect(short.status != 0 && short.stderr.contains("--also takes LABEL EVAL_JSON OUT_JSON HELDOUT_EVAL_JSON HELDOUT_OUT_JSON"),
                "\(short.stderr)")
        #expect(!r.stdoutText.contains("exclusive"), "no exclusive rows without exclusive scores: \(r.stdoutText)")
    }

    /// Reports with `--exclusive` scores: their own rows and targets, counted apart from the plain ones.
    @Test func exclusiveScoresHaveTheirOwnRowsAndTargets() throws {
        let dir = TempDir("mulan-demo-summary-exclusive")
        try dir.write("a.json", Self.report(auc: 0.6, piano: 0.9, recall: 0.5, items: 32, step: 600, exclusive: 0.7))
        try dir.write("a-h.json", Self.report(auc: 0.55, piano: 0.5, recall: 0.3, items: 64, step: 600, exclusive: 0.86))
        try dir.write("b.json", Self.report(auc: 0.8, piano: 0.95, recall: 0.7, items: 32, step: 300, exclusive: 0.95))
        try dir.write("b-h.json", Self.report(auc: 0.6, piano: 0.97, recall: 0.5, items: 64, step: 300, exclusive: 0.91))
        let r = try Self.sideBySide(dir)
        try #require(r.status == 0, "\(r.stderr)")
        let lines = r.stdoutText.split(separator: "\n").map(String.init)
        func line(_ prefix: String) -> String { lines.first { $0.hasPrefix(prefix) } ?? "" }
        let family = line("exclusive ROC-AUC, instrument family")
        #expect(family.contains("0.700") && family.contains("0.860") && family.contains("0.950") && family.contains("0.910"), "\(family)")
        #expect(family.hasSuffix("≥ 0.90: not met / met"), "\(family)")
        #expect(line("exclusive ROC-AUC, loudness").hasSuffix("≥ 0.85: met / met"), "\(r.stdoutText)")
        #expect(line("exclusive ROC-AUC, drums").isEmpty, "drums is one tag: no exclusive row")
        #expect(r.stdoutText.contains("from scratch 0 of 5, pretrained 0 of 5; scored among each attribute's tags (exclusive): "
                                      + "from scratch 3 of 4, pretrained 4 of 4"), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("each family scored among the eight"), "\(r.stdoutText)")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("b-h.out")))) as? [String: Any]
        let attributes = summary?["attributes"] as? [String: Any]
        #expect(((attributes?["mode"] as? [String: Any])?["exclusive_roc_auc"] as? Double).map { abs($0 - 0.91) < 1e-9 } == true)
    }
}
