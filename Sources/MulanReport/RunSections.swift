import MulanRecords

/// "Training run": loss, temperature, Recall@10 and tagging ROC-AUC against the step;
/// "Zero-shot evaluation": the per-tag ROC-AUC of a mulan-eval report.
enum RunSections {
    static let trainingTitle = "Training run"
    static let evalTitle = "Zero-shot evaluation"
    /// With more tags than this, the per-tag chart shows the best and the worst half of it.
    static let perTagLimit = 80

    static func missingTraining(_ note: String) -> Section {
        Section(id: "training", title: trainingTitle, blocks: [.note(note)])
    }

    static func missingEval(_ note: String) -> Section {
        Section(id: "evaluation", title: evalTitle, blocks: [.note(note)])
    }

    static func training(_ r: RunFigures) -> Section {
        var s = Section(id: "training", title: trainingTitle)
        s.blocks.append(.paragraph("\(r.directory)/metrics.jsonl: \(Markup.grouped(r.lines)) lines"
                                   + (r.lastStep.map { ", up to step \(Markup.grouped($0))" } ?? "") + "."))
        if r.unreadableLines > 0 {
            s.blocks.append(.note("\(r.unreadableLines) lines are not metrics records and were skipped "
                                  + "(a line cut short while the trainer was writing it, or a foreign line)."))
        }
        guard !r.trainLoss.isEmpty || !r.evaluationSplits.isEmpty else {
            s.blocks.append(.note("No step or evaluation recorded yet."))
            return s
        }
        let splits = r.evaluationSplits
        func color(_ split: String, _ offset: Int) -> String {
            Palette.series((splits.firstIndex(of: split) ?? 0) * 2 + 1 + offset)
        }
        func style(_ split: String) -> LineSeries.Style { split == "test" ? .markers : .line }

        var loss = [LineSeries("train (batch)", color: Palette.series(0), points: r.trainLoss.result)]
        for split in splits {
            if let e = r.evalLoss[split] { loss.append(LineSeries("\(split)", color: color(split, 0), points: e.result, style: style(split))) }
        }
        s.blocks.append(.figure(
            svg: Chart.lines(id: "fig-loss", title: "Contrastive loss", loss.filter { !$0.points.isEmpty },
                             xLabel: "training step", yLabel: "loss (nats)"),
            caption: "The decoupled contrastive loss of each logged training batch, and the mean loss over evaluation chunks of the "
                + "valid (and, at the end, test) split. ln(B−1) is the loss of a model that has learned nothing."))
        if !r.temperature.isEmpty {
            s.blocks.append(.figure(
                svg: Chart.lines(id: "fig-temperature", title: "Learned temperature",
                                 [LineSeries("temperature", color: Palette.series(4), points: r.temperature.result)],
                                 xLabel: "training step", yLabel: "temperature τ"),
                caption: "The softmax temperature τ the loss learns (similarities are divided by τ); it is clamped to its allowed range."))
        }
        var recall: [LineSeries] = []
        for split in splits {
            if let t = r.textToAudioR10[split] {
                recall.append(LineSeries("\(split) text→audio", color: color(split, 0), points: t.result, style: style(split)))
            }
            if let a = r.audioToTextR10[split] {
                recall.append(LineSeries("\(split) audio→text", color: color(split, 1), points: a.result, style: style(split)))
            }
        }
        if !recall.isEmpty {
            s.blocks.append(.figure(
                svg: Chart.lines(id: "fig-recall10", title: "Retrieval Recall@10", recall, xLabel: "training step",
                                 yLabel: "Recall@10", yDomain: (0, 1)),
                caption: "Share of evaluation clips whose own text ranks in the top 10 of all the split's texts (audio→text), "
                    + "and of texts whose own clip does (text→audio). Chance is 10/N for N evaluation clips."))
        }
        let tagging = splits.compactMap { split in
            r.taggingAUC[split].map { LineSeries(split, color: color(split, 0), points: $0.result, style: style(split)) }
        }
        if !tagging.isEmpty {
            s.blocks.append(.figure(
                svg: Chart.lines(id: "fig-tagging-auc", title: "Zero-shot tagging ROC-AUC during training", tagging,
                                 xLabel: "training step", yLabel: "macro ROC-AUC", yDomain: (0, 1)),
                caption: "Macro ROC-AUC over the tags of the evaluation clips (each tag text embedded and scored against every clip). 0.5 is chance."))
        }
        if splits.isEmpty {
            s.blocks.append(.note("No evaluation recorded yet (mulan-train evaluates every --eval-every steps when the dataset has a valid split)."))
        }
        return s
    }

