/// A series of a line chart.
public struct LineSeries: Sendable {
    public enum Style: Sendable { case line, markers }
    public var name: String
    public var color: String
    public var points: [(x: Double, y: Double)]
    public var style: Style

    public init(_ name: String, color: String, points: [(x: Double, y: Double)], style: Style = .line) {
        self.name = name
        self.color = color
        self.points = points
        self.style = style
    }
}

extension Chart {
    /// Lines (and/or markers) over numeric axes, each linear or logarithmic. Points a log axis
    /// cannot show (≤ 0) and non-finite values are left out. Lines with few points get markers too,
    /// so a single point still shows.
    public static func lines(id: String, title: String, _ series: [LineSeries], xLabel: String, yLabel: String,
                             xLog: Bool = false, yLog: Bool = false,
                             yDomain: (lower: Double, upper: Double)? = nil) -> String {
        func usable(_ p: (x: Double, y: Double)) -> Bool {
            p.x.isFinite && p.y.isFinite && (!xLog || p.x > 0) && (!yLog || p.y > 0)
        }
        let shown = series.map { s in LineSeries(s.name, color: s.color, points: s.points.filter(usable), style: s.style) }
        let all = shown.flatMap(\.points)
        let xs = all.map(\.x), ys = all.map(\.y)
        let legend = series.count > 1 ? series.map { LegendEntry($0.name, color: $0.color) } : []
        let top = legend.isEmpty ? 34.0 : 46.0

        func yScale(_ from: Double, _ to: Double) -> any Scale {
            if yLog { return LogScale(covering: ys.min() ?? 1, ys.max() ?? 10, from: from, to: to) }
            return LinearScale(covering: yDomain?.lower ?? (ys.min() ?? 0), yDomain?.upper ?? (ys.max() ?? 1),
                               tickCount: 5, from: from, to: to, nice: yDomain == nil,
                               minimumStep: yDomain == nil ? LinearScale.minimumStep(for: ys) : 0)
        }
        let probe = yScale(0, 1)
        let widest = probe.ticks.map { ChartCanvas.textWidth(probe.tickLabel($0)) }.max() ?? 10
        let plot = PlotArea(left: max(56, 30 + widest), top: top, right: width - 24, bottom: height - 46)
        var canvas = ChartCanvas(id: id, title: title, width: width, height: height)
        let x: any Scale = xLog
            ? LogScale(covering: xs.min() ?? 1, xs.max() ?? 10, from: plot.left, to: plot.right)
            : LinearScale(covering: xs.min() ?? 0, xs.max() ?? 1, tickCount: 7, from: plot.left, to: plot.right,
                          minimumStep: LinearScale.minimumStep(for: xs))
        let y = yScale(plot.bottom, plot.top)
        canvas.axes(plot: plot, x: x, y: y, xLabel: xLabel, yLabel: yLabel)
        canvas.legend(legend)
        guard !all.isEmpty else {
            canvas.noData(plot: plot)
            return canvas.finish()
        }
        canvas.marks { g in
            for s in shown where !s.points.isEmpty {
                let pixels = s.points.map { (x: x.position($0.x), y: y.position($0.y)) }
                if s.style == .line && pixels.count > 1 {
                    g.path(pixels, stroke: s.color, tooltip: s.name)
                }
                if s.style == .markers || pixels.count <= 40 {
                    let radius = s.style == .markers ? 3.5 : 2.2
                    for (p, v) in zip(pixels, s.points) {
                        g.circle(x: p.x, y: p.y, radius: radius, fill: s.color,
                                 tooltip: "\(s.name): \(Self.number(v.y)) at \(Self.number(v.x))")
                    }
                }
            }
        }
        return canvas.finish()
    }

    /// A value for a tooltip: integers as such, others with 4 significant digits.
    static func number(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return Markup.grouped(Int(v)) }
        let magnitude = abs(v)
        let decimals = magnitude >= 100 ? 1 : magnitude >= 1 ? 3 : magnitude >= 0.01 ? 4 : 6
        return Markup.fixed(v, decimals: decimals)
    }
}
