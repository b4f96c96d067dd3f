import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LinePlots
import XCTest

/// Issue 26: series drawn as symbols, dashed lines, shaded bands and a log x axis, as Chinchilla's figure 3 needs.
final class MarkersAndBandsTests: XCTestCase {
    /// One panel, two legend rows (five entries do not fit one 480-wide row): legend height 2 × 22 + 12 = 56, so the
    /// plot area is (70, 86), 392 × 244; x and y axes 0…100 and 0…10.
    func figure() -> Figure {
        let runs = Series(label: "runs", color: "#1f77b4", points: [(0, 0), (50, 5), (100, 10), (.nan, 3)], line: nil,
                          marker: .circle)
        let fit = Series(label: "fit", color: "#1f77b4", points: [(0, 0), (100, 10)])
        let extrapolation = Series(label: "extrapolation", color: "#1f77b4", points: [(50, 5), (100, 10)], line: .dashed)
        let minimum = Series(label: "minimum", color: "#000000", points: [(50, 5)], line: nil, marker: .diamond, markerSize: 5)
        let band = Band(label: "80% band", color: "#2ca02c", lower: [(0, 0), (100, 8)], upper: [(0, 2), (100, 10)])
        return Figure(panels: [Panel(title: "t", xLabel: "x", yLabel: "y", series: [runs, fit, extrapolation, minimum],
                                     bands: [band])], columns: 1)
    }

    func testMarkersLinesAndBandInTheSVG() throws {
        let figure = figure()
        XCTAssertTrue(figure.plotArea(ofPanel: 0) == (70, 86, 392, 244))
        let svg = try Node.parse(figure.svg())
        // Three drawable run points (the NaN one is left out) as circles at the data's positions, no line for them.
        let circles = svg.all("circle", class: "point-marker")
        XCTAssertEqual(circles.map { [$0.attributes["cx"]!, $0.attributes["cy"]!] },
                       [["70", "330"], ["266", "208"], ["462", "86"]])
        XCTAssertTrue(circles.allSatisfy { $0.attributes["fill"] == "#1f77b4" && $0.attributes["data-series"] == "panel-0-series-0" })
        // The minimum as a diamond around (266, 208), half-diagonal 1.3 × 5.
        let diamonds = svg.all("path", class: "point-marker")
        XCTAssertEqual(diamonds.map { $0.attributes["d"] }, ["M266,201.5 L272.5,208 L266,214.5 L259.5,208 Z"])
        // Lines only for the series that have one; the extrapolation dashed.
        let lines = svg.all("path", class: "series")
        XCTAssertEqual(lines.map { $0.attributes["id"] }, ["panel-0-series-1", "panel-0-series-2"])
        XCTAssertEqual(lines.map { $0.attributes["d"] }, ["M70,330 L462,86", "M266,208 L462,86"])
        XCTAssertNil(lines[0].attributes["stroke-dasharray"])
        XCTAssertEqual(lines[1].attributes["stroke-dasharray"], "6 4")
        // The band: along the lower curve, back along the upper, closed, filled translucent, before the series.
        let bands = svg.all("path", class: "band")
        XCTAssertEqual(bands.map { $0.attributes["d"] }, ["M70,330 L462,134.8 L462,86 L70,281.2 Z"])
        XCTAssertEqual(bands.first?.attributes["fill"], "#2ca02c")
        XCTAssertEqual(bands.first?.attributes["fill-opacity"], "0.2")
        let text = figure.svg()
        XCTAssertLessThan(text.range(of: "class=\"band\"")!.lowerBound, text.range(of: "class=\"series\"")!.lowerBound)
        // Legend: one entry per label; symbols for marker series, a swatch for the band.
        XCTAssertEqual(figure.legend.map(\.label), ["runs", "fit", "extrapolation", "minimum", "80% band"])
        XCTAssertEqual(svg.all("circle", class: "legend-marker").count, 1)
        XCTAssertEqual(svg.all("path", class: "legend-marker").count, 1)
        XCTAssertEqual(svg.all("rect").filter { $0.attributes["fill-opacity"] == "0.25" }.count, 1)
    }

    func testLogXAxisPlacesDecadesEvenly() throws {
        // x from 1e3 to 1e5 padded by 2% of the two decades: 1e4 in the middle, 1e3 and 1e5 0.04/2.08 from the ends.
        let s = Series(label: "a", color: "#000000", points: [(1e3, 0), (1e4, 5), (1e5, 10), (0, 3)], line: nil, marker: .square)
        let figure = Figure(panels: [Panel(title: "t", xLabel: "N", yLabel: "y", series: [s], xScale: .log)], columns: 1)
        let squares = try Node.parse(figure.svg()).all("rect", class: "point-marker")
        // Non-positive x cannot be drawn on a log axis: three squares, centred at x = 70 + 392·{0.04, 1.04, 2.04}/2.08.
        XCTAssertEqual(squares.count, 3)
        let centres = squares.map { Double($0.attributes["x"]!)! + 4 }
        for (got, want) in zip(centres, [77.54, 266, 454.46]) { XCTAssertEqual(got, want, accuracy: 0.01) }
        XCTAssertEqual(figure.xAxis(ofPanel: 0).scale, .log)
    }
}
