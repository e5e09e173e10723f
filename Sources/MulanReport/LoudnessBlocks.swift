/// The EBU R128 part of the audio section: integrated loudness, true peak, loudness range, the
/// measurement outcomes, and the gain of `--loudness-target` normalization.
enum LoudnessBlocks {
    static func make(_ loudness: LoudnessFigures?, schemaVersion: Int) -> [Block] {
        guard let l = loudness else {
            return [.note("This catalog (schema version \(schemaVersion)) predates EBU R128 loudness (schema version 5): "
                          + "run mulan-ingest again on the same manifests to measure the stored clips.")]
        }
        guard l.any else {
            return [.note("No kept clip has an EBU R128 loudness measurement yet (clips stored before schema version 5): "
                          + "the next mulan-ingest run on the same manifests measures them without re-ingesting.")]
        }
        var blocks: [Block] = []
        let clips = l.byStatus.map(\.count).reduce(0, +)
        let rows = l.byStatus.map { s in
            BarRow(s.status, end: Double(s.count), color: color(s.status),
                   valueText: "\(Markup.grouped(s.count)) (\(Markup.percent(s.count, of: clips)))",
                   tooltip: "\(s.status): \(Markup.grouped(s.count)) of \(Markup.grouped(clips)) kept clips")
        }
        blocks.append(.figure(
            svg: Chart.horizontalBars(id: "fig-loudness-status", title: "Loudness measurement by outcome", rows, xLabel: "kept clips"),
            caption: "Kept clips by loudness_status: measured; below-gate (every 400 ms block under −70 LUFS, so no integrated "
                + "loudness); failed (libebur128 failed); not measured (stored before schema version 5, until mulan-ingest runs again)."))
        if let h = l.integratedLUFS {
            blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-lufs", title: "Clip integrated loudness (EBU R128)", h,
                                     xLabel: "integrated loudness (LUFS)", yLabel: "clips", color: Palette.series(0)),
                caption: "Integrated loudness of each measured clip as stored (K-weighted, gated, ITU-R BS.1770), in bins of "
                    + "\(width(h)) LU: \(Markup.grouped(h.total)) clips. Unlike the RMS level this follows perceived loudness; "
                    + "with --loudness-target it piles up at the target."))
        }
        if let h = l.truePeakDBTP {
            blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-true-peak", title: "Clip true peak", h, xLabel: "true peak (dBTP)",
                                     yLabel: "clips", color: Palette.series(6)),
                caption: "Maximum true peak (4× oversampled) of each stored clip, in bins of \(width(h)) dB; digital silence has none. "
                    + "Clips above −1 dBTP may clip when decoded or resampled."))
        }
        if let h = l.loudnessRange {
            blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-lra", title: "Clip loudness range", h, xLabel: "loudness range (LU)",
                                     yLabel: "clips", color: Palette.series(4)),
                caption: "EBU R128 loudness range (LRA) of each measured clip, in bins of \(width(h)) LU: how much the "
                    + "short-term loudness varies within the clip (a steady tone reads 0)."))
        }
        guard l.normalized > 0, let gain = l.gainDB else {
            blocks.append(.note("Loudness normalization was off for every kept clip (mulan-ingest without --loudness-target): "
                                + "no gain to show."))
            return blocks
        }
        let targets = l.targets.map { t in
            "\(Markup.fixed(t.lufs, decimals: 1)) LUFS, ceiling \(Markup.fixed(t.ceilingDBTP, decimals: 1)) dBTP "
                + "(\(Markup.grouped(t.tracks)) track\(t.tracks == 1 ? "" : "s"))"
        }
        blocks.append(.figure(
            svg: Chart.histogram(id: "fig-loudness-gain", title: "Normalization gain", gain, xLabel: "gain applied (dB)",
                                 yLabel: "clips", color: Palette.series(2)),
            caption: "The gain --loudness-target applied to each clip before encoding, in bins of \(width(gain)) dB "
                + "(0 for a clip below the gate). Target: " + (targets.isEmpty ? "not recorded" : targets.joined(separator: "; "))
                + ". \(Markup.grouped(l.atCeiling)) of \(Markup.grouped(l.normalized)) normalized clips "
                + "(\(Markup.percent(l.atCeiling, of: l.normalized))) hit the true-peak ceiling: their gain was lowered "
                + "so that the true peak stays under it, and they end up quieter than the target."))
        blocks.append(.table(Table(
            header: ["normalized clips", "at the true-peak ceiling", "share", "not normalized"],
            rows: [[Markup.grouped(l.normalized), Markup.grouped(l.atCeiling), Markup.percent(l.atCeiling, of: l.normalized),
                    Markup.grouped(clips - l.normalized)]],
            numeric: Set(0..<4))))
        return blocks
    }

    static func color(_ status: String) -> String {
        switch status {
        case "measured": Palette.kept
        case "below-gate": Palette.series(5)
        case "failed": Palette.dropped
        default: Palette.total
        }
    }

    static func width(_ h: Histogram) -> String { TickFormat.label(h.width, step: h.width) }
}
