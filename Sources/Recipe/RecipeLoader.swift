import Foundation
import TOMLKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads recipes strictly: every required key must be present, every key known, of the right type and in range,
/// and the whole must be consistent and spend its declared budget. All problems are reported, not just the first.
public enum RecipeLoader {
    /// How far 6·N·D may be from `plan.flops_budget` by default.
    public static let defaultTolerance = 0.05
    /// The largest recipe file read: 1 MiB, a hundred times the largest written recipe (under 10 kB with every
    /// comment). Anything bigger is not a recipe (a data file, a device), and is refused before it is read.
    public static let maximumBytes = 1 << 20

    /// Reads and checks the recipe at `path`. Throws `RecipeFileError` when the file cannot be read at all;
    /// everything wrong with its contents (including bytes that are not UTF-8) is a `Problem` in the result.
    public static func load(path: String, tolerance: Double = defaultTolerance) throws(RecipeFileError) -> RecipeCheck {
        check(data: try contents(of: path), file: path, tolerance: tolerance)
    }

    /// Loads a recipe that must pass, or throws `RecipeRejected` with every problem (or `RecipeFileError`).
    public static func loadValid(path: String, tolerance: Double = defaultTolerance) throws -> (Recipe, [Problem]) {
        let result = try load(path: path, tolerance: tolerance)
        guard let recipe = result.recipe, result.errors.isEmpty else { throw RecipeRejected(problems: result.errors) }
        return (recipe, result.warnings)
    }

