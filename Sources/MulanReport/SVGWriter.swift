/// Text escaping and number formatting shared by the SVG and HTML writers. Everything here is
/// deterministic: the same values give the same bytes on every machine (no locale, no timestamps).
public enum Markup {
    /// `text` escaped for XML/HTML text and attribute values. Characters XML 1.0 does not allow
    /// (C0 controls other than tab, newline and carriage return; U+FFFE, U+FFFF) are dropped, so a
    /// tag name straight from the catalog can never break the document.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0xFFFE || scalar.value == 0xFFFF { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A coordinate: rounded to 0.01, without trailing zeros ("12", "3.5", "-0.25").
    public static func coordinate(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let hundredths = (value * 100).rounded()
        if hundredths == 0 { return "0" }
        let negative = hundredths < 0
        let magnitude = Int64(abs(hundredths))
        var text = String(magnitude / 100)
        let fraction = magnitude % 100
        if fraction != 0 {
            text += fraction % 10 == 0 ? ".\(fraction / 10)" : (fraction < 10 ? ".0\(fraction)" : ".\(fraction)")
        }
        return negative ? "-" + text : text
    }

    /// `value` with `decimals` digits after the point (rounded half away from zero).
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "NaN" : (value < 0 ? "-∞" : "∞") }
        var scale = 1.0
        for _ in 0..<max(0, decimals) { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let negative = value < 0 && scaled != 0
        guard scaled < 9e15 else { return String(value) }
        let whole = Int64(scaled)
        let divisor = Int64(scale)
        var text = String(whole / divisor)
        if decimals > 0 {
            let fraction = String(whole % divisor)
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return negative ? "-" + text : text
    }

    /// An integer with thin grouping ("1,234,567").
    public static func grouped(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return value < 0 ? "-" + out : out
    }

    /// A percentage of `part` in `whole` with one decimal ("12.5%"), or "–" when `whole` is 0.
    public static func percent(_ part: Int, of whole: Int) -> String {
        whole > 0 ? fixed(100 * Double(part) / Double(whole), decimals: 1) + "%" : "–"
    }

    /// A byte count in the binary unit that suits it ("512 B", "3.2 KiB", "1.5 GiB").
    public static func bytes(_ value: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(value)
        var unit = 0
        while abs(v) >= 1024 && unit < units.count - 1 {
            v /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : fixed(v, decimals: v < 10 ? 2 : 1) + " " + units[unit]
    }
}

/// Builds the text of one SVG document element by element. Attribute values and text pass through
/// `Markup.escape`; numbers through `Markup.coordinate`.
struct SVGWriter {
    private(set) var text = ""

    /// An attribute list: names are trusted literals, values are escaped here.
    typealias Attributes = KeyValuePairs<String, String>

    private mutating func open(_ name: String, _ attributes: Attributes) {
        text += "<" + name
        for (key, value) in attributes { text += " \(key)=\"\(Markup.escape(value))\"" }
    }

    /// `<name …/>`, or `<name …><title>tooltip</title></name>` when a tooltip is given.
    mutating func element(_ name: String, _ attributes: Attributes, tooltip: String? = nil) {
        open(name, attributes)
        if let tooltip {
            text += "><title>\(Markup.escape(tooltip))</title></\(name)>"
        } else {
            text += "/>"
        }
    }

    /// `<name …>content</name>` with the content escaped.
    mutating func element(_ name: String, _ attributes: Attributes, content: String) {
        open(name, attributes)
        text += ">" + Markup.escape(content) + "</\(name)>"
    }

    mutating func begin(_ name: String, _ attributes: Attributes = [:]) {
        open(name, attributes)
        text += ">"
    }

    mutating func end(_ name: String) { text += "</\(name)>" }

    mutating func group(_ cssClass: String, _ body: (inout SVGWriter) -> Void) {
        begin("g", ["class": cssClass])
        body(&self)
        end("g")
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String, tooltip: String? = nil) {
        element("rect", ["x": c(x), "y": c(y), "width": c(max(0, width)), "height": c(max(0, height)), "fill": fill],
                tooltip: tooltip)
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String, width: Double = 1,
                       dash: String? = nil) {
        if let dash {
            element("line", ["x1": c(x1), "y1": c(y1), "x2": c(x2), "y2": c(y2), "stroke": stroke,
                             "stroke-width": c(width), "stroke-dasharray": dash])
        } else {
            element("line", ["x1": c(x1), "y1": c(y1), "x2": c(x2), "y2": c(y2), "stroke": stroke, "stroke-width": c(width)])
        }
    }

    /// A polyline as a path (`M x y L x y …`), drawn without fill.
    mutating func path(_ points: [(x: Double, y: Double)], stroke: String, width: Double = 1.5, tooltip: String? = nil) {
        guard let first = points.first else { return }
        var d = "M\(c(first.x)) \(c(first.y))"
        for p in points.dropFirst() { d += "L\(c(p.x)) \(c(p.y))" }
        element("path", ["d": d, "fill": "none", "stroke": stroke, "stroke-width": c(width),
                         "stroke-linejoin": "round"], tooltip: tooltip)
    }

    mutating func circle(x: Double, y: Double, radius: Double, fill: String, tooltip: String? = nil) {
        element("circle", ["cx": c(x), "cy": c(y), "r": c(radius), "fill": fill], tooltip: tooltip)
    }

    enum Anchor: String { case start, middle, end }

    /// A text label; `rotate` turns it around its anchor point (degrees).
    mutating func label(_ string: String, x: Double, y: Double, anchor: Anchor = .start, size: Double? = nil,
                        weight: String? = nil, fill: String? = nil, rotate: Double? = nil, tooltip: String? = nil) {
        var attributes = "x=\"\(c(x))\" y=\"\(c(y))\""
        if anchor != .start { attributes += " text-anchor=\"\(anchor.rawValue)\"" }
        if let size { attributes += " font-size=\"\(c(size))\"" }
        if let weight { attributes += " font-weight=\"\(weight)\"" }
        if let fill { attributes += " fill=\"\(Markup.escape(fill))\"" }
        if let rotate { attributes += " transform=\"rotate(\(c(rotate)) \(c(x)) \(c(y)))\"" }
        text += "<text \(attributes)>"
        if let tooltip { text += "<title>\(Markup.escape(tooltip))</title>" }
        text += Markup.escape(string) + "</text>"
    }

    private func c(_ v: Double) -> String { Markup.coordinate(v) }
}
