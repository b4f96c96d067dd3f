import Foundation

/// How a series joins its points.
public enum LineStyle: String, Sendable, Equatable {
    case solid
    /// Dashed (an extrapolation, a fit outside its data).
    case dashed
}

/// The symbol a series draws at each of its points.
public enum MarkerShape: String, Sendable, Equatable {
    case circle, square, diamond, triangle
}

/// One series: points joined in order by a line (`line`, nil for none) and drawn as symbols (`marker`, nil for
/// none). A non-finite point (or a value ≤ 0 on a log axis) breaks the line there.
public struct Series: Sendable, Equatable {
    public var label: String
    public var color: String
    public var points: [(x: Double, y: Double)]
    public var line: LineStyle?
    public var marker: MarkerShape?
    /// The symbol's half-width, in SVG units.
    public var markerSize: Double

    public init(label: String, color: String, points: [(x: Double, y: Double)], line: LineStyle? = .solid,
                marker: MarkerShape? = nil, markerSize: Double = 4) {
        self.label = label
        self.color = color
        self.points = points
        self.line = line
        self.marker = marker
        self.markerSize = markerSize
    }

    public static func == (a: Series, b: Series) -> Bool {
        a.label == b.label && a.color == b.color && a.points.elementsEqual(b.points) { $0.x == $1.x && $0.y == $1.y }
            && a.line == b.line && a.marker == b.marker && a.markerSize == b.markerSize
    }
}

/// A shaded region between two curves (an interval, such as a bootstrap band): `lower` and `upper` at the same
/// x values, drawn as one closed path filled at `opacity`.
public struct Band: Sendable, Equatable {
    public var label: String
    public var color: String
    public var lower: [(x: Double, y: Double)]
    public var upper: [(x: Double, y: Double)]
    public var opacity: Double

    public init(label: String, color: String, lower: [(x: Double, y: Double)], upper: [(x: Double, y: Double)],
                opacity: Double = 0.2) {
        precondition(lower.count == upper.count, "a band needs its lower and upper curves at the same x values")
        self.label = label
        self.color = color
        self.lower = lower
        self.upper = upper
        self.opacity = opacity
    }

    public static func == (a: Band, b: Band) -> Bool {
        func same(_ p: [(x: Double, y: Double)], _ q: [(x: Double, y: Double)]) -> Bool {
            p.elementsEqual(q) { $0.x == $1.x && $0.y == $1.y }
        }
        return a.label == b.label && a.color == b.color && same(a.lower, b.lower) && same(a.upper, b.upper)
            && a.opacity == b.opacity
    }
}

/// A vertical mark at `x` (an event such as a loss spike), drawn dashed across the plot area.
public struct Marker: Sendable, Equatable {
    public var x: Double
    public var color: String
    /// The legend entry the marker belongs to ("loss spike").
    public var kind: String
    /// Shown as the mark's tooltip.
    public var note: String

    public init(x: Double, color: String, kind: String, note: String) {
        self.x = x
        self.color = color
        self.kind = kind
        self.note = note
    }
}

public struct Panel: Sendable, Equatable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var yScale: Scale
    public var series: [Series]
    public var markers: [Marker]
    public var xScale: Scale
    /// Shaded intervals, drawn under the series.
    public var bands: [Band]

    public init(title: String, xLabel: String, yLabel: String, yScale: Scale = .linear, series: [Series],
                markers: [Marker] = [], xScale: Scale = .linear, bands: [Band] = []) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.yScale = yScale
        self.series = series
        self.markers = markers
        self.xScale = xScale
        self.bands = bands
    }
}

/// Panels in a grid under one legend, rendered as an SVG 1.1 document. With `sharedX` every panel's x axis
/// covers the x values of all panels, so the panels line up.
public struct Figure: Sendable {
    public var panels: [Panel]
    public var columns: Int
    public var panelWidth: Double
    public var panelHeight: Double
    public var sharedX: Bool

    /// Space around each panel's plot area, in SVG units.
    public static let margin = (left: 70.0, right: 18.0, top: 30.0, bottom: 46.0)
    static let legendRowHeight = 22.0
    static let font = "DejaVu Sans, Helvetica, Arial, sans-serif"

