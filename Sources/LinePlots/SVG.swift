import Foundation

extension Figure {
    /// The figure as a standalone SVG 1.1 document. Structure (for readers and tests): one
    /// `<g class="panel" id="panel-N">` per panel holding its title (`class="title"`), axis labels
    /// (`class="x-label"`, `class="y-label"`), tick labels (`class="tick"`), one `<path class="series">` per
    /// series with points and one `<line class="marker">` per marker; then `<g class="legend">` with one
    /// `<g class="legend-entry">` per legend entry. Bands are `<path class="band">` (closed, filled, under the
    /// series); a series' symbols are elements of class `point-marker` (circle, rect or path) whose `data-series`
    /// names the series. Coordinates have two decimals.
    public func svg() -> String {
        var out = """
        <?xml version="1.0" encoding="UTF-8" standalone="no"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(n(width))" height="\(n(height))" \
        viewBox="0 0 \(n(width)) \(n(height))" font-family="\(Self.font)" font-size="12">
        <rect x="0" y="0" width="\(n(width))" height="\(n(height))" fill="#ffffff"/>
        <defs>

        """
        for index in panels.indices {
            let a = plotArea(ofPanel: index)
            out += "<clipPath id=\"clip-\(index)\"><rect x=\"\(n(a.x))\" y=\"\(n(a.y))\" width=\"\(n(a.width))\" "
                + "height=\"\(n(a.height))\"/></clipPath>\n"
        }
        out += "</defs>\n"
        for index in panels.indices { out += panelSVG(index) }
        out += legendSVG()
        out += "</svg>\n"
        return out
    }

    private func panelSVG(_ index: Int) -> String {
        let panel = panels[index]
        let a = plotArea(ofPanel: index)
        let xAxis = xAxis(ofPanel: index), yAxis = yAxis(ofPanel: index)
        var out = "<g class=\"panel\" id=\"panel-\(index)\">\n"
        out += "<text class=\"title\" x=\"\(n(a.x + a.width / 2))\" y=\"\(n(a.y - 10))\" text-anchor=\"middle\" "
            + "font-size=\"14\" font-weight=\"bold\">\(escape(panel.title))</text>\n"
        out += "<rect x=\"\(n(a.x))\" y=\"\(n(a.y))\" width=\"\(n(a.width))\" height=\"\(n(a.height))\" "
            + "fill=\"#fafafa\" stroke=\"#888888\" stroke-width=\"1\"/>\n"
        // Grid lines and tick labels.
        for tick in xAxis.ticks {
            let x = a.x + xAxis.fraction(of: tick) * a.width
            out += "<line class=\"grid\" x1=\"\(n(x))\" y1=\"\(n(a.y))\" x2=\"\(n(x))\" y2=\"\(n(a.y + a.height))\" "
                + "stroke=\"#e2e2e2\" stroke-width=\"1\"/>\n"
            out += "<text class=\"tick\" x=\"\(n(x))\" y=\"\(n(a.y + a.height + 16))\" text-anchor=\"middle\" "
                + "fill=\"#333333\">\(escape(xAxis.label(for: tick)))</text>\n"
        }
        for tick in yAxis.ticks {
            let y = a.y + (1 - yAxis.fraction(of: tick)) * a.height
            out += "<line class=\"grid\" x1=\"\(n(a.x))\" y1=\"\(n(y))\" x2=\"\(n(a.x + a.width))\" y2=\"\(n(y))\" "
                + "stroke=\"#e2e2e2\" stroke-width=\"1\"/>\n"
            out += "<text class=\"tick\" x=\"\(n(a.x - 6))\" y=\"\(n(y + 4))\" text-anchor=\"end\" "
                + "fill=\"#333333\">\(escape(yAxis.label(for: tick)))</text>\n"
        }
        out += "<text class=\"x-label\" x=\"\(n(a.x + a.width / 2))\" y=\"\(n(a.y + a.height + 36))\" "
            + "text-anchor=\"middle\">\(escape(panel.xLabel))</text>\n"
        let yLabelX = a.x - Self.margin.left + 16, yLabelY = a.y + a.height / 2
        out += "<text class=\"y-label\" x=\"\(n(yLabelX))\" y=\"\(n(yLabelY))\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 \(n(yLabelX)) \(n(yLabelY)))\">\(escape(panel.yLabel + (panel.yScale == .log ? " (log scale)" : "")))</text>\n"
        if panel.series.allSatisfy({ $0.points.isEmpty }), panel.bands.isEmpty {
            out += "<text class=\"empty\" x=\"\(n(a.x + a.width / 2))\" y=\"\(n(a.y + a.height / 2))\" "
                + "text-anchor=\"middle\" fill=\"#888888\">no data</text>\n"
        }
        out += "<g clip-path=\"url(#clip-\(index))\">\n"
        for marker in panel.markers {
            let x = a.x + xAxis.fraction(of: marker.x) * a.width
            out += "<line class=\"marker\" x1=\"\(n(x))\" y1=\"\(n(a.y))\" x2=\"\(n(x))\" y2=\"\(n(a.y + a.height))\" "
                + "stroke=\"\(marker.color)\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\" opacity=\"0.8\">"
                + "<title>\(escape(marker.note))</title></line>\n"
        }
        for (b, band) in panel.bands.enumerated() {
            guard let d = bandPathData(band, index) else { continue }
            out += "<path class=\"band\" id=\"panel-\(index)-band-\(b)\" d=\"\(d)\" fill=\"\(band.color)\" "
                + "fill-opacity=\"\(n(band.opacity))\" stroke=\"none\"><title>\(escape(band.label))</title></path>\n"
        }
        for (s, series) in panel.series.enumerated() {
            guard let d = pathData(series, index) else { continue }
            if let line = series.line {
                out += "<path class=\"series\" id=\"panel-\(index)-series-\(s)\" d=\"\(d)\" fill=\"none\" "
                    + "stroke=\"\(series.color)\" stroke-width=\"1.6\" stroke-linejoin=\"round\" stroke-linecap=\"round\""
                    + (line == .dashed ? " stroke-dasharray=\"6 4\"" : "") + ">"
                    + "<title>\(escape(series.label))</title></path>\n"
                // A point with no drawable neighbour (a run validated once, say) is a dot: a lone "M" draws nothing.
                if series.marker == nil {
                    for point in isolatedPoints(series, index) {
                        out += "<circle class=\"point\" cx=\"\(n(point.x))\" cy=\"\(n(point.y))\" r=\"3\" "
                            + "fill=\"\(series.color)\"><title>\(escape(series.label))</title></circle>\n"
                    }
                }
            }
            if let shape = series.marker {
                for point in drawablePoints(series, index) {
                    out += symbol(shape, at: point, size: series.markerSize, color: series.color,
                                  attributes: "class=\"point-marker\" data-series=\"panel-\(index)-series-\(s)\"",
                                  title: series.label)
                }
            }
        }
        out += "</g>\n</g>\n"
        return out
    }