    /// The bytes of a regular file of at most `maximumBytes`, or why not.
    public static func contents(of path: String) throws(RecipeFileError) -> [UInt8] {
        func reason(_ code: Int32) -> String { String(cString: strerror(code)) }
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            if code == ENOENT { throw .notFound(file: path) }
            throw .unreadable(file: path, reason: reason(code))
        }
        try checkType(info, of: path)
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused by type anyway, after fstat).
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { throw .unreadable(file: path, reason: reason(errno)) }
        defer { close(fd) }
        // The file opened may not be the one stat saw.
        if fstat(fd, &info) != 0 { throw .unreadable(file: path, reason: reason(errno)) }
        try checkType(info, of: path)
        var bytes = [UInt8](repeating: 0, count: min(Int(info.st_size), maximumBytes) + 1)
        var count = 0
        while true {
            if count == bytes.count {
                guard bytes.count <= maximumBytes else { break }
                bytes += [UInt8](repeating: 0, count: min(bytes.count, maximumBytes + 1 - bytes.count))
            }
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .unreadable(file: path, reason: reason(errno))
            }
            if n == 0 { break }
            count += n
        }
        // It grew while it was read.
        if count > maximumBytes { throw .tooLarge(file: path, bytes: count, limit: maximumBytes) }
        return Array(bytes[..<count])
    }

    private static func checkType(_ info: stat, of path: String) throws(RecipeFileError) {
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            if Int(info.st_size) > maximumBytes {
                throw .tooLarge(file: path, bytes: Int(info.st_size), limit: maximumBytes)
            }
        case S_IFDIR: throw .isDirectory(file: path)
        case S_IFCHR: throw .notRegularFile(file: path, type: "a character device")
        case S_IFBLK: throw .notRegularFile(file: path, type: "a block device")
        case S_IFIFO: throw .notRegularFile(file: path, type: "a FIFO (named pipe)")
        case S_IFSOCK: throw .notRegularFile(file: path, type: "a socket")
        default: throw .notRegularFile(file: path, type: "not a file")
        }
    }

    /// Checks recipe bytes: what `byteProblem` refuses first, then everything `check(text:)` checks.
    public static func check(data: [UInt8], file: String, tolerance: Double = defaultTolerance) -> RecipeCheck {
        if let problem = byteProblem(in: data, file: file) { return RecipeCheck(recipe: nil, problems: [problem]) }
        return checkParsed(text: String(decoding: data, as: UTF8.self), file: file, tolerance: tolerance)
    }

    public static func check(text: String, file: String, tolerance: Double = defaultTolerance) -> RecipeCheck {
        if let problem = byteProblem(in: Array(text.utf8), file: file) { return RecipeCheck(recipe: nil, problems: [problem]) }
        return checkParsed(text: text, file: file, tolerance: tolerance)
    }

    /// The one place recipe bytes are checked before TOML sees them: bytes that are not UTF-8 (the first bad one
    /// located), and NUL anywhere. toml++ reads a C string, so a NUL silently ended the recipe there: what followed
    /// (a `[stability]` section, a `steps = -5`) was never checked, or a key after it was reported missing.
    static func byteProblem(in data: [UInt8], file: String) -> Problem? {
        if let offset = UTF8Check.firstInvalidByte(in: data) {
            let (line, column) = UTF8Check.lineAndColumn(of: offset, in: data)
            return Problem(
                .error, .encoding, file: file, line: line, column: column, key: nil,
                message: "is not UTF-8 text: byte 0x\(String(data[offset], radix: 16, uppercase: true)) at byte offset "
                    + "\(offset) (line \(line), column \(column), counting bytes from 1) is not part of a valid UTF-8 character",
                fix: "save the recipe as UTF-8 (from Latin-1: `iconv -f latin1 -t utf-8`), or remove the byte")
        }
        if let offset = data.firstIndex(of: 0) {
            let (line, column) = UTF8Check.lineAndColumn(of: offset, in: data)
            let count = data.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
            return Problem(
                .error, .encoding, file: file, line: line, column: column, key: nil,
                message: "holds a NUL byte (0x00) at byte offset \(offset) (line \(line), column \(column))"
                    + (count > 1 ? ", and \(count - 1) more" : "") + ": a recipe is text, and TOML allows no NUL",
                fix: "remove the NUL bytes (`tr -d '\\000' < \((file as NSString).lastPathComponent) > fixed.toml`), or "
                    + "write the recipe again with gpt-plan")
        }
        return nil
    }

    static func checkParsed(text: String, file: String, tolerance: Double) -> RecipeCheck {
        let lines = KeyLines(text: text)
        if let (line, column) = TableHeaderCheck.firstUnparsableHeader(in: text) {
            return RecipeCheck(recipe: nil, problems: [Problem(
                .error, .syntax, file: file, line: line, column: column, key: nil,
                message: "TOML syntax error: a table header must begin with a key name (letters, digits, _ or -, or a quoted name)",
                fix: "write the section as [name], such as [training]")])
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            return RecipeCheck(recipe: nil, problems: [Problem(
                .error, .syntax, file: file, line: error.source.begin.line, column: error.source.begin.column, key: nil,
                message: "TOML syntax error: \(RecipeText.echo(error.description))",
                fix: "correct the TOML at this position (see https://toml.io/en/v1.0.0)")])
        } catch {
            return RecipeCheck(recipe: nil, problems: [Problem(
                .error, .syntax, file: file, key: nil, message: "TOML syntax error: \(RecipeText.echo("\(error)"))",
                fix: "correct the TOML syntax")])
        }

        var problems: [Problem] = []
        func report(_ severity: Problem.Severity, _ kind: Problem.Kind, _ key: String?, _ message: String,
                    _ fix: String) {
            problems.append(Problem(severity, kind, file: file, line: key.flatMap { lines.line(of: $0) },
                                    key: key.map(RecipeText.echo), message: message, fix: fix))
        }
        func report(_ kind: Problem.Kind, _ key: String?, _ message: String, _ fix: String) {
            report(.error, kind, key, message, fix)
        }

        // Keys the schema does not know.
        let sectionNames = Schema.sections.map(\.name)
        let topLevelKeys = Schema.fields(in: "").map(\.key)
        for key in table.keys.sorted(by: { (lines.line(of: $0) ?? 0) < (lines.line(of: $1) ?? 0) }) {
            if topLevelKeys.contains(key) { continue }
            guard sectionNames.contains(key) else {
                let isSection = table[key]?.table != nil
                let suggestion = closest(key, among: sectionNames + topLevelKeys)
                report(isSection ? .unknownSection : .unknownKey, key,
                       "unknown \(isSection ? "section [\(RecipeText.echo(key))]" : "key")",
                       suggestion.map { "did you mean \($0)? Known sections: \(sectionNames.joined(separator: ", "))" }
                       ?? "remove it; known sections: \(sectionNames.joined(separator: ", "))")
                continue
            }
            guard let section = table[key]?.table else {
                report(.notASection, key, "must be a section ([\(key)]), not a value", "write it as a [\(key)] table")
                continue
            }
            let current = Schema.fields(in: key).map(\.key)
            let former = Schema.fields.flatMap(\.formerPaths).filter { $0.hasPrefix("\(key).") }
                .map { String($0.dropFirst(key.count + 1)) }
            for inner in section.keys.sorted() where !current.contains(inner) && !former.contains(inner) {
                let path = "\(key).\(inner)"
                let hint = closest(inner, among: current).map { "did you mean \(key).\($0)? " } ?? ""
                report(.unknownKey, path, "unknown key", "\(hint)remove it; [\(key)] takes \(current.joined(separator: ", "))")
            }
        }

        func raw(_ path: String) -> TOMLValueConvertible? {
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            return parts.count == 1 ? table[parts[0]] : table[parts[0]]?.table?[parts[1]]
        }

        // Every known key: present (or defaulted), of its type, in range.
        var recipe = Recipe()
        var fieldFailed = false
        for field in Schema.fields {
            if let section = Schema.section(field.section), let presence = section.presence {
                guard table[section.name]?.table != nil else { continue }
                presence.create(&recipe)
            }
            var given = raw(field.path)
            var path = field.path
            for former in field.formerPaths {
                guard let old = raw(former) else { continue }
                let oldKey = String(former.split(separator: ".").last!)
                let oldSection = former.contains(".") ? "[\(former.split(separator: ".")[0])]" : "the top level"
                let newSection = field.section.isEmpty ? "the top level" : "[\(field.section)]"
                if given != nil {
                    fieldFailed = true
                    report(.error, .deprecated, former, "is given twice: here (its place before schema version 2) and as \(field.path)",
                           "delete `\(oldKey) = ...` from \(oldSection); keep \(field.path)")
                } else {
                    given = old
                    path = former
                    let value = scalar(old)?.echo ?? "<value>"
                    report(.warning, .deprecated, former, "is deprecated: it is \(field.path) since schema version 2",
                           "move it: delete `\(oldKey) = \(value)` from \(oldSection) and write `\(field.key) = \(value)` in \(newSection)")
                }
            }
            guard let given else {
                if let value = field.defaultValue {
                    let refusal = field.assign(value, to: &recipe)
                    assert(refusal == nil, "the default of \(field.path) is not allowed")
                    continue
                }
                fieldFailed = true
                report(.missing, field.path, "missing (\(field.doc))",
                       "add `\(field.key) = <\(field.kind.allowed)>` to \(field.section.isEmpty ? "the top of the file" : "[\(field.section)]")")
                continue
            }
            guard let value = scalar(given) else {
                fieldFailed = true
                report(.wrongType, path, "must be \(field.kind.allowed), got a TOML \(given.type)", "give \(field.kind.allowed)")
                continue
            }
            if let refusal = field.assign(value, to: &recipe) {
                fieldFailed = true
                report(refusal.kind, path, refusal.message, "give \(field.kind.allowed) (\(field.doc))")
            }
        }
        if !fieldFailed, recipe.schemaVersion < 2 {
            let newer = Schema.introducedInVersion2.keys.filter { raw($0) != nil }
                + Schema.introducedInVersion2.sections.filter { table[$0] != nil }.map { "[\($0)]" }
            if !newer.isEmpty {
                report(.warning, .deprecated, "schema_version",
                       "is \(recipe.schemaVersion), but the recipe uses what schema version 2 introduced: "
                           + newer.joined(separator: ", ") + " (read as version 2; a version-1 reader refuses them)",
                       "set schema_version = 2")
            }
        }
        // Unknown keys do not stop the checks across keys; a missing or invalid known key does (they need its value).
        guard !fieldFailed else { return RecipeCheck(recipe: nil, problems: problems) }
        // Defaults that depend on another key: n_kv_head 0 (or absent) is n_head, and an absent tie_embeddings
        // follows the family (GPT-2 ties the head, Llama does not).
        if recipe.model.nKVHead == 0 { recipe.model.nKVHead = recipe.model.nHead }
        if raw("model.tie_embeddings") == nil { recipe.model.tieEmbeddings = recipe.model.family == .gpt2 }

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

    /// The known name nearest `name` by edit distance, if it is near enough to be a typo. Names far longer than
    /// any known one are no typo, and are not compared (a 4 MB key costs nothing).
    public static func closest(_ name: String, among names: [String]) -> String? {
        let longest = names.map(\.count).max() ?? 0
        guard name.utf8.count <= 2 * longest + 8 else { return nil }
        let lower = name.lowercased()
        let scored = names.map { ($0, editDistance(lower, $0.lowercased())) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, name.count / 3) { return best.0 }
        // A shared stem of four or more letters ("trainer" for "training").
        return names.first { $0.lowercased().commonPrefix(with: lower).count >= 4 }
    }

    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}

