import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LinePlots
import RunReports
import XCTest

/// A parsed XML element (the SVG read back with Foundation's XMLParser).
final class Node {
    let name: String
    let attributes: [String: String]
    var children: [Node] = []
    var text = ""

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    var classes: [String] { (attributes["class"] ?? "").split(separator: " ").map(String.init) }

    /// Descendants (not self) with this element name and, if given, this class.
    func all(_ name: String, class cls: String? = nil) -> [Node] {
        children.flatMap { child -> [Node] in
            let match = child.name == name && (cls == nil || child.classes.contains(cls!))
            return (match ? [child] : []) + child.all(name, class: cls)
        }
    }

    static func parse(_ text: String) throws -> Node {
        final class Builder: NSObject, XMLParserDelegate {
            var stack = [Node(name: "#document", attributes: [:])]
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                let node = Node(name: name, attributes: attributes)
                stack.last!.children.append(node)
                stack.append(node)
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                stack.removeLast()
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last!.text += string }
        }
        let parser = XMLParser(data: Data(text.utf8))
        let builder = Builder()
        parser.delegate = builder
        guard parser.parse() else {
            throw NSError(domain: "xml", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)"])
        }
        return builder.stack[0]
    }
}

final class AxisTests: XCTestCase {
    func testNiceLinearTicks() {
        let steps = Axis.covering([0, 97], scale: .linear)
        XCTAssertEqual([steps.lower, steps.upper], [0, 100])
        XCTAssertEqual(steps.ticks, [0, 20, 40, 60, 80, 100])
        let loss = Axis.covering([1.5, 4.4], scale: .linear)
        XCTAssertEqual(loss.ticks, [1, 2, 3, 4, 5])
        let lr = Axis.covering([0, 6e-4], scale: .linear)
        XCTAssertEqual(lr.ticks, [0, 2e-4, 4e-4, 6e-4])
        XCTAssertEqual(lr.ticks.map(lr.label), ["0", "2e-4", "4e-4", "6e-4"])
        let tenths = Axis.covering([0.1, 0.9], scale: .linear)
        XCTAssertEqual(tenths.ticks, [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(tenths.ticks.map(tenths.label), ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        let tokens = Axis.covering([0, 19_000], scale: .linear)
        XCTAssertEqual(tokens.ticks.map(tokens.label), ["0", "5k", "10k", "15k", "20k"])
        let flat = Axis.covering([3, 3], scale: .linear)
        XCTAssertTrue(flat.lower < 3 && flat.upper > 3)
    }

    func testLogTicks() {
        let axis = Axis.covering([0.5, 50, .nan, -1], scale: .log)
        XCTAssertEqual(axis.lower, pow(10, -log10(2) - 0.04), accuracy: 1e-12)
        XCTAssertEqual(axis.upper, pow(10, log10(50) + 0.04), accuracy: 1e-12)
        XCTAssertEqual(axis.ticks, [0.5, 1, 2, 5, 10, 20, 50])
        XCTAssertEqual(axis.ticks.map(axis.label), ["0.5", "1", "2", "5", "10", "20", "50"])
        let wide = Axis.covering([1e-3, 10], scale: .log)
        XCTAssertEqual(wide.ticks, [1e-3, 1e-2, 1e-1, 1, 10])
        XCTAssertEqual(wide.ticks.map(wide.label), ["1e-3", "0.01", "0.1", "1", "10"])
        let narrow = Axis.covering([1.4, 8], scale: .log)
        XCTAssertEqual(narrow.ticks.map(narrow.label), ["1.5", "2", "3", "4", "5", "6", "7", "8"])
    }
}

final class FigureTests: XCTestCase {
    /// One panel, one legend row: legend height 22 + 12 = 34, so the plot area starts at (70, 34 + 30) and is
    /// (480 − 70 − 18) × (320 − 30 − 46) = 392 × 244. Axes: x 0…100, y 0…10.
    func testPathCoordinatesMapDataPoints() throws {
        let series = Series(label: "a", color: "#000000", points: [(0, 0), (50, 5), (.nan, 1), (75, .infinity), (100, 10)])
        let figure = Figure(panels: [Panel(title: "t", xLabel: "x", yLabel: "y", series: [series])], columns: 1)
        XCTAssertTrue(figure.plotArea(ofPanel: 0) == (70, 64, 392, 244))
        let paths = try Node.parse(figure.svg()).all("path", class: "series")
        XCTAssertEqual(paths.map { $0.attributes["d"] }, ["M70,308 L266,186 M462,64"])
        // The last point has no drawable neighbour: it is drawn as a dot, and only it.
        let dots = try Node.parse(figure.svg()).all("circle", class: "point")
        XCTAssertEqual(dots.map { [$0.attributes["cx"], $0.attributes["cy"]] }, [["462", "64"]])
    }

    func testLogScaleCoordinates() throws {
        // y axis 10^-0.04 … 10^2.04: 10 sits at the middle, 1 and 100 at 0.04/2.08 of the height from the ends.
        let series = Series(label: "a", color: "#000000", points: [(0, 1), (50, 10), (100, 100), (100, 0)])
        let figure = Figure(panels: [Panel(title: "t", xLabel: "x", yLabel: "y", yScale: .log, series: [series])], columns: 1)
        let paths = try Node.parse(figure.svg()).all("path", class: "series")
        XCTAssertEqual(paths.map { $0.attributes["d"] }, ["M70,303.31 L266,186 L462,68.69"])
        XCTAssertEqual(try Node.parse(figure.svg()).all("text", class: "y-label").map(\.text), ["y (log scale)"])
    }

    func runs() throws -> [RunMetrics] {
        var a = try RunMetrics(name: "warmup & cosine", text: """
        {"step":10,"train_loss":12,"lr":0.0003,"grad_norm":5}
        {"step":20,"train_loss":8,"lr":0.0006,"grad_norm":100}
        {"step":20,"event":"spike","loss":30,"action":"rollback"}
        {"step":30,"train_loss":4,"lr":0.0003,"grad_norm":1}
        {"step":30,"val_loss":4.5}
        """)
        a.tokensPerStep = 1000
        var b = try RunMetrics(name: "no-warmup", text: """
        {"step":10,"train_loss":9,"lr":0.0006,"grad_norm":2}
        {"step":40,"train_loss":3,"lr":0.0006,"grad_norm":1}
        {"step":40,"val_loss":3.5}
        """)
        b.tokensPerStep = 1000
        return [a, b]
    }

    func testTrainingCurvesStructure() throws {
        let figure = try TrainingCurves.figure(runs: try runs())
        let svg = figure.svg()
        let root = try Node.parse(svg)
        XCTAssertEqual(root.children.map(\.name), ["svg"])
        XCTAssertEqual(root.children[0].attributes["version"], "1.1")
        XCTAssertEqual(root.children[0].attributes["xmlns"], "http://www.w3.org/2000/svg")
        let panels = root.all("g", class: "panel")
        XCTAssertEqual(panels.map { $0.all("text", class: "title").map(\.text) },
                       [["Training loss"], ["Validation loss"], ["Learning rate"], ["Gradient norm"]])
        for panel in panels {
            XCTAssertEqual(panel.all("path", class: "series").map { $0.all("title")[0].text },
                           ["warmup & cosine", "no-warmup"])
            XCTAssertEqual(panel.all("text", class: "x-label").map(\.text), ["step"])
            XCTAssertEqual(panel.all("line", class: "marker").map { $0.all("title")[0].text },
                           ["warmup & cosine: spike at step 20, loss 30, rollback"])
            XCTAssertFalse(panel.all("text", class: "tick").isEmpty)
        }
        XCTAssertEqual(panels.map { $0.all("text", class: "y-label")[0].text },
                       ["loss (log scale)", "loss", "learning rate", "global L2 norm (log scale)"])
        let legend = root.all("g", class: "legend-entry").map { $0.all("text")[0].text }
        XCTAssertEqual(legend, ["warmup & cosine", "no-warmup", "loss spike"])
        // Shared x axis 10…40 (ticks 10, 20, 30, 40): the marker at step 20 sits at a third of every plot area.
        for index in 0..<4 {
            let area = figure.plotArea(ofPanel: index)
            let marker = panels[index].all("line", class: "marker")[0]
            XCTAssertEqual(Double(marker.attributes["x1"]!)!, area.x + area.width / 3, accuracy: 0.005)
        }
        // Learning rate, linear: y axis 0…6e-4, so run b's constant 6e-4 is a line along the top edge.
        let lrPath = panels[2].all("path", class: "series")[1].attributes["d"]!
        let area = figure.plotArea(ofPanel: 2)
        let top = fmt(area.y)
        XCTAssertEqual(lrPath, "M\(fmt(area.x)),\(top) L\(fmt(area.x + area.width)),\(top)")
    }

    func testTokensAxisAndMissingTokens() throws {
        let figure = try TrainingCurves.figure(runs: try runs(), x: .tokens)
        XCTAssertEqual(figure.xAxis(ofPanel: 0).upper, 40_000)
        let root = try Node.parse(figure.svg())
        XCTAssertEqual(root.all("text", class: "x-label").map(\.text), Array(repeating: "tokens", count: 4))
        XCTAssertTrue(root.all("text", class: "tick").map(\.text).contains("40k"))
        var unknown = try runs()
        unknown[1].tokensPerStep = nil
        XCTAssertThrowsError(try TrainingCurves.figure(runs: unknown, x: .tokens)) { error in
            XCTAssertTrue("\(error)".hasPrefix("no-warmup: cannot plot against tokens"), "\(error)")
        }
    }

    /// Issue 27: the extremes metrics.jsonl can hold (float32's largest and tiny values) are drawn with finite
    /// coordinates: the SVG never says nan or inf (a larger number is refused when the file is read: ExportTests).
    func testExtremeValuesGiveFiniteCoordinates() throws {
        let run = try RunMetrics(name: "r", text: """
        {"step":1,"train_loss":3.4e38,"lr":0.001,"grad_norm":2}
        {"step":2,"train_loss":3,"lr":0.001,"grad_norm":3e38}
        {"step":3,"train_loss":1e-30,"lr":0.001,"grad_norm":1e-38}
        {"step":3,"val_loss":3.3e38}
        """)
        let svg = try TrainingCurves.figure(runs: [run]).svg().lowercased()
        XCTAssertFalse(svg.contains("nan"), svg)
        XCTAssertFalse(svg.contains("inf"), svg)
        XCTAssertEqual(try Node.parse(svg).all("path", class: "series").count, 4)
    }

    func testEmptyPanelSaysSo() throws {
        let run = try RunMetrics(name: "r", text: "{\"step\":1,\"train_loss\":3,\"lr\":0.001,\"grad_norm\":1}\n")
        let root = try Node.parse(try TrainingCurves.figure(runs: [run]).svg())
        let panels = root.all("g", class: "panel")
        XCTAssertEqual(panels.map { $0.all("text", class: "empty").count }, [0, 1, 0, 0])
        XCTAssertEqual(panels.map { $0.all("path", class: "series").count }, [1, 0, 1, 1])
    }

    private func fmt(_ x: Double) -> String {
        var text = String(format: "%.2f", x)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
