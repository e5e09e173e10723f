/// A bar of a column chart.
public struct Column: Sendable, Equatable {
    public var value: Double
    public var color: String
    public var tooltip: String
    public init(_ value: Double, color: String, tooltip: String) {
        self.value = value
        self.color = color
        self.tooltip = tooltip
    }
}

/// Bars side by side above one category label.
public struct ColumnGroup: Sendable, Equatable {
    public var label: String
    public var columns: [Column]
    public init(_ label: String, _ columns: [Column]) {
        self.label = label
        self.columns = columns
    }
}

/// A row of a horizontal bar chart: a bar from `start` to `end` (none when nil, for a gap row).
public struct BarRow: Sendable, Equatable {
    public var label: String
    public var start: Double
    public var end: Double?
    public var color: String
    public var valueText: String?
    public var tooltip: String?
    public init(_ label: String, start: Double = 0, end: Double?, color: String, valueText: String? = nil,
                tooltip: String? = nil) {
        self.label = label
        self.start = start
        self.end = end
        self.color = color
        self.valueText = valueText
        self.tooltip = tooltip
    }
}

/// The chart kinds of the report. Each returns one standalone `<svg class="plot">` document.
public enum Chart {
    static let width = 680.0
    static let height = 320.0

    /// A histogram: adjacent bars over a numeric axis; `integer` data is labelled by whole values.
    public static func histogram(id: String, title: String, _ h: Histogram, xLabel: String, yLabel: String,
                                 color: String = Palette.series(0), integer: Bool = false) -> String {
        let maxCount = Double(h.counts.max() ?? 0)
        let y0 = LinearScale(covering: 0, max(maxCount, 1), tickCount: 5, from: 0, to: 0, minimumStep: 1)
        let left = 20 + 8 + ChartCanvas.textWidth(y0.ticks.map(y0.tickLabel).max { $0.count < $1.count } ?? "0")
        let plot = PlotArea(left: max(56, left), top: 34, right: width - 20, bottom: height - 46)
        var canvas = ChartCanvas(id: id, title: title, width: width, height: height)
        // A few bins get room around them, so that one bar does not read as a wall.
        // Data that starts at or above zero keeps an axis that does too (no "−2 tokens").
        let pad = Double(max(0, 7 - h.counts.count)) / 2 * h.width
        let floor = h.lower >= -0.5 ? min(h.lower, 0) : -Double.infinity
        let x = LinearScale(covering: max(h.lower - pad, floor), h.upper + pad, tickCount: 8, from: plot.left, to: plot.right,
                            minimumStep: integer ? 1 : 0)
        let y = LinearScale(covering: 0, max(maxCount, 1), tickCount: 5, from: plot.bottom, to: plot.top, minimumStep: 1)
        canvas.axes(plot: plot, x: x, y: y, xLabel: xLabel, yLabel: yLabel)
        if h.total == 0 {
            canvas.noData(plot: plot)
        } else {
            canvas.marks { g in
                for (i, n) in h.counts.enumerated() where n > 0 {
                    let (lo, hi) = h.edges(i)
                    let x0 = x.position(lo), x1 = x.position(hi)
                    let gap = x1 - x0 > 4 ? 0.5 : 0
                    let range = integer
                        ? (hi - lo <= 1.0001 ? "\(Int((lo + 0.5).rounded()))"
                                             : "\(Int((lo + 0.5).rounded()))–\(Int((hi - 0.5).rounded()))")
                        : "\(TickFormat.label(lo, step: h.width / 10)) – \(TickFormat.label(hi, step: h.width / 10))"
                    g.rect(x: x0 + gap, y: y.position(Double(n)), width: x1 - x0 - 2 * gap,
                           height: plot.bottom - y.position(Double(n)), fill: color,
                           tooltip: "\(range): \(Markup.grouped(n))")
                }
            }
        }
        return canvas.finish()
    }

