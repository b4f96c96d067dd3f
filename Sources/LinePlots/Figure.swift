import Foundation

/// One line: points joined in order. A non-finite point (or a value ≤ 0 on a log axis) breaks the line there.
public struct Series: Sendable, Equatable {
    public var label: String
    public var color: String
    public var points: [(x: Double, y: Double)]

    public init(label: String, color: String, points: [(x: Double, y: Double)]) {
        self.label = label
        self.color = color
        self.points = points
    }

    public static func == (a: Series, b: Series) -> Bool {
        a.label == b.label && a.color == b.color && a.points.elementsEqual(b.points) { $0.x == $1.x && $0.y == $1.y }
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

    public init(title: String, xLabel: String, yLabel: String, yScale: Scale = .linear, series: [Series],
                markers: [Marker] = []) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.yScale = yScale
        self.series = series
        self.markers = markers
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

    /// Legend entries: each series label once (first color seen), then each marker kind once.
    public var legend: [(label: String, color: String, dashed: Bool)] {
        var seen = Set<String>(), entries: [(String, String, Bool)] = []
        for series in panels.flatMap(\.series) where seen.insert(series.label).inserted {
            entries.append((series.label, series.color, false))
        }
        var kinds = Set<String>()
        for marker in panels.flatMap(\.markers) where kinds.insert(marker.kind).inserted {
            entries.append((marker.kind, "#555555", true))
        }
        return entries
    }

    /// The x axis of panel `index`.
    public func xAxis(ofPanel index: Int) -> Axis {
        let sources = sharedX ? panels : [panels[index]]
        let xs = sources.flatMap { $0.series.flatMap { $0.points.map(\.x) } + $0.markers.map(\.x) }
        return Axis.covering(xs, scale: .linear)
    }

    public func yAxis(ofPanel index: Int) -> Axis {
        Axis.covering(panels[index].series.flatMap { $0.points.map(\.y) }, scale: panels[index].yScale)
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
        for entry in legend {
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
