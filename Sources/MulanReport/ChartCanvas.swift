/// Colours of the charts (Tableau 10 for series; fixed ones for the funnel).
public enum Palette {
    public static let series = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                                "#ff9da7", "#9c755f", "#bab0ac"]
    public static func series(_ index: Int) -> String { series[index % series.count] }
    public static let total = "#8c8c8c"
    public static let dropped = "#e15759"
    public static let kept = "#59a14f"
    static let axis = "#444444"
    static let grid = "#e6e6e6"
    static let text = "#222222"
    static let muted = "#666666"
}

/// A legend entry: a colour swatch and a name.
public struct LegendEntry: Sendable, Equatable {
    public var name: String
    public var color: String
    public init(_ name: String, color: String) {
        self.name = name
        self.color = color
    }
}

/// The rectangle data is drawn in, in SVG pixels.
struct PlotArea {
    var left: Double
    var top: Double
    var right: Double
    var bottom: Double
    var width: Double { right - left }
    var height: Double { bottom - top }
}

/// One chart's SVG document: the root element (class `plot`, so the page's self-check finds it),
/// its accessible title, the visible title, then axes, marks (`<g class="marks">`: every drawn
/// datum, and nothing else) and legend.
struct ChartCanvas {
    static let fontSize = 11.0
    private(set) var svg = SVGWriter()
    let width: Double
    let height: Double

    init(id: String, title: String, width: Double, height: Double) {
        self.width = width
        self.height = height
        svg.begin("svg", [
            "class": "plot", "id": id, "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": "0 0 \(Markup.coordinate(width)) \(Markup.coordinate(height))",
            "width": Markup.coordinate(width), "height": Markup.coordinate(height),
            "role": "img", "aria-labelledby": id + "-title",
            "font-family": "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
            "font-size": Markup.coordinate(Self.fontSize),
        ])
        // The title goes in twice: as the accessible <title> and as the visible heading.
        svg.element("title", ["id": id + "-title"], content: title)
        svg.label(title, x: width / 2, y: 18, anchor: .middle, size: 13, weight: "600", fill: Palette.text)
    }

    /// An estimate of a label's width in pixels (no font metrics without a browser).
    static func textWidth(_ text: String, size: Double = fontSize) -> Double {
        Double(text.count) * size * 0.6
    }

    /// `text` cut to `limit` characters with an ellipsis.
    static func truncated(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(1, limit - 1))) + "…"
    }

    /// Grid lines, tick marks and labels of a numeric axis along the bottom (`x`) and/or left (`y`),
    /// the axis lines, and the axis titles (with units).
    mutating func axes(plot: PlotArea, x: (any Scale)?, y: (any Scale)?, xLabel: String?, yLabel: String?) {
        svg.group("axes") { g in
            if let y {
                for t in y.ticks {
                    let py = y.position(t)
                    g.line(x1: plot.left, y1: py, x2: plot.right, y2: py, stroke: Palette.grid)
                    g.line(x1: plot.left - 4, y1: py, x2: plot.left, y2: py, stroke: Palette.axis)
                    g.label(y.tickLabel(t), x: plot.left - 7, y: py + 3.5, anchor: .end, fill: Palette.muted)
                }
                g.line(x1: plot.left, y1: plot.top, x2: plot.left, y2: plot.bottom, stroke: Palette.axis)
            }
            if let x {
                for t in x.ticks {
                    let px = x.position(t)
                    if y == nil || t != x.lower {
                        g.line(x1: px, y1: plot.top, x2: px, y2: plot.bottom, stroke: Palette.grid)
                    }
                    g.line(x1: px, y1: plot.bottom, x2: px, y2: plot.bottom + 4, stroke: Palette.axis)
                    g.label(x.tickLabel(t), x: px, y: plot.bottom + 16, anchor: .middle, fill: Palette.muted)
                }
            }
            g.line(x1: plot.left, y1: plot.bottom, x2: plot.right, y2: plot.bottom, stroke: Palette.axis)
            if let xLabel {
                g.label(xLabel, x: (plot.left + plot.right) / 2, y: height - 8, anchor: .middle, fill: Palette.text)
            }
            if let yLabel {
                let cy = (plot.top + plot.bottom) / 2
                g.label(yLabel, x: 14, y: cy, anchor: .middle, fill: Palette.text, rotate: -90)
            }
        }
    }

    /// A row of swatches and names under the title.
    mutating func legend(_ entries: [LegendEntry], y: Double = 34) {
        guard !entries.isEmpty else { return }
        let widths = entries.map { 16 + Self.textWidth($0.name) + 14 }
        var x = max(8, (width - widths.reduce(0, +)) / 2)
        svg.group("legend") { g in
            for (entry, w) in zip(entries, widths) {
                g.rect(x: x, y: y - 9, width: 10, height: 10, fill: entry.color)
                g.label(entry.name, x: x + 14, y: y, fill: Palette.text)
                x += w
            }
        }
    }

    /// The note drawn in place of marks when there is nothing to plot.
    mutating func noData(plot: PlotArea) {
        svg.label("no data", x: (plot.left + plot.right) / 2, y: (plot.top + plot.bottom) / 2, anchor: .middle,
                  size: 13, fill: Palette.muted)
    }

    mutating func marks(_ body: (inout SVGWriter) -> Void) {
        svg.group("marks", body)
    }

    mutating func extra(_ cssClass: String, _ body: (inout SVGWriter) -> Void) {
        svg.group(cssClass, body)
    }

    mutating func finish() -> String {
        svg.end("svg")
        return svg.text
    }
}