/// Finds the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing above U+10FFFF).
public enum UTF8Check {
    public static func firstInvalidByte(in bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            if lead < 0x80 { i += 1; continue }
            var need = 0
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; high = 0x9F
            case 0xF0: need = 3; low = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; high = 0x8F
            default: return i
            }
            for k in 1...need {
                guard i + k < n else { return i }
                let byte = bytes[i + k]
                let range: ClosedRange<UInt8> = k == 1 ? low...high : 0x80...0xBF
                guard range.contains(byte) else { return i }
            }
            i += need + 1
        }
        return nil
    }

    /// 1-based line, and 1-based column in bytes, of `offset`.
    public static func lineAndColumn(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1, start = 0
        for i in 0..<offset where bytes[i] == 0x0A {
            line += 1
            start = i + 1
        }
        return (line, offset - start + 1)
    }
}

/// Lines of UTF-8 text as byte ranges, for scans that must stay linear in the size of the text (a 1 MB line
/// costs a millisecond, not seconds of `String` slicing).
struct ByteLines: Sequence {
    let bytes: [UInt8]

    func makeIterator() -> AnyIterator<(number: Int, range: Range<Int>)> {
        var start = 0, number = 0
        let bytes = bytes
        return AnyIterator {
            guard start <= bytes.count else { return nil }
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            defer { start = end + 1 }
            number += 1
            return (number, start..<end)
        }
    }

