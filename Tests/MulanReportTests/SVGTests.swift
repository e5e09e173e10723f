import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import MulanReport
import Testing

/// Parses markup with Foundation's XML parser (an independent check that escaping kept the
/// document well-formed) and collects element names and text.
final class XMLProbe: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var text = ""
    var error: Error?

    static func parse(_ markup: String) -> XMLProbe {
        let probe = XMLProbe()
        let parser = XMLParser(data: Data(markup.utf8))
        parser.delegate = probe
        if !parser.parse() { probe.error = parser.parserError ?? TestFailureMarker() }
        return probe
    }

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append(elementName)
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    struct TestFailureMarker: Error {}
}

/// The part of an SVG document inside `<g class="marks">…</g>` (marks groups hold no nested group).
func marksGroup(_ svg: String) -> String? {
    guard let start = svg.range(of: "<g class=\"marks\">"),
          let end = svg.range(of: "</g>", range: start.upperBound..<svg.endIndex) else { return nil }
    return String(svg[start.upperBound..<end.lowerBound])
}

func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

@Suite("SVG builder")
struct SVGTests {
    static let nasty = "<b>\"r&b\"</b> & 'roll'\u{0}\u{1B}[31m"

    @Test func escapesMarkupQuotesAndDropsCharactersXMLForbids() {
        #expect(Markup.escape(Self.nasty) == "&lt;b&gt;&quot;r&amp;b&quot;&lt;/b&gt; &amp; &#39;roll&#39;[31m")
        #expect(Markup.escape("Beyoncé — 東京 🎸\ttab") == "Beyoncé — 東京 🎸\ttab")
        #expect(Markup.escape("\u{FFFF}x\u{7F}") == "x")
    }

    @Test func chartsWithHostileLabelsStayWellFormedAndShowTheTextLiterally() throws {
        let charts = [
            Chart.horizontalBars(id: "a", title: Self.nasty, [BarRow(Self.nasty, end: 3, color: "#000", valueText: Self.nasty)],
                                 xLabel: Self.nasty),
            Chart.columns(id: "b", title: "t", [ColumnGroup(Self.nasty, [Column(2, color: "#000", tooltip: Self.nasty)])],
                          legend: [LegendEntry(Self.nasty, color: "#111")], xLabel: "x", yLabel: Self.nasty),
            Chart.lines(id: "c", title: "t", [LineSeries(Self.nasty, color: "#000", points: [(1, 2), (2, 3)])],
                        xLabel: "x", yLabel: "y"),
            Chart.histogram(id: "d", title: Self.nasty, Histogram(lower: 0, width: 1, bins: 3), xLabel: "x", yLabel: "y"),
        ]
        for svg in charts {
            let probe = XMLProbe.parse(svg)
            #expect(probe.error == nil, "\(svg)")
            #expect(!probe.elements.contains("b"), "an element was injected: \(probe.elements)")
            #expect(probe.text.contains("<b>\"r&b\"</b> & 'roll'"), "the label reads as written")
            #expect(!svg.contains("\u{0}") && !svg.contains("\u{1B}"))
        }
    }

    @Test func linearTicksAreRoundNumbersCoveringTheData() {
        let a = LinearScale(covering: 0, 97, tickCount: 5, from: 0, to: 100)
        #expect(a.ticks == [0, 20, 40, 60, 80, 100])
        #expect(a.ticks.map(a.tickLabel) == ["0", "20", "40", "60", "80", "100"])
        #expect(a.position(0) == 0 && a.position(100) == 100 && a.position(50) == 50)

        let b = LinearScale(covering: 0.013, 0.087, tickCount: 8, from: 0, to: 1)
        #expect(abs(b.step - 0.01) < 1e-12)
        #expect(b.ticks.map(b.tickLabel) == ["0.01", "0.02", "0.03", "0.04", "0.05", "0.06", "0.07", "0.08", "0.09"])

        let c = LinearScale(covering: -92.5, -3.2, tickCount: 6, from: 0, to: 1)
        #expect(c.ticks.map(c.tickLabel) == ["-100", "-80", "-60", "-40", "-20", "0"])

        let d = LinearScale(covering: 0, 2_400_000, tickCount: 5, from: 0, to: 1)
        #expect(d.ticks.map(d.tickLabel) == ["0", "500k", "1M", "1.5M", "2M", "2.5M"])

        // A single value still gets a window and ticks; 0.1 steps print without binary noise.
        let e = LinearScale(covering: 30, 30, tickCount: 5, from: 0, to: 1)
        #expect(e.lower < 30 && e.upper > 30 && e.ticks.count >= 2)
        let f = LinearScale(covering: 0, 0.7, tickCount: 7, from: 0, to: 1)
        #expect(f.ticks.map(f.tickLabel) == ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"])
    }

