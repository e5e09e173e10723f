/// "Shards": per split counts and the size of every shard (or their distribution, when there are many).
enum ShardSection {
    static let title = "Shards"
    /// Up to this many shards get a bar each; more are shown as a histogram of sizes.
    static let barLimit = 60

    static func missing(_ note: String) -> Section {
        Section(id: "shards", title: title, blocks: [.note(note)])
    }

    /// "shard-000012.tar" → "12".
    static func number(of name: String) -> String {
        let digits = name.filter(\.isNumber).drop { $0 == "0" }
        return digits.isEmpty ? "0" : String(digits)
    }

    static func make(_ f: ShardFigures) -> Section {
        var s = Section(id: "shards", title: title)
        let m = f.manifest
        let sources = Set(m.splits.values.flatMap(\.textsBySource.keys))
        let sourceNames = CatalogReader.sourceOrder.filter(sources.contains) + sources.subtracting(CatalogReader.sourceOrder).sorted()
        s.blocks.append(.paragraph("Dataset \(m.datasetID) in \(f.directory): \(m.sampleRate) Hz, \(Markup.fixed(m.clipSeconds, decimals: 1)) s clips, "
                                   + "seed \(m.seed), \(m.samplesPerShard) samples per shard; \(Markup.grouped(m.clipsWithoutText)) clips "
                                   + "left out for want of kept text."))
        s.blocks.append(.table(Table(
            header: ["split", "shards", "samples", "bytes"] + sourceNames.map { "\($0) texts" },
            rows: f.splitNames.map { name in
                let split = m.splits[name]
                return [name, Markup.grouped(split?.shards.count ?? 0), Markup.grouped(split?.samples ?? 0),
                        Markup.bytes(split?.bytes ?? 0)]
                    + sourceNames.map { Markup.grouped(split?.textsBySource[$0] ?? 0) }
            }, numeric: Set(1..<(4 + sourceNames.count)))))

        let missingFiles = f.shards.filter { $0.bytes == nil }
        if !missingFiles.isEmpty {
            s.blocks.append(.note("\(missingFiles.count) shard files listed in dataset.json are missing, e.g. "
                                  + "\(missingFiles[0].split)/\(missingFiles[0].name): run mulan-shard verify \(f.directory)."))
        }
        let present = f.shards.compactMap { shard in shard.bytes.map { (shard, $0) } }
        guard let largest = present.map(\.1).max() else {
            s.blocks.append(.note("No shard file to measure."))
            return s
        }
        let (unit, divisor) = largest >= 1 << 20 ? ("MiB", Double(1 << 20)) : ("KiB", 1024.0)
        let color = Dictionary(uniqueKeysWithValues: f.splitNames.enumerated().map { ($0.element, Palette.series($0.offset)) })
        if present.count <= barLimit {
            let groups = present.map { shard, bytes in
                ColumnGroup(present.count <= 12 ? "\(shard.split) \(number(of: shard.name))" : number(of: shard.name), [Column(Double(bytes) / divisor, color: color[shard.split] ?? Palette.total,
                                    tooltip: "\(shard.split)/\(shard.name): \(Markup.bytes(bytes)) (\(Markup.grouped(bytes)) bytes)")])
            }
            s.blocks.append(.figure(
                svg: Chart.columns(id: "fig-shard-sizes", title: "Shard sizes", groups,
                                   legend: f.splitNames.map { LegendEntry($0, color: color[$0] ?? Palette.total) },
                                   xLabel: "shard number within its split", yLabel: "size (\(unit))", showValues: false),
                caption: "The size of each tar shard on disk, by split. Shards close at --samples-per-shard samples "
                    + "(or --max-shard-bytes), so all but each split's last should be alike."))
        } else {
            var h = Histogram.covering(Double(present.map(\.1).min() ?? 0) / divisor, Double(largest) / divisor, target: 30)
            for (_, bytes) in present { h.add(Double(bytes) / divisor) }
            s.blocks.append(.figure(
                svg: Chart.histogram(id: "fig-shard-sizes", title: "Shard sizes", h, xLabel: "shard size (\(unit))", yLabel: "shards"),
                caption: "Distribution of the sizes of all \(Markup.grouped(present.count)) tar shards on disk, all splits together."))
        }
        return s
    }
}