    /// Positions of the points that `pathData` draws as subpaths of one point (invisible as lines).
    func isolatedPoints(_ series: Series, _ index: Int) -> [(x: Double, y: Double)] {
        guard let d = pathData(series, index) else { return [] }
        let moves = d.split(separator: " ")
        var points: [(x: Double, y: Double)] = []
        for (i, move) in moves.enumerated() where move.hasPrefix("M") && (i + 1 == moves.count || moves[i + 1].hasPrefix("M")) {
            let xy = move.dropFirst().split(separator: ",").compactMap { Double($0) }
            if xy.count == 2 { points.append((xy[0], xy[1])) }
        }
        return points
    }

    /// "M x,y L x,y …", starting a new subpath after every point that cannot be drawn; nil when none can.
    func pathData(_ series: Series, _ index: Int) -> String? {
        var parts: [String] = [], pen = false
        for point in series.points {
            guard let p = place(point, index) else {
                pen = false
                continue
            }
            parts.append("\(pen ? "L" : "M")\(n(p.x)),\(n(p.y))")
            pen = true
        }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// The document position of a data point, or nil when it cannot be drawn (not finite, or ≤ 0 on a log axis).
    func place(_ point: (x: Double, y: Double), _ index: Int) -> (x: Double, y: Double)? {
        let logX = xAxis(ofPanel: index).scale == .log, logY = panels[index].yScale == .log
        guard point.x.isFinite, point.y.isFinite, !logX || point.x > 0, !logY || point.y > 0 else { return nil }
        let a = plotArea(ofPanel: index), xAxis = xAxis(ofPanel: index), yAxis = yAxis(ofPanel: index)
        return (a.x + xAxis.fraction(of: point.x) * a.width, a.y + (1 - yAxis.fraction(of: point.y)) * a.height)
    }

    /// Document positions of the series' points that can be drawn.
    func drawablePoints(_ series: Series, _ index: Int) -> [(x: Double, y: Double)] {
        series.points.compactMap { place($0, index) }
    }

    /// The band as one closed path: along the lower curve, back along the upper; nil when a point cannot be drawn.
    func bandPathData(_ band: Band, _ index: Int) -> String? {
        let lower = band.lower.compactMap { place($0, index) }, upper = band.upper.compactMap { place($0, index) }
        guard lower.count == band.lower.count, upper.count == band.upper.count, lower.count >= 2 else { return nil }
        let points = lower + upper.reversed()
        return points.enumerated().map { "\($0 == 0 ? "M" : "L")\(n($1.x)),\(n($1.y))" }.joined(separator: " ") + " Z"
    }

    /// A symbol centred at `p`, `size` its half-width.
    func symbol(_ shape: MarkerShape, at p: (x: Double, y: Double), size r: Double, color: String, attributes: String,
                title: String) -> String {
        let style = "fill=\"\(color)\" stroke=\"#ffffff\" stroke-width=\"0.8\""
        let tail = "<title>\(escape(title))</title>"
        switch shape {
        case .circle:
            return "<circle \(attributes) cx=\"\(n(p.x))\" cy=\"\(n(p.y))\" r=\"\(n(r))\" \(style)>\(tail)</circle>\n"
        case .square:
            return "<rect \(attributes) x=\"\(n(p.x - r))\" y=\"\(n(p.y - r))\" width=\"\(n(2 * r))\" height=\"\(n(2 * r))\" "
                + "\(style)>\(tail)</rect>\n"
        case .diamond:
            let d = "M\(n(p.x)),\(n(p.y - 1.3 * r)) L\(n(p.x + 1.3 * r)),\(n(p.y)) L\(n(p.x)),\(n(p.y + 1.3 * r)) "
                + "L\(n(p.x - 1.3 * r)),\(n(p.y)) Z"
            return "<path \(attributes) d=\"\(d)\" \(style)>\(tail)</path>\n"
        case .triangle:
            let d = "M\(n(p.x)),\(n(p.y - 1.2 * r)) L\(n(p.x + 1.1 * r)),\(n(p.y + 0.8 * r)) L\(n(p.x - 1.1 * r)),\(n(p.y + 0.8 * r)) Z"
            return "<path \(attributes) d=\"\(d)\" \(style)>\(tail)</path>\n"
        }
    }

    private func legendSVG() -> String {
        var out = "<g class=\"legend\">\n"
        for (entry, place) in zip(legendEntries, legendLayout) {
            let y = 14 + Double(place.row) * Self.legendRowHeight
            out += "<g class=\"legend-entry\">"
            if entry.band {
                out += "<rect x=\"\(n(place.x))\" y=\"\(n(y - 6))\" width=\"26\" height=\"12\" fill=\"\(entry.color)\" "
                    + "fill-opacity=\"0.25\"/>"
            } else if entry.line {
                out += "<line x1=\"\(n(place.x))\" y1=\"\(n(y))\" x2=\"\(n(place.x + 26))\" y2=\"\(n(y))\" "
                    + "stroke=\"\(entry.color)\" stroke-width=\"\(entry.dashed ? "1.2" : "2.5")\""
                    + (entry.dashed ? " stroke-dasharray=\"4 3\"" : "") + "/>"
            }
            if let shape = entry.marker {
                out += symbol(shape, at: (place.x + 13, y), size: 4, color: entry.color, attributes: "class=\"legend-marker\"",
                              title: entry.label).dropLast()
            }
            out += "<text x=\"\(n(place.x + 32))\" y=\"\(n(y + 4))\">\(escape(entry.label))</text></g>\n"
        }
        out += "</g>\n"
        return out
    }

    /// A coordinate with at most two decimals, no trailing zeros.
    private func n(_ x: Double) -> String {
        var text = String(format: "%.2f", x)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    private func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}

/// A categorical palette (Tableau 10, as matplotlib's "tab10"): distinct hues that stay apart in print.
public enum Palette {
    public static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    public static func color(_ index: Int) -> String { colors[index % colors.count] }
}