    @Test func logTicksArePowersOfTen() {
        let s = LogScale(covering: 1, 3000, from: 0, to: 400)
        #expect(s.ticks == [1, 10, 100, 1000, 10000])
        #expect(s.ticks.map(s.tickLabel) == ["1", "10", "100", "1000", "10k"])
        #expect(s.position(1) == 0 && s.position(10000) == 400 && abs(s.position(100) - 200) < 1e-9)
        let narrow = LogScale(covering: 2, 40, from: 0, to: 1)
        #expect(narrow.ticks == [1, 2, 5, 10, 20, 50, 100])
    }

    @Test func everyAxisHasTickLabelsAndTitles() throws {
        let svg = Chart.histogram(id: "h", title: "Clip duration", Histogram.covering(0, 30, target: 6),
                                  xLabel: "clip duration (s)", yLabel: "clips")
        let probe = XMLProbe.parse(svg)
        #expect(probe.error == nil)
        #expect(probe.text.contains("clip duration (s)") && probe.text.contains("clips") && probe.text.contains("Clip duration"))
        #expect(svg.contains("<svg class=\"plot\" id=\"h\""))
        #expect(svg.contains("<title id=\"h-title\">Clip duration</title>"))
        #expect(count("<line", in: svg) >= 8, "tick marks and axis lines")
    }

    @Test func emptyDataSaysSoAndDrawsNoMarks() {
        let charts = [
            Chart.histogram(id: "a", title: "t", Histogram(lower: 0, width: 1, bins: 4), xLabel: "x", yLabel: "y"),
            Chart.columns(id: "b", title: "t", [], xLabel: "x", yLabel: "y"),
            Chart.horizontalBars(id: "c", title: "t", [], xLabel: "x"),
            Chart.lines(id: "d", title: "t", [], xLabel: "x", yLabel: "y"),
            Chart.lines(id: "e", title: "t", [LineSeries("s", color: "#000", points: [(0, 0), (1, -1)])], xLabel: "x", yLabel: "y",
                        yLog: true),
        ]
        for svg in charts {
            #expect(XMLProbe.parse(svg).error == nil)
            #expect(svg.contains(">no data</text>"), "\(svg)")
            #expect(marksGroup(svg) == nil)
        }
    }

