import MulanRecords
/// "Audio filter": the latest `mulan-filter audio` version, its funnel by failing rule, the
/// distribution of each prompt's score, and every version in a table.
enum AudioFilterSection {
    static let title = "Audio filter: zero-shot keep rules"

    static func missing(_ note: String) -> Section {
        Section(id: "audio-filter", title: title, blocks: [.note(note)])
    }

    static func make(_ c: CatalogFigures) -> Section {
        var s = Section(id: "audio-filter", title: title)
        guard let f = c.audioFilter else {
            s.blocks.append(.note("This catalog (schema version \(c.schemaVersion)) predates the zero-shot audio filter "
                                  + "(schema version 6): run mulan-filter audio to filter clips by text prompts."))
            return s
        }
        guard let v = f.latest else {
            s.blocks.append(.note("No audio filter run: mulan-filter audio --model RUN_DIR --vocab VOCAB --prompt NAME=TEXT … "
                                  + "--keep RULE scores every kept clip against the prompts (docs/audio-filter.md)."))
            return s
        }
        let rules = v.rules.isEmpty ? "none (every readable clip is kept)" : v.rules.joined(separator: "; ")
        s.blocks.append(.paragraph(
            "Latest version \(v.version): rules \(rules). Model: \(v.checkpoint) at step \(v.checkpointStep); "
                + "score set \(v.scoreSet). Created \(v.createdAt), "
                + (v.completedAt.map { "completed \($0) (the version mulan-shard applies)." }
                    ?? "not completed (no run of it finished: its decisions so far).")))
        s.blocks.append(.table(Table(
            header: ["clips decided", "kept", "dropped", "dropped share", "kept clips not decided"],
            rows: [[Markup.grouped(v.decided), Markup.grouped(v.kept), Markup.grouped(v.dropped),
                    Markup.percent(v.dropped, of: v.decided), Markup.grouped(f.undecided)]],
            numeric: Set(0..<5))))
        if f.undecided > 0 {
            let clips = f.undecided == 1 ? "kept clip has" : "kept clips have"
            s.blocks.append(.note("\(Markup.grouped(f.undecided)) \(clips) no decision of \(v.version) "
                                  + "(ingested after it ran): run mulan-filter audio again with the same prompts and rules."))
        }
        if !v.prompts.isEmpty {
            s.blocks.append(.table(Table(header: ["prompt", "text"], rows: v.prompts.map { [$0.name, $0.text] })))
        }
        if v.decided == 0 {
            s.blocks.append(.note("\(v.version) has no decision: no kept clip was decided (there was none, or its run stopped "
                                  + "before the first batch was written)."))
        } else {
            s.blocks.append(.figure(
                svg: TextSections.waterfall(id: "fig-audio-filter-funnel", title: "Audio filter funnel", unit: "clips",
                                            droppedAs: "dropped by", total: v.decided, kept: v.kept, dropped: f.dropReasons),
                caption: "Decisions of \(v.version): every decided clip (top bar), the clips each rule dropped as the first rule "
                    + "that failed (unreadable: the clip could not be decoded), and the clips kept (bottom bar)."))
        }
        let shown = f.scores.prefix(CatalogReader.maxScoreHistograms)
        for (i, p) in shown.enumerated() {
            let text = v.prompts.first { $0.name == p.prompt }?.text
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-audio-score-\(i + 1)", title: "Prompt score: \(p.prompt)", p.histogram,
                                     xLabel: "cosine similarity to the prompt", yLabel: "clips", color: Palette.series(i)),
                caption: "Score of each decided clip against the prompt \(p.prompt)" + (text.map { " (“\($0)”)" } ?? "")
                    + ": the cosine similarity of its audio and text embeddings, averaged over the clip's windows, in bins of "
                    + "\(LoudnessBlocks.width(p.histogram)) (every prompt on the same bins): \(Markup.grouped(p.histogram.total)) clips."))
        }
        if f.scores.count > shown.count {
            s.blocks.append(.note("\(f.scores.count - shown.count) more prompts are not drawn: "
                                  + f.scores.dropFirst(shown.count).map(\.prompt).joined(separator: ", ") + "."))
        }
        if f.scores.isEmpty && v.decided > 0 {
            s.blocks.append(.note("No clip of \(v.version) has scores (every decided clip was unreadable)."))
        }
        if f.versions.count > 1 {
            s.blocks.append(.table(Table(
                header: ["version", "rules", "created", "completed", "kept", "dropped", "dropped share"],
                rows: f.versions.map { x in
                    [x.version + (x.version == v.version ? " (latest)" : ""), x.rules.joined(separator: "; "), x.createdAt,
                     x.completedAt ?? "not completed", Markup.grouped(x.kept), Markup.grouped(x.dropped),
                     Markup.percent(x.dropped, of: x.decided)]
                }, numeric: [4, 5, 6])))
        }
        return s
    }
}