    public init(panels: [Panel], columns: Int = 2, panelWidth: Double = 480, panelHeight: Double = 320,
                sharedX: Bool = true) {
        precondition(columns >= 1, "a figure needs at least one column")
        precondition(panelWidth > Self.margin.left + Self.margin.right + 20
                     && panelHeight > Self.margin.top + Self.margin.bottom + 20, "panels too small for their margins")
        self.panels = panels
        self.columns = columns
        self.panelWidth = panelWidth
        self.panelHeight = panelHeight
        self.sharedX = sharedX
    }

    /// Legend entries: each series label once (first color seen; a line if any series of that label has one, its
    /// symbol if any has one), then each band label once, then each marker kind once.
    public var legend: [(label: String, color: String, dashed: Bool)] {
        legendEntries.map { ($0.label, $0.color, $0.dashed) }
    }

    /// A legend entry with everything its swatch shows.
    struct LegendEntry {
        var label: String
        var color: String
        var dashed: Bool
        var line = true
        var marker: MarkerShape?
        var band = false
    }

    var legendEntries: [LegendEntry] {
        var entries: [LegendEntry] = [], index: [String: Int] = [:]
        for series in panels.flatMap(\.series) {
            if let i = index[series.label] {
                if series.line != nil, !entries[i].line { entries[i].line = true }
                if entries[i].marker == nil { entries[i].marker = series.marker }
                continue
            }
            index[series.label] = entries.count
            entries.append(LegendEntry(label: series.label, color: series.color, dashed: series.line == .dashed,
                                       line: series.line != nil, marker: series.marker))
        }
        var bands = Set<String>()
        for band in panels.flatMap(\.bands) where bands.insert(band.label).inserted && index[band.label] == nil {
            entries.append(LegendEntry(label: band.label, color: band.color, dashed: false, line: false, band: true))
        }
        var kinds = Set<String>()
        for marker in panels.flatMap(\.markers) where kinds.insert(marker.kind).inserted {
            entries.append(LegendEntry(label: marker.kind, color: "#555555", dashed: true))
        }
        return entries
    }

    /// The x axis of panel `index` (with `sharedX`, panel 0's scale).
    public func xAxis(ofPanel index: Int) -> Axis {
        let sources = sharedX ? panels : [panels[index]]
        let xs = sources.flatMap {
            $0.series.flatMap { $0.points.map(\.x) } + $0.markers.map(\.x) + $0.bands.flatMap { $0.lower.map(\.x) }
        }
        return Axis.covering(xs, scale: sharedX ? panels[0].xScale : panels[index].xScale)
    }

    public func yAxis(ofPanel index: Int) -> Axis {
        let panel = panels[index]
        return Axis.covering(panel.series.flatMap { $0.points.map(\.y) }
                             + panel.bands.flatMap { $0.lower.map(\.y) + $0.upper.map(\.y) }, scale: panel.yScale)
    }

    var legendHeight: Double {
        let rows = (legendLayout.last?.row ?? -1) + 1
        return rows == 0 ? 0 : Double(rows) * Self.legendRowHeight + 12
    }

    var width: Double { Double(columns) * panelWidth }
    var rows: Int { (panels.count + columns - 1) / columns }
    public var height: Double { legendHeight + Double(rows) * panelHeight }

    /// Where panel `index`'s plot area lies in the document: origin (top left) and size.
    public func plotArea(ofPanel index: Int) -> (x: Double, y: Double, width: Double, height: Double) {
        let column = index % columns, row = index / columns
        let m = Self.margin
        return (Double(column) * panelWidth + m.left, legendHeight + Double(row) * panelHeight + m.top,
                panelWidth - m.left - m.right, panelHeight - m.top - m.bottom)
    }

    /// The document coordinates of data point (x, y) in panel `index`.
    public func position(x: Double, y: Double, inPanel index: Int) -> (x: Double, y: Double) {
        let area = plotArea(ofPanel: index)
        return (area.x + xAxis(ofPanel: index).fraction(of: x) * area.width,
                area.y + (1 - yAxis(ofPanel: index).fraction(of: y)) * area.height)
    }

    /// Legend entries laid out left to right, wrapping at the figure's width (text width estimated at 0.6 em).
    var legendLayout: [(row: Int, x: Double)] {
        var layout: [(Int, Double)] = [], row = 0, x = 16.0
        for entry in legendEntries {
            let entryWidth = 34 + Double(entry.label.count) * 7.2 + 18
            if x + entryWidth > width - 8, x > 16 {
                row += 1
                x = 16
            }
            layout.append((row, x))
            x += entryWidth
        }
        return layout
    }
}