    /// Columns grouped by category over a count axis; a legend when `legend` is not empty.
    public static func columns(id: String, title: String, _ groups: [ColumnGroup], legend: [LegendEntry] = [],
                               xLabel: String, yLabel: String, showValues: Bool = true) -> String {
        let maxValue = groups.flatMap(\.columns).map(\.value).filter(\.isFinite).max() ?? 0
        let whole = LinearScale.minimumStep(for: groups.flatMap(\.columns).map(\.value))
        let probe = LinearScale(covering: 0, max(maxValue, 1), tickCount: 5, from: 0, to: 0, minimumStep: whole)
        let left = 28 + ChartCanvas.textWidth(probe.ticks.map(probe.tickLabel).max { $0.count < $1.count } ?? "0")
        let slot = (width - 20 - max(56, left)) / Double(max(1, groups.count))
        let longest = groups.map { ChartCanvas.textWidth($0.label) }.max() ?? 0
        let rotated = longest > slot - 4
        let labelLimit = 22
        let bottomRoom = rotated ? min(ChartCanvas.textWidth(String(repeating: "x", count: labelLimit)), longest) * 0.6 + 34 : 46
        let h = height + (rotated ? bottomRoom - 46 : 0)
        let plot = PlotArea(left: max(56, left), top: legend.isEmpty ? 34 : 46, right: width - 20, bottom: h - bottomRoom)
        var canvas = ChartCanvas(id: id, title: title, width: width, height: h)
        let y = LinearScale(covering: 0, max(maxValue, 1), tickCount: 5, from: plot.bottom, to: plot.top, minimumStep: whole)
        canvas.axes(plot: plot, x: nil, y: y, xLabel: xLabel, yLabel: yLabel)
        canvas.legend(legend)
        let slotWidth = plot.width / Double(max(1, groups.count))
        // Label every k-th category when there are too many to read.
        let every = max(1, Int((Double(groups.count) * 14 / plot.width).rounded(.up)))
        canvas.extra("categories") { g in
            for (i, group) in groups.enumerated() where i % every == 0 {
                let cx = plot.left + slotWidth * (Double(i) + 0.5)
                let text = ChartCanvas.truncated(group.label, labelLimit)
                if rotated {
                    g.label(text, x: cx + 3, y: plot.bottom + 12, anchor: .end, fill: Palette.muted, rotate: -40,
                            tooltip: text == group.label ? nil : group.label)
                } else {
                    g.label(text, x: cx, y: plot.bottom + 16, anchor: .middle, fill: Palette.muted)
                }
            }
        }
        if maxValue <= 0 {
            canvas.noData(plot: plot)
            return canvas.finish()
        }
        let values = showValues && groups.flatMap(\.columns).count <= 24
        canvas.marks { g in
            for (i, group) in groups.enumerated() where !group.columns.isEmpty {
                let inner = slotWidth * 0.8
                let barWidth = inner / Double(group.columns.count)
                var x0 = plot.left + slotWidth * Double(i) + slotWidth * 0.1
                for column in group.columns {
                    let top = y.position(max(0, column.value))
                    g.rect(x: x0 + (barWidth > 6 ? 0.5 : 0), y: top, width: barWidth - (barWidth > 6 ? 1 : 0),
                           height: plot.bottom - top, fill: column.color, tooltip: column.tooltip)
                    x0 += barWidth
                }
            }
        }
        if values {
            canvas.extra("values") { g in
                for (i, group) in groups.enumerated() {
                    let barWidth = slotWidth * 0.8 / Double(max(1, group.columns.count))
                    for (k, column) in group.columns.enumerated() {
                        let cx = plot.left + slotWidth * Double(i) + slotWidth * 0.1 + barWidth * (Double(k) + 0.5)
                        g.label(TickFormat.label(column.value, step: 1), x: cx, y: y.position(max(0, column.value)) - 3,
                                anchor: .middle, size: 9.5, fill: Palette.muted)
                    }
                }
            }
        }
        return canvas.finish()
    }

