/// Something wrong with a recipe: where (file, line, `section.key`), what, and what to do about it.
public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    public var file: String
    public var line: Int?
    public var column: Int?
    /// `section.key`, or the section alone, or nil for the file as a whole.
    public var key: String?
    public var message: String
    public var fix: String

    public init(_ severity: Severity = .error, file: String, line: Int? = nil, column: Int? = nil, key: String?,
                message: String, fix: String) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        self.fix = fix
    }

    /// `recipe.toml:12: error: optimizer.lr: must be a number > 0, got -1. Fix: ...`
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
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
