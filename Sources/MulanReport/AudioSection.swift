/// "Audio": track outcomes, clip and track durations, clip levels and EBU R128 loudness (LoudnessBlocks).
enum AudioSection {
    static let title = "Audio: tracks and clips"

    static func missing(_ note: String) -> Section {
        Section(id: "audio", title: title, blocks: [.note(note)])
    }

    static func make(_ c: CatalogFigures) -> Section {
        let a = c.audio
        var s = Section(id: "audio", title: title)
        let ingested = a.tracksByOutcome.filter { $0.status == "ingested" }.map(\.count).reduce(0, +)
        let tracks = a.tracksByOutcome.map(\.count).reduce(0, +)
        guard tracks > 0 else {
            s.blocks.append(.note("The catalog \(c.path) holds no track yet: run mulan-ingest."))
            return s
        }
        s.blocks.append(.table(Table(
            header: ["tracks", "ingested", "failed", "clips kept", "clips silent", "hours kept"],
            rows: [[Markup.grouped(tracks), Markup.grouped(ingested), Markup.grouped(tracks - ingested),
                    Markup.grouped(a.clipsKept), Markup.grouped(a.clipsSilent), Markup.fixed(a.keptSeconds / 3600, decimals: 2)]],
            numeric: Set(0..<6))))

        let rows = a.tracksByOutcome.map { o in
            BarRow(o.status == "ingested" ? "ingested" : "failed: \(o.reason.isEmpty ? "?" : o.reason)", end: Double(o.count),
                   color: o.status == "ingested" ? Palette.kept : Palette.dropped,
                   valueText: "\(Markup.grouped(o.count)) (\(Markup.percent(o.count, of: tracks)))")
        }
        s.blocks.append(.figure(
            svg: Chart.horizontalBars(id: "fig-track-outcomes", title: "Tracks by outcome", rows, xLabel: "tracks"),
            caption: "Every track of the catalog: ingested (at least one clip kept) or failed, by reason (docs/catalog.md lists the reasons)."))

        if let h = a.clipDurations {
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-duration", title: "Clip duration", h, xLabel: "clip duration (s)", yLabel: "clips"),
                caption: "Duration of the kept clips, in bins of \(TickFormat.label(h.width, step: h.width)) s. "
                    + "Clips are cut on a fixed grid, so this is one bar unless --min-clip-seconds lets shorter tails in."))
        }
        if let h = a.trackDurations {
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-track-duration", title: "Track duration", h, xLabel: "decoded track duration (s)",
                                     yLabel: "tracks", color: Palette.series(4)),
                caption: "Seconds of audio decoded per ingested track (of the segment, when the manifest gave one), in bins of "
                    + "\(TickFormat.label(h.width, step: h.width)) s."))
        }
        if let rms = a.rmsDBFS, let peak = a.peakDBFS {
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-rms", title: "Clip loudness (RMS level)", rms, xLabel: "RMS level (dBFS)",
                                     yLabel: "clips", color: Palette.series(1)),
                caption: "20·log₁₀ of each kept clip's RMS (full scale 1.0), in bins of \(TickFormat.label(rms.width, step: rms.width)) dB; "
                    + "a full-scale sine reads −3 dBFS. Not LUFS: no loudness weighting. Levels below "
                    + "\(Int(CatalogReader.floorDBFS)) dBFS count in the lowest bin; silent clips (\(Markup.grouped(a.clipsSilent))) are not shown."))
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-clip-peak", title: "Clip peak level", peak, xLabel: "sample peak (dBFS)",
                                     yLabel: "clips", color: Palette.series(6)),
                caption: "20·log₁₀ of each kept clip's largest absolute sample, in bins of "
                    + "\(TickFormat.label(peak.width, step: peak.width)) dB. A pile at 0 dBFS suggests clipping."))
            s.blocks += LoudnessBlocks.make(a.loudness, schemaVersion: c.schemaVersion)
        } else {
            s.blocks.append(.note("No kept clip: nothing to plot for durations and loudness."))
        }
        return s
    }
}
