import Foundation
import Planner
import TOMLKit

/// A recipe file that could not be read at all (as opposed to one that was read and has problems).
public struct RecipeFileError: Error, CustomStringConvertible {
    public var file: String
    public var reason: String
    public var description: String { "\(file): cannot read the recipe: \(reason)" }
}

/// Reads recipes strictly: every key must be known, present, of the right type and in range, and the whole must
/// be consistent and spend its declared budget. All problems are reported, not just the first.
public enum RecipeLoader {
    /// How far 6·N·D may be from `plan.flops_budget` by default.
    public static let defaultTolerance = 0.05

    public static func load(path: String, tolerance: Double = defaultTolerance) throws -> RecipeCheck {
        let data: Foundation.Data
        do {
            data = try Foundation.Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RecipeFileError(file: path, reason: (error as NSError).localizedFailureReason ?? "\(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw RecipeFileError(file: path, reason: "it is not UTF-8 text")
        }
        return check(text: text, file: path, tolerance: tolerance)
    }

    /// Loads a recipe that must pass, or throws `RecipeRejected` with every problem.
    public static func loadValid(path: String, tolerance: Double = defaultTolerance) throws -> (Recipe, [Problem]) {
        let result = try load(path: path, tolerance: tolerance)
        guard let recipe = result.recipe, result.errors.isEmpty else { throw RecipeRejected(problems: result.errors) }
        return (recipe, result.warnings)
    }

    public static func check(text: String, file: String, tolerance: Double = defaultTolerance) -> RecipeCheck {
        let lines = KeyLines(text: text)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            return RecipeCheck(recipe: nil, problems: [Problem(
                file: file, line: error.source.begin.line, column: error.source.begin.column, key: nil,
                message: "TOML syntax error: \(error.description)",
                fix: "correct the TOML at this position (see https://toml.io/en/v1.0.0)")])
        } catch {
            return RecipeCheck(recipe: nil, problems: [Problem(
                file: file, key: nil, message: "TOML syntax error: \(error)", fix: "correct the TOML syntax")])
        }

        var problems: [Problem] = []
        func report(_ key: String?, _ message: String, _ fix: String) {
            problems.append(Problem(file: file, line: key.flatMap { lines.line(of: $0) }, key: key,
                                    message: message, fix: fix))
        }

        // Keys the schema does not know.
        let sectionNames = Schema.sections.map(\.name)
        let topLevelKeys = Schema.fields(in: "").map(\.key)
        for key in table.keys.sorted(by: { (lines.line(of: $0) ?? 0) < (lines.line(of: $1) ?? 0) }) {
            if topLevelKeys.contains(key) { continue }
            guard sectionNames.contains(key) else {
                let suggestion = closest(key, among: sectionNames + topLevelKeys)
                report(key, "unknown \(table[key]?.table != nil ? "section [\(key)]" : "key")",
                       suggestion.map { "did you mean \($0)? Known sections: \(sectionNames.joined(separator: ", "))" }
                       ?? "remove it; known sections: \(sectionNames.joined(separator: ", "))")
                continue
            }
            guard let section = table[key]?.table else {
                report(key, "must be a section ([\(key)]), not a value", "write it as a [\(key)] table")
                continue
            }
            let known = Schema.fields(in: key).map(\.key)
            for inner in section.keys.sorted() where !known.contains(inner) {
                let path = "\(key).\(inner)"
                let hint = closest(inner, among: known).map { "did you mean \(key).\($0)? " } ?? ""
                report(path, "unknown key", "\(hint)remove it; [\(key)] takes \(known.joined(separator: ", "))")
            }
        }

        // Every known key: present, of its type, in range.
        var recipe = Recipe()
        var fieldFailed = false
        for field in Schema.fields {
            let raw: TOMLValueConvertible?
            if field.section.isEmpty {
                raw = table[field.key]
            } else {
                raw = table[field.section]?.table?[field.key]
            }
            guard let raw else {
                fieldFailed = true
                report(field.path, "missing (\(field.doc))",
                       "add `\(field.key) = <\(field.kind.allowed)>` to \(field.section.isEmpty ? "the top of the file" : "[\(field.section)]")")
                continue
            }
            guard let value = scalar(raw) else {
                fieldFailed = true
                report(field.path, "must be \(field.kind.allowed), got a TOML \(raw.type)",
                       "give \(field.kind.allowed)")
                continue
            }
            if let why = field.check(value) {
                fieldFailed = true
                report(field.path, why, "give \(field.kind.allowed) (\(field.doc))")
                continue
            }
            field.set(&recipe, value)
        }
        // Unknown keys do not stop the checks across keys; a missing or invalid known key does (they need its value).
        guard !fieldFailed else { return RecipeCheck(recipe: nil, problems: problems) }

        problems += RecipeValidator.consistencyProblems(recipe, file: file, lines: lines, tolerance: tolerance)
        let failed = problems.contains { $0.severity == .error }
        return RecipeCheck(recipe: failed ? nil : recipe, problems: problems)
    }

    static func scalar(_ raw: TOMLValueConvertible) -> RecipeValue? {
        switch raw.type {
        case .int: return raw.int.map(RecipeValue.integer)
        case .double: return raw.double.map(RecipeValue.float)
        case .string: return raw.string.map(RecipeValue.string)
        case .bool: return raw.bool.map(RecipeValue.bool)
        default: return nil
        }
    }

    /// The known name nearest `name` by edit distance, if it is near enough to be a typo.
    static func closest(_ name: String, among names: [String]) -> String? {
        let lower = name.lowercased()
        let scored = names.map { ($0, editDistance(lower, $0.lowercased())) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, name.count / 3) { return best.0 }
        // A shared stem of four or more letters ("trainer" for "training").
        return names.first { $0.lowercased().commonPrefix(with: lower).count >= 4 }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}

/// Line numbers of `section.key` assignments and `[section]` headers, found by a light scan of the text, so that
/// problems found after parsing can still point at a line.
struct KeyLines {
    private var lines: [String: Int] = [:]

    init(text: String) {
        var section = ""
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.isEmpty { continue }
            if line.hasPrefix("[") {
                let name = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                section = name
                if lines[name] == nil { lines[name] = index + 1 }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            let path = section.isEmpty ? key : "\(section).\(key)"
            if lines[path] == nil { lines[path] = index + 1 }
        }
    }

    /// The line of `path`, or of its section when the key itself is absent.
    func line(of path: String) -> Int? {
        if let line = lines[path] { return line }
        if let dot = path.firstIndex(of: ".") { return lines[String(path[..<dot])] }
        return nil
    }
}
