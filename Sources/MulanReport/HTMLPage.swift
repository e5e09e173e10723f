/// A table of a section: plain-text cells (escaped when rendered).
struct Table {
    var header: [String]
    var rows: [[String]]
    /// Columns aligned right (numbers).
    var numeric: Set<Int> = []
}

/// A piece of a section.
enum Block {
    /// Why something is not shown (an input is missing, nothing to plot), and what to do.
    case note(String)
    case paragraph(String)
    case figure(svg: String, caption: String)
    case table(Table)
}

/// One part of the report, for one input.
struct Section {
    var id: String
    var title: String
    var blocks: [Block] = []

    var figures: Int { blocks.filter { if case .figure = $0 { true } else { false } }.count }
}

/// The single self-contained HTML file: inline CSS, inline SVG, no external resource. A short
/// inline script measures each drawn plot after load and writes the result into the page
/// (`<pre id="plot-check">`), so a headless browser can confirm that every plot drew; the plots
/// themselves need no script.
enum HTMLPage {
    static func render(title: String, inputs: [(name: String, value: String)], sections: [Section]) -> String {
        var html = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="generator" content="mulan-report">
        <title>\(Markup.escape(title))</title>
        <style>\(style)</style>
        </head>
        <body>
        <header>
        <h1>\(Markup.escape(title))</h1>
        <dl class="inputs">
        """
        for input in inputs {
            html += "\n<dt>\(Markup.escape(input.name))</dt><dd>\(Markup.escape(input.value))</dd>"
        }
        html += "\n</dl>\n<nav><ol>"
        for s in sections {
            let count = s.figures
            html += "\n<li><a href=\"#\(s.id)\">\(Markup.escape(s.title))</a>"
                + (count == 0 ? " <span class=\"muted\">(not available)</span>" : " <span class=\"muted\">(\(count) plot\(count == 1 ? "" : "s"))</span>")
                + "</li>"
        }
        html += "\n</ol></nav>\n</header>\n<main>"
        for s in sections {
            html += "\n<section id=\"\(s.id)\">\n<h2>\(Markup.escape(s.title))</h2>"
            // Consecutive figures share a wrapping row, two or more abreast on a wide screen.
            var inRow = false
            for block in s.blocks {
                let isFigure = if case .figure = block { true } else { false }
                if isFigure && !inRow { html += "\n<div class=\"figures\">" }
                if !isFigure && inRow { html += "\n</div>" }
                inRow = isFigure
                html += "\n" + render(block)
            }
            if inRow { html += "\n</div>" }
            html += "\n</section>"
        }
        html += "\n</main>\n<footer>Written by mulan-report. Hover over a bar or a point for its exact value.</footer>\n"
        html += "<script>\(selfCheck)</script>\n</body>\n</html>\n"
        return html
    }

    static func render(_ block: Block) -> String {
        switch block {
        case .note(let text):
            return "<p class=\"note\">\(Markup.escape(text))</p>"
        case .paragraph(let text):
            return "<p>\(Markup.escape(text))</p>"
        case .figure(let svg, let caption):
            return "<figure>\(svg)<figcaption>\(Markup.escape(caption))</figcaption></figure>"
        case .table(let t):
            var out = "<table>\n<thead><tr>"
            for (i, h) in t.header.enumerated() {
                out += t.numeric.contains(i) ? "<th class=\"num\">\(Markup.escape(h))</th>" : "<th>\(Markup.escape(h))</th>"
            }
            out += "</tr></thead>\n<tbody>"
            for row in t.rows {
                out += "\n<tr>"
                for (i, cell) in row.enumerated() {
                    out += t.numeric.contains(i) ? "<td class=\"num\">\(Markup.escape(cell))</td>" : "<td>\(Markup.escape(cell))</td>"
                }
                out += "</tr>"
            }
            return out + "\n</tbody>\n</table>"
        }
    }

    static let style = """

    body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; color: #222;
      max-width: 1440px; margin: 0 auto; padding: 0 1.5rem 2rem; line-height: 1.4; }
    h1 { margin: 1.2rem 0 0.4rem; font-size: 1.6rem; }
    h2 { margin-top: 2.2rem; padding-bottom: 0.2rem; border-bottom: 1px solid #ddd; font-size: 1.25rem; }
    dl.inputs { display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 1rem; margin: 0; font-size: 0.9rem; }
    dl.inputs dt { color: #666; }
    dl.inputs dd { margin: 0; font-family: ui-monospace, 'DejaVu Sans Mono', monospace; overflow-wrap: anywhere; }
    nav ol { columns: 2; font-size: 0.95rem; }
    .muted { color: #777; }
    p.note { background: #f6f6f6; border-left: 4px solid #bbb; padding: 0.5rem 0.8rem; color: #444; }
    div.figures { display: flex; flex-wrap: wrap; gap: 0.6rem 1.2rem; align-items: flex-start; margin: 0.6rem 0; }
    figure { margin: 0; max-width: 100%; }
    figure svg { max-width: 100%; height: auto; display: block; }
    figcaption { font-size: 0.85rem; color: #555; max-width: 680px; margin-top: 0.2rem; }
    table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
    th, td { border-bottom: 1px solid #e3e3e3; padding: 0.2rem 0.7rem; text-align: left; }
    th { background: #f3f3f3; }
    .num { text-align: right; font-variant-numeric: tabular-nums; }
    footer { margin-top: 2.5rem; color: #777; font-size: 0.85rem; }
    pre#plot-check { display: none; }

    """

    /// Measures each `svg.plot`'s marks group after layout; writes a JSON array into `pre#plot-check`.
    static let selfCheck = """

    (function () {
      var result = [];
      var plots = document.querySelectorAll('svg.plot');
      for (var i = 0; i < plots.length; i++) {
        var svg = plots[i], g = svg.querySelector('g.marks'), box = null;
        var marks = g ? g.querySelectorAll('rect, path, circle, line, polygon').length : 0;
        try { box = g ? g.getBBox() : null; } catch (e) { box = null; }
        result.push({ id: svg.id, marks: marks, width: box ? box.width : 0, height: box ? box.height : 0 });
      }
      var pre = document.createElement('pre');
      pre.id = 'plot-check';
      pre.textContent = JSON.stringify(result);
      document.body.appendChild(pre);
    })();

    """
}