    @Test func marksAreCountedPerDatum() throws {
        var h = Histogram(lower: 0, width: 1, bins: 5)
        h.add(0.5)
        h.add(2.5, count: 3)
        let histogram = try #require(marksGroup(Chart.histogram(id: "h", title: "t", h, xLabel: "x", yLabel: "y")))
        #expect(count("<rect", in: histogram) == 2, "bins with a count only")
        let many = (0..<60).map { (x: Double($0), y: Double($0 * $0)) }
        let lines = try #require(marksGroup(Chart.lines(id: "l", title: "t", [LineSeries("s", color: "#000", points: many)],
                                                       xLabel: "x", yLabel: "y")))
        #expect(count("<path", in: lines) == 1 && count("<circle", in: lines) == 0)
        let single = try #require(marksGroup(Chart.lines(id: "p", title: "t", [LineSeries("s", color: "#000", points: [(5, 1)])],
                                                        xLabel: "x", yLabel: "y")))
        #expect(count("<circle", in: single) == 1, "a single point is drawn as a marker")
    }

    @Test func numbersAreFormattedTheSameEverywhere() {
        #expect(Markup.coordinate(12) == "12")
        #expect(Markup.coordinate(3.5) == "3.5")
        #expect(Markup.coordinate(-0.001) == "0")
        #expect(Markup.coordinate(-2.257) == "-2.26")
        #expect(Markup.coordinate(7.05) == "7.05")
        #expect(Markup.coordinate(.nan) == "0")
        #expect(Markup.fixed(0.5, decimals: 3) == "0.500")
        #expect(Markup.fixed(-0.0004, decimals: 3) == "0.000")
        #expect(Markup.fixed(1234.5678, decimals: 1) == "1234.6")
        #expect(Markup.grouped(1_234_567) == "1,234,567" && Markup.grouped(-12) == "-12" && Markup.grouped(999) == "999")
        #expect(Markup.bytes(512) == "512 B" && Markup.bytes(3 << 20) == "3.00 MiB" && Markup.bytes(15 << 30) == "15.0 GiB")
        #expect(Markup.percent(1, of: 3) == "33.3%" && Markup.percent(1, of: 0) == "–")
    }

    @Test func histogramsBinOnRoundEdgesAndClampOutliers() {
        let h = Histogram.covering(-61.3, -2.4, target: 30)
        #expect(h.width == 2 && h.lower == -62)
        #expect(h.upper > -2.4)
        var ints = Histogram.covering(1, 9, target: 40, integer: true)
        #expect(ints.width == 1 && ints.lower == 0.5)
        ints.add(1)
        ints.add(9)
        ints.add(100)
        ints.add(-5)
        #expect(ints.counts.first == 2 && ints.counts.last == 2 && ints.total == 4)
        let same = Histogram.covering(30, 30)
        #expect(same.counts.count == 1 && same.lower <= 30 && same.upper > 30)
    }

    /// Normalized clips reach the target to within 10⁻⁶ LU: a minimum width keeps them in one bar,
    /// and centres bins on round values (the target) rather than putting an edge there.
    @Test func aMinimumBinWidthKeepsNearlyEqualValuesInOneCentredBin() {
        var pile = Histogram.covering(-20.0000003, -19.9999998, minimumWidth: 0.1)
        #expect(pile.width == 0.1 && pile.counts.count == 1)
        pile.add(-20.0000003)
        pile.add(-19.9999998)
        #expect(pile.counts == [2] && abs(pile.lower + pile.width / 2 + 20) < 1e-6, "centred on the data")
        var spread = Histogram.covering(-20.3, -19.9999998, minimumWidth: 0.1)
        #expect(spread.width == 0.1 && spread.counts.count == 4 && abs(spread.lower + 20.35) < 1e-9)
        for v in [-20.3, -20.0000003, -19.9999998] { spread.add(v) }
        #expect(spread.counts == [1, 0, 0, 2], "the pile at the target is one bin")
        // Data inside one bin keeps it; wide data keeps its own round width, centred on whole values.
        let small = Histogram.covering(0.01, 0.04, minimumWidth: 0.1)
        #expect(abs(small.lower + 0.05) < 1e-12 && small.width == 0.1 && small.counts.count == 1)
        let wide = Histogram.covering(-40, -14, target: 40, minimumWidth: 0.1)
        #expect(wide.width == 1 && wide.lower == -40.5 && wide.upper > -14)
        #expect(Histogram.covering(-40, -14, target: 40).lower == -40, "without a minimum, edges are round")
    }

    @Test func decimatedSeriesIsBoundedKeepsTheEndsAndIsDeterministic() {
        var a = DecimatedSeries(limit: 100), b = DecimatedSeries(limit: 100)
        for i in 0..<100_001 {
            a.append(x: Double(i), y: Double(i % 7))
            b.append(x: Double(i), y: Double(i % 7))
        }
        let r = a.result
        #expect(r.count <= 102 && r.count >= 50)
        #expect(r.first?.x == 0 && r.last?.x == 100_000)
        #expect(r.map(\.x) == b.result.map(\.x))
        #expect(zip(r, r.dropFirst()).allSatisfy { $0.x < $1.x })
    }
}