    /// Horizontal bars, one row per label (top to bottom in the given order), over a numeric axis
    /// along the bottom; an optional dashed reference line (e.g. chance level).
    public static func horizontalBars(id: String, title: String, _ rows: [BarRow], xLabel: String,
                                      domain: (lower: Double, upper: Double)? = nil,
                                      reference: (value: Double, label: String)? = nil,
                                      legend: [LegendEntry] = []) -> String {
        let rowHeight = 18.0
        let labelLimit = 34
        let labels = rows.map { ChartCanvas.truncated($0.label, labelLimit) }
        let labelWidth = min(labels.map { ChartCanvas.textWidth($0) }.max() ?? 40, 230)
        let valueRoom = (rows.compactMap(\.valueText).map { ChartCanvas.textWidth($0, size: 9.5) }.max() ?? 0) + 8
        let top = legend.isEmpty ? 34.0 : 46.0
        let plot = PlotArea(left: 16 + labelWidth, top: top, right: width - max(20, valueRoom),
                            bottom: top + rowHeight * Double(max(1, rows.count)) + 4)
        let h = plot.bottom + 46
        var canvas = ChartCanvas(id: id, title: title, width: width, height: h)
        let ends = rows.compactMap(\.end) + rows.filter { $0.end != nil }.map(\.start)
        let x = LinearScale(covering: domain?.lower ?? min(0, ends.min() ?? 0), domain?.upper ?? max(ends.max() ?? 1, 1e-12),
                            tickCount: 6, from: plot.left, to: plot.right, nice: domain == nil,
                            minimumStep: domain == nil ? LinearScale.minimumStep(for: ends) : 0)
        canvas.axes(plot: plot, x: x, y: nil, xLabel: xLabel, yLabel: nil)
        canvas.legend(legend)
        canvas.extra("categories") { g in
            g.line(x1: plot.left, y1: plot.top, x2: plot.left, y2: plot.bottom, stroke: Palette.axis)
            for (i, row) in rows.enumerated() {
                let cy = plot.top + 2 + rowHeight * (Double(i) + 0.5)
                g.label(labels[i], x: plot.left - 6, y: cy + 3.5, anchor: .end, fill: Palette.text,
                        tooltip: labels[i] == row.label ? nil : row.label)
            }
        }
        if let reference {
            canvas.extra("reference") { g in
                let px = x.position(reference.value)
                g.line(x1: px, y1: plot.top, x2: px, y2: plot.bottom, stroke: Palette.axis, dash: "4 3")
                g.label(reference.label, x: px + 3, y: plot.top - 3, size: 9.5, fill: Palette.muted)
            }
        }
        guard rows.contains(where: { $0.end != nil }) else {
            canvas.noData(plot: plot)
            return canvas.finish()
        }
        canvas.marks { g in
            for (i, row) in rows.enumerated() {
                guard let end = row.end else { continue }
                let cy = plot.top + 2 + rowHeight * (Double(i) + 0.5)
                let x0 = x.position(min(row.start, end)), x1 = x.position(max(row.start, end))
                // A bar of zero length still gets a hairline, so every row shows that it was drawn.
                g.rect(x: x0, y: cy - 6, width: max(x1 - x0, 1), height: 12, fill: row.color,
                       tooltip: row.tooltip ?? "\(row.label): \(row.valueText ?? TickFormat.label(end, step: 0.001))")
            }
        }
        canvas.extra("values") { g in
            for (i, row) in rows.enumerated() {
                guard let end = row.end, let text = row.valueText else { continue }
                let cy = plot.top + 2 + rowHeight * (Double(i) + 0.5)
                g.label(text, x: x.position(max(row.start, end)) + 4, y: cy + 3.5, size: 9.5, fill: Palette.muted)
            }
        }
        return canvas.finish()
    }
}