    static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }

    /// `range` without blanks (space, tab, carriage return) at either end.
    func trimmed(_ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, Self.isBlank(bytes[lower]) { lower += 1 }
        while upper > lower, Self.isBlank(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }
}

/// toml++ 3 (inside TOMLKit 0.6.0) aborts the process with a failed assertion, instead of reporting a syntax
/// error, on a table header whose name does not begin with a key character: `[.checkpoint]`, `[ #]`, `[[*]]`,
/// `[\logging]`, `[é]`. This finds such a header first, so that it is reported like any other syntax error. A
/// small lexer skips comments and strings (one-line and multi-line, basic and literal), so that only lines that
/// begin outside a string are taken for headers; a line of a multi-line array that starts with `[` is checked
/// too, which at worst reports a syntax error for an array a recipe could not use anyway.
enum TableHeaderCheck {
    private enum State { case normal, comment, basic, literal, multilineBasic, multilineLiteral }

    static func firstUnparsableHeader(in text: String) -> (line: Int, column: Int)? {
        let b = Array(text.utf8)
        let n = b.count
        let quote: UInt8 = 0x22, apostrophe: UInt8 = 0x27, backslash: UInt8 = 0x5C, newline: UInt8 = 0x0A
        func triple(_ i: Int, _ q: UInt8) -> Bool { i + 2 < n && b[i] == q && b[i + 1] == q && b[i + 2] == q }
        func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        func isKeyStart(_ c: UInt8) -> Bool {
            c == UInt8(ascii: "]") || c == quote || c == apostrophe || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
                || (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
        }
        var state = State.normal
        var line = 1, lineStart = 0, atLineStart = true
        var i = 0
        while i < n {
            let c = b[i]
            if c == newline {
                line += 1
                lineStart = i + 1
                if state == .comment || state == .basic || state == .literal { state = .normal }
                if state == .normal { atLineStart = true }
                i += 1
                continue
            }
            switch state {
            case .normal:
                if atLineStart {
                    atLineStart = false
                    while i < n, isBlank(b[i]) { i += 1 }
                    guard i < n, b[i] == UInt8(ascii: "[") else { continue }
                    // The header's name starts after '[', blanks, an optional second '[' and blanks.
                    var j = i + 1
                    while j < n, isBlank(b[j]) { j += 1 }
                    if j < n, b[j] == UInt8(ascii: "[") {
                        j += 1
                        while j < n, isBlank(b[j]) { j += 1 }
                    }
                    if j < n, !isKeyStart(b[j]) { return (line, j - lineStart + 1) }
                    i += 1
                    continue
                }
                if c == UInt8(ascii: "#") {
                    state = .comment
                } else if triple(i, quote) {
                    state = .multilineBasic
                    i += 2
                } else if triple(i, apostrophe) {
                    state = .multilineLiteral
                    i += 2
                } else if c == quote {
                    state = .basic
                } else if c == apostrophe {
                    state = .literal
                }
                i += 1
            case .comment:
                i += 1
            case .basic:
                if c == backslash, i + 1 < n, b[i + 1] != newline { i += 2; continue }
                if c == quote { state = .normal }
                i += 1
            case .literal:
                if c == apostrophe { state = .normal }
                i += 1
            case .multilineBasic:
                if c == backslash, i + 1 < n, b[i + 1] != newline { i += 2; continue }
                if triple(i, quote) { state = .normal; i += 3; continue }
                i += 1
            case .multilineLiteral:
                if triple(i, apostrophe) { state = .normal; i += 3; continue }
                i += 1
            }
        }
        return nil
    }
}

/// Line numbers of `section.key` assignments and `[section]` headers, found by a light scan of the text, so that
/// problems found after parsing can still point at a line.
struct KeyLines {
    private var lines: [String: Int] = [:]

