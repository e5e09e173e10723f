/// "Text": texts per source, the filter funnel by reason and token lengths per source; "Tags":
/// the long tail of kept tags.
enum TextSections {
    static let textTitle = "Text: sources and filter decisions"
    static let tagsTitle = "Tags: the long tail"

    static func missing(_ note: String) -> [Section] {
        [Section(id: "text", title: textTitle, blocks: [.note(note)]),
         Section(id: "tags", title: tagsTitle, blocks: [.note(note)])]
    }

    static func label(_ source: String) -> String { source.isEmpty ? "(no source)" : source }

    static func slug(_ text: String) -> String {
        let s = String(text.lowercased().unicodeScalars.map { ("a"..."z").contains($0) || ("0"..."9").contains($0) ? Character($0) : "-" })
        return s.isEmpty ? "none" : s
    }

    static func text(_ c: CatalogFigures) -> Section {
        var s = Section(id: "text", title: textTitle)
        guard !c.sources.isEmpty else {
            s.blocks.append(.note("No text in the catalog \(c.path) yet: mulan-ingest records container tags; "
                                  + "mulan-ingest text loads annotation files."))
            return s
        }
        let filtered = c.sources.contains { $0.version != nil }
        let groups = c.sources.map { f in
            ColumnGroup(label(f.source), [
                Column(Double(f.loaded), color: Palette.total, tooltip: "\(label(f.source)): \(Markup.grouped(f.loaded)) texts loaded"),
                Column(Double(f.kept), color: Palette.kept,
                       tooltip: "\(label(f.source)): \(Markup.grouped(f.kept)) kept" + (f.version.map { " by \($0)" } ?? " (not filtered)")),
            ])
        }
        s.blocks.append(.figure(
            svg: Chart.columns(id: "fig-texts-per-source", title: "Texts per source", groups,
                               legend: [LegendEntry("loaded", color: Palette.total), LegendEntry("kept by the latest filter", color: Palette.kept)],
                               xLabel: "source", yLabel: "texts"),
            caption: "Raw texts loaded per source (container tags without a source are shown as “(no source)”), and how many "
                + "the latest completed filter version of the source kept."))
        s.blocks.append(.table(Table(
            header: ["source", "filter version", "loaded", "decided", "kept", "dropped", "kept share"],
            rows: c.sources.map { f in
                [label(f.source), f.version.map { $0 + (f.unfiltered ? " (unfiltered)" : "") } ?? "not filtered",
                 Markup.grouped(f.loaded), Markup.grouped(f.decided), Markup.grouped(f.kept),
                 Markup.grouped(f.decided - f.kept), Markup.percent(f.kept, of: f.decided)]
            }, numeric: [2, 3, 4, 5, 6])))
        if !c.hasFilterDecisions {
            s.blocks.append(.note("This catalog (schema version \(c.schemaVersion)) has no filter decisions: run mulan-filter."))
        } else if !filtered {
            s.blocks.append(.note("No completed filter run: run mulan-filter --source S for each source to see its funnel."))
        }
        for f in c.sources where f.version != nil {
            s.blocks.append(.figure(svg: funnel(f), caption: funnelCaption(f)))
            if let sentences = f.sentences {
                s.blocks.append(.figure(svg: sentenceFunnel(f.source, sentences),
                                        caption: "The sentences of the \(label(f.source)) (split by ICU) and why the filter dropped them: "
                                            + "boilerplate, script, length, relevance, duplicates (docs/text.md)."))
            }
            s.blocks.append(tokenLengths(f))
        }
        for f in c.sources where f.version == nil && !f.source.isEmpty && c.hasFilterDecisions {
            s.blocks.append(.note("\(f.source): \(Markup.grouped(f.loaded)) texts, not filtered yet: run mulan-filter --source \(f.source)."))
        }
        return s
    }

    /// The funnel as a waterfall: all decided texts, minus each drop reason (largest first), leaves the kept ones.
    static func funnel(_ f: SourceFigures) -> String {
        waterfall(id: "fig-funnel-\(slug(f.source))", title: "Filter funnel: \(label(f.source))", unit: "texts",
                  droppedAs: "dropped as", total: f.decided, kept: f.kept,
                  dropped: f.decisions.filter { $0.status != "kept" }.map { ($0.reason, $0.count) })
    }

    static func sentenceFunnel(_ source: String, _ c: (total: Int, kept: Int, dropped: [(reason: String, count: Int)])) -> String {
        waterfall(id: "fig-sentences-\(slug(source))", title: "Sentence funnel: \(label(source))", unit: "sentences",
                  droppedAs: "sentences dropped as", total: c.total, kept: c.kept, dropped: c.dropped)
    }