    static func evaluation(_ e: EvalFigures, path: String) -> Section {
        var s = Section(id: "evaluation", title: evalTitle)
        func f(_ v: Double?) -> String { v.map { Markup.fixed($0, decimals: 3) } ?? "–" }
        s.blocks.append(.paragraph("\(path): model \(e.checkpoint ?? "?") at step \(e.step.map(String.init) ?? "?")"
                                   + (e.groundTruth.map { ", ground truth \($0)" } ?? "") + "."))
        if let q = e.retrieval {
            s.blocks.append(.table(Table(
                header: ["caption retrieval (\(Markup.grouped(q.pairs)) pairs)", "R@1", "R@5", "R@10", "median rank"],
                rows: [("text→audio", q.textToAudio), ("audio→text", q.audioToText)].map { name, x in
                    [name, f(x.recallAt1), f(x.recallAt5), f(x.recallAt10), Markup.fixed(x.medianRank, decimals: 1)]
                }, numeric: [1, 2, 3, 4])))
        }
        guard let t = e.tagging else {
            s.blocks.append(.note("The report has no zero-shot tagging part (mulan-eval ran with --captions only)."))
            return s
        }
        s.blocks.append(.table(Table(
            header: ["clips", "tags scored", "tags left out", "macro ROC-AUC", "mAP"],
            rows: [[Markup.grouped(t.items), Markup.grouped(t.tagsScored), Markup.grouped(t.tagsSkipped.count),
                    f(t.macroROCAUC), f(t.meanAveragePrecision)]], numeric: [0, 1, 2, 3, 4])))
        let scored = t.perTag.compactMap { p in p.rocAUC.map { (p, $0) } }
            .sorted { ($1.1, $0.0.tag) < ($0.1, $1.0.tag) }
        guard !scored.isEmpty else {
            s.blocks.append(.note("No tag had both positive and negative clips, so no ROC-AUC could be computed."))
            return s
        }
        func row(_ p: TaggingReport.PerTag, _ auc: Double) -> BarRow {
            BarRow(p.tag, end: auc, color: auc >= 0.5 ? Palette.series(0) : Palette.dropped, valueText: Markup.fixed(auc, decimals: 3),
                   tooltip: "\(p.tag): ROC-AUC \(Markup.fixed(auc, decimals: 3)), AP \(f(p.averagePrecision)), \(p.positives) positive clips")
        }
        var rows: [BarRow]
        var shownNote = ""
        if scored.count > perTagLimit {
            let half = perTagLimit / 2
            rows = scored.prefix(half).map(row)
            rows.append(BarRow("⋯ \(scored.count - 2 * half) more ⋯", end: nil, color: Palette.total))
            rows += scored.suffix(half).map(row)
            shownNote = " The \(half) best and \(half) worst of \(scored.count) tags are shown; the JSON report lists them all."
        } else {
            rows = scored.map(row)
        }
        s.blocks.append(.figure(
            svg: Chart.horizontalBars(id: "fig-tag-auc", title: "Zero-shot ROC-AUC per tag", rows, xLabel: "ROC-AUC",
                                      domain: (0, 1), reference: (0.5, "chance")),
            caption: "Each tag name embedded as text and scored against every clip: the area under the ROC curve of telling its "
                + "clips from the others (1 = perfect, 0.5 = chance; red bars are below chance), best first." + shownNote))
        var h = Histogram(lower: 0, width: 0.05, bins: 20)
        for (_, auc) in scored { h.add(auc) }
        s.blocks.append(.figure(
            svg: Chart.histogram(id: "fig-tag-auc-distribution", title: "Distribution of per-tag ROC-AUC", h, xLabel: "ROC-AUC",
                                 yLabel: "tags", color: Palette.series(0)),
            caption: "How the \(scored.count) scored tags spread between chance (0.5) and perfect (1), in bins of 0.05."
                + (t.tagsSkipped.isEmpty ? "" : " \(t.tagsSkipped.count) tags without positive or negative clips are left out.")))
        return s
    }
}
