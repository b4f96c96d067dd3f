/// Something wrong with a recipe: what kind of thing, where (file, line, column, `section.key`), what, and what to
/// do about it.
public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    /// What went wrong, for callers that act on it (the message says it in words).
    public enum Kind: String, Equatable, Sendable, CaseIterable {
        /// The text is not UTF-8; `line`/`column` locate the first bad byte and the message gives its offset.
        case encoding
        /// The text is not TOML.
        case syntax
        /// A section the schema does not know.
        case unknownSection
        /// A key the schema does not know.
        case unknownKey
        /// A known section written as a value, or a known key written as a table.
        case notASection
        /// A required key is absent.
        case missing
        /// A value of the wrong TOML type (a string for a number, 2.0 for an integer, ...).
        case wrongType
        /// A value of the right type outside the key's range, or not one of its choices.
        case outOfRange
        /// A path that would leave the run directory (`checkpoint.dir`).
        case unsafePath
        /// A key under its old name (a warning), or under both names (an error).
        case deprecated
        /// Keys that contradict each other (shape, batch, schedule, layout).
        case inconsistent
        /// 6·N·D does not spend `plan.flops_budget`.
        case budget
        /// Allowed, but probably not what was meant (a warning).
        case unusual
    }

    public var severity: Severity
    public var kind: Kind
    public var file: String
    public var line: Int?
    public var column: Int?
    /// `section.key`, or the section alone, or nil for the file as a whole.
    public var key: String?
    public var message: String
    public var fix: String

    public init(_ severity: Severity = .error, _ kind: Kind, file: String, line: Int? = nil, column: Int? = nil,
                key: String?, message: String, fix: String) {
        self.severity = severity
        self.kind = kind
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        self.fix = fix
    }

    /// `recipe.toml:12: error: optimizer.lr: must be a number in (0.0, 1.0], got -1.0. Fix: ...`
    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        let what = key.map { "\($0): " } ?? ""
        return "\(place): \(severity.rawValue): \(what)\(message). Fix: \(fix)"
    }
}

/// The outcome of reading a recipe: the recipe when it could be built, and every problem found.
public struct RecipeCheck: Sendable {
    public var recipe: Recipe?
    public var problems: [Problem]

    public var errors: [Problem] { problems.filter { $0.severity == .error } }
    public var warnings: [Problem] { problems.filter { $0.severity == .warning } }
    public var passed: Bool { recipe != nil && errors.isEmpty }
}

/// A recipe that cannot be used, with all its problems: what the trainer throws before it allocates anything.
public struct RecipeRejected: Error, CustomStringConvertible {
    public var problems: [Problem]
    public init(problems: [Problem]) { self.problems = problems }
    public var description: String { problems.map(\.description).joined(separator: "\n") }
    /// 1: the recipe was read and is wrong (as `gpt-plan check` reports a recipe with problems).
    public var exitCode: Int32 { 1 }
}

/// A recipe file that could not be read at all (as opposed to one that was read and has problems).
public enum RecipeFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing at the path.
    case notFound(file: String)
    /// The path is a directory.
    case isDirectory(file: String)
    /// A device, FIFO or socket, named in words ("a character device").
    case notRegularFile(file: String, type: String)
    /// Larger than `RecipeLoader.maximumBytes`.
    case tooLarge(file: String, bytes: Int, limit: Int)
    /// The system refused to open or read it (permissions, I/O error), with the system's reason.
    case unreadable(file: String, reason: String)

    public var file: String {
        switch self {
        case .notFound(let file), .isDirectory(let file), .notRegularFile(let file, _), .tooLarge(let file, _, _),
             .unreadable(let file, _):
            return file
        }
    }

    /// 2, like every usage or I/O error: the recipe was never read, so it has no problems to report.
    public var exitCode: Int32 { 2 }

    public var description: String {
        switch self {
        case .notFound(let file):
            return "\(file): cannot read the recipe: no such file. Fix: check the path"
        case .isDirectory(let file):
            return "\(file): cannot read the recipe: it is a directory. Fix: give a recipe file inside it (*.toml)"
        case .notRegularFile(let file, let type):
            return "\(file): cannot read the recipe: it is \(type), not a regular file. Fix: give a recipe file (*.toml)"
        case .tooLarge(let file, let bytes, let limit):
            return "\(file): cannot read the recipe: it is \(bytes) bytes, over the \(limit)-byte limit for a recipe "
                + "(the largest written ones are under 10 kB). Fix: give the recipe file, not a data file"
        case .unreadable(let file, let reason):
            return "\(file): cannot read the recipe: \(reason). Fix: check the file's permissions"
        }
    }
}