    init(text: String) {
        let scan = ByteLines(bytes: Array(text.utf8))
        let b = scan.bytes
        var section = ""
        for (number, whole) in scan {
            let line = scan.trimmed(whole)
            guard let first = line.first, b[first] != UInt8(ascii: "#") else { continue }
            if b[first] == UInt8(ascii: "[") {
                var end = first + 1
                while end < line.upperBound, b[end] != UInt8(ascii: "]") { end += 1 }
                let name = scan.string(scan.trimmed(first + 1..<end))
                section = name
                if lines[name] == nil { lines[name] = number }
                continue
            }
            guard let equals = line.first(where: { b[$0] == UInt8(ascii: "=") }) else { continue }
            var key = scan.trimmed(line.lowerBound..<equals)
            while let q = key.first, b[q] == 0x22 || b[q] == 0x27 { key = key.dropFirst() }
            while let q = key.last, b[q] == 0x22 || b[q] == 0x27 { key = key.dropLast() }
            let name = scan.string(key)
            let path = section.isEmpty ? name : "\(section).\(name)"
            if lines[path] == nil { lines[path] = number }
        }
    }

    /// The line of `path`, or of its section when the key itself is absent.
    func line(of path: String) -> Int? {
        if let line = lines[path] { return line }
        if let dot = path.firstIndex(of: ".") { return lines[String(path[..<dot])] }
        return nil
    }
}