    /// "all UNIT", one bar per drop reason hanging from what remains, then "kept".
    static func waterfall(id: String, title: String, unit: String, droppedAs: String, total: Int, kept: Int,
                                  dropped: [(reason: String, count: Int)]) -> String {
        var rows = [BarRow("all \(unit)", end: Double(total), color: Palette.total, valueText: Markup.grouped(total))]
        var remaining = total
        for d in dropped {
            rows.append(BarRow("− \(d.reason)", start: Double(remaining - d.count), end: Double(remaining), color: Palette.dropped,
                               valueText: "−\(Markup.grouped(d.count)) (\(Markup.percent(d.count, of: total)))",
                               tooltip: "\(droppedAs) \(d.reason): \(Markup.grouped(d.count)) of \(Markup.grouped(total))"))
            remaining -= d.count
        }
        rows.append(BarRow("kept", end: Double(kept), color: Palette.kept,
                           valueText: "\(Markup.grouped(kept)) (\(Markup.percent(kept, of: total)))"))
        return Chart.horizontalBars(id: id, title: title, rows, xLabel: unit)
    }

    static func funnelCaption(_ f: SourceFigures) -> String {
        "Decisions of \(f.version ?? "?")\(f.unfiltered ? " (--no-filter: everything kept)" : ""): every text of the source "
            + "(top bar), what each reason dropped (docs/text.md explains them), and what is kept (bottom bar)."
            + (f.source == "descriptions" ? " A description is kept when at least one of its sentences is." : "")
    }

    static func tokenLengths(_ f: SourceFigures) -> Block {
        guard let lo = f.tokenCounts.first?.tokens, let hi = f.tokenCounts.last?.tokens else {
            return .note("\(label(f.source)): no kept text, so no token lengths.")
        }
        var h = Histogram.covering(Double(lo), Double(hi), target: 40, integer: true)
        for t in f.tokenCounts { h.add(Double(t.tokens), count: t.texts) }
        let total = f.tokenCounts.map(\.texts).reduce(0, +)
        var below = 0, median = lo
        for t in f.tokenCounts {
            below += t.texts
            if 2 * below >= total { median = t.tokens; break }
        }
        return .figure(
            svg: Chart.histogram(id: "fig-tokens-\(slug(f.source))", title: "Token lengths: \(label(f.source))", h,
                                 xLabel: "WordPiece tokens per kept text", yLabel: "texts", color: Palette.series(2), integer: true),
            caption: "BERT WordPiece tokens of each kept \(label(f.source)) text (without [CLS]/[SEP]): from \(lo) to \(hi), median \(median)"
                + (h.width > 1 ? "; bins of \(Int(h.width)) tokens." : "."))
    }

    static func tags(_ c: CatalogFigures, topK: Int) -> Section {
        var s = Section(id: "tags", title: tagsTitle)
        guard let tail = c.tagTail else {
            s.blocks.append(.note("No completed filter run for tags: run mulan-filter --source tags."))
            return s
        }
        guard !tail.tagsByFrequency.isEmpty else {
            s.blocks.append(.note("The tags filter version \(tail.version) kept no tag."))
            return s
        }
        let rows = tail.top.map { t in
            BarRow(t.tag, end: Double(t.tracks), color: Palette.series(0), valueText: Markup.grouped(t.tracks),
                   tooltip: "\(t.tag): \(Markup.grouped(t.tracks)) tracks")
        }
        s.blocks.append(.figure(
            svg: Chart.horizontalBars(id: "fig-tags-top", title: "The \(tail.top.count) most frequent tags", rows, xLabel: "tracks"),
            caption: "Kept tags of \(tail.version) (canonical forms, after the synonym map) by the number of tracks carrying them; "
                + "\(Markup.grouped(tail.distinctTags)) distinct tags in all. --top-tags sets how many are listed (\(topK))."))
        // Ranks r₀+1 … r₀+k share a frequency: a horizontal run from the first to the last of those ranks.
        var points: [(x: Double, y: Double)] = []
        var rank = 0
        for f in tail.tagsByFrequency {
            points.append((Double(rank + 1), Double(f.tracks)))
            if f.tags > 1 { points.append((Double(rank + f.tags), Double(f.tracks))) }
            rank += f.tags
        }
        s.blocks.append(.figure(
            svg: Chart.lines(id: "fig-tags-rank", title: "Tag frequency by rank (log–log)",
                             [LineSeries("tags", color: Palette.series(0), points: points)],
                             xLabel: "rank of the tag (1 = most frequent)", yLabel: "tracks carrying the tag", xLog: true, yLog: true),
            caption: "Every kept tag ranked by frequency, on log–log axes: a straight line is a power law (Zipf). "
                + "Flat runs are tags that share a frequency; the right end is the tail of tags on few tracks "
                + "(tags on fewer tracks than tags.min_frequency were dropped as rare)."))
        return s
    }
}
