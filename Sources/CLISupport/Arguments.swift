import ArgumentParser
import Compute
import Foundation
import Planner

/// The range a numeric flag accepts, stated where the flag is declared and repeated in its refusal.
public struct FlagRange: Sendable, Equatable, CustomStringConvertible {
    public var lower: Double, lowerIncluded: Bool
    public var upper: Double, upperIncluded: Bool

    public init(_ lower: Double, included lowerIncluded: Bool = true, _ upper: Double = .infinity,
                included upperIncluded: Bool = true) {
        self.lower = lower
        self.lowerIncluded = lowerIncluded
        self.upper = upper
        self.upperIncluded = upperIncluded
    }

    /// Closed: `FlagRange(0...1)`.
    public init(_ range: ClosedRange<Double>) { self.init(range.lowerBound, range.upperBound) }
    public init(_ range: ClosedRange<Int>) { self.init(Double(range.lowerBound), Double(range.upperBound)) }

    /// (0, ∞): any positive number.
    public static let positive = FlagRange(0, included: false)
    /// [0, ∞).
    public static let nonNegative = FlagRange(0)

    /// Never true for NaN or ±∞ (an infinite bound means "no bound", not "∞ allowed").
    public func contains(_ x: Double) -> Bool {
        x.isFinite && (lowerIncluded ? x >= lower : x > lower) && (upperIncluded ? x <= upper : x < upper)
    }

    /// "must be positive", "must be 0 or more", "must be at least 1", "must be between 1 and 256", "must be in (0, 1]".
    public var description: String {
        let l = Self.text(lower), u = Self.text(upper)
        switch (upper.isInfinite, lowerIncluded) {
        case (true, false): return lower == 0 ? "must be positive" : "must be more than \(l)"
        case (true, true): return lower == 0 ? "must be 0 or more" : "must be at least \(l)"
        default:
            if lowerIncluded && upperIncluded { return "must be between \(l) and \(u)" }
            return "must be in \(lowerIncluded ? "[" : "(")\(l), \(u)\(upperIncluded ? "]" : ")")"
        }
    }

    static func text(_ x: Double) -> String {
        if x.rounded() == x, abs(x) < 1e15 { return String(Int64(x)) }
        return sig(x, 6)
    }
}

/// How the commands read numbers: one parser for every numeric flag, so that every flag takes the same spellings
/// (`1e20`, `3.2e19`, `124M`, `1.5B`, `2T`, `0.5M`, `80GiB`, `512MiB`, `40GB`, `-1`) and refuses the same way.
///
/// Use as an option's transform, with the flag's range: `@Option(parsing: .unconditional, transform:
/// NumberArgument.real(FlagRange(0...100)))` (`.unconditional`, so that `-1` reaches the range check instead of
/// being taken for an option). A value that is not a number is "not a number"; a negative, zero, infinite, NaN or
/// too-large one is "out of range" with the range; argument-parser names the flag and the value, and the command
/// ends with exit status 2:
///
///     Error: The value '-1' is invalid for '--temperature <temperature>': out of range: must be between 0 and 100
///
/// argument-parser shows no default for an option with a transform: the help text states the range and the default.
public enum NumberArgument {
    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    static let spellings = "write e.g. 1e20, 3.2e19, 124M, 1.5B, 0.5M, 80GiB"

    /// The number `text` spells, or nil. Unlike `Planner.Quantity.parse` this keeps signs, infinities and NaN, so
    /// that they are refused as out of range rather than as "not a number".
    public static func value(_ text: String) -> Double? {
        let s = text.trimmingCharacters(in: .whitespaces)
        switch s.lowercased() {
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan", "+nan", "-nan": return .nan
        default: break
        }
        // A sign before a suffixed number ("-124M"); Quantity reads plain negative numbers itself.
        if s.hasPrefix("-"), !s.dropFirst().hasPrefix("-"), let magnitude = value(String(s.dropFirst())) {
            return -magnitude
        }
        if let v = Quantity.parse(s) { return v }
        // A plain number too large for a Double ("1e400") is +∞: out of range, not "not a number".
        if s.allSatisfy({ "0123456789.eE+_".contains($0) }), let v = Double(s.filter { $0 != "_" }) { return v }
        return nil
    }

    /// A real number in `range`.
    public static func real(_ range: FlagRange) -> @Sendable (String) throws -> Double {
        { text in
            guard let x = value(text) else { throw Refusal(description: "not a number (\(spellings))") }
            guard range.contains(x) else { throw Refusal(description: "out of range: \(range)") }
            return x
        }
    }

    /// A float32 in `range` (checked before the conversion, so 1e39 is out of range rather than ∞).
    public static func float(_ range: FlagRange) -> @Sendable (String) throws -> Float {
        let parse = real(range)
        return { Float(try parse($0)) }
    }

    /// A whole number in `range`; suffixes are allowed (`4K` = 4000), fractions are not.
    public static func whole<I: FixedWidthInteger & Sendable>(_ range: ClosedRange<I>) -> @Sendable (String) throws -> I {
        { text in
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if let exact = I(trimmed) {
                guard range.contains(exact) else { throw Refusal(description: "out of range: \(describe(range))") }
                return exact
            }
            guard let x = value(trimmed) else { throw Refusal(description: "not a number (\(spellings))") }
            guard x.isFinite, x >= Double(range.lowerBound), x <= Double(range.upperBound) else {
                throw Refusal(description: "out of range: \(describe(range))")
            }
            guard x.rounded() == x, let exact = I(exactly: x), range.contains(exact) else {
                throw Refusal(description: x.rounded() == x ? "out of range: \(describe(range))" : "not a whole number")
            }
            return exact
        }
    }

    /// A comma-separated list, each item read by `item`; an empty list or item is refused, by position.
    public static func list<T>(_ item: @escaping @Sendable (String) throws -> T) -> @Sendable (String) throws -> [T] {
        { text in
            let parts = text.split(separator: ",", omittingEmptySubsequences: false)
            return try parts.enumerated().map { index, part in
                let position = parts.count > 1 ? "item \(index + 1) of \(parts.count)" : "the value"
                guard !part.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw Refusal(description: "\(position) is empty (write e.g. 3e12,1e13,3e13)")
                }
                do { return try item(String(part)) } catch let refusal as Refusal {
                    throw Refusal(description: parts.count > 1 ? "\(position), \(part): \(refusal)" : refusal.description)
                }
            }
        }
    }

    static func describe<I: FixedWidthInteger>(_ range: ClosedRange<I>) -> String {
        if range.upperBound == I.max {
            return range.lowerBound == 0 ? "must be 0 or more" : "must be at least \(range.lowerBound)"
        }
        return "must be between \(range.lowerBound) and \(range.upperBound)"
    }
}

/// Thread counts: every command's `--threads` takes a count in `1...ThreadCount.maximum`.
public enum ThreadCount {
    /// The most threads a command starts: 4 per core this process may use, and never fewer than 256. More than
    /// one thread per core makes no kernel faster (the pools split products evenly and spin-wait), so 4× leaves
    /// room for oversubscription experiments; 256 lets a script written for a large machine run on a small one.
    /// Each thread reserves an 8 MiB stack and its own buffers (gpt-sample: about 200 kB of activations a thread),
    /// so the bound also keeps a mistyped count from exhausting memory or the process limit: `--threads 100000`
    /// used to fork for minutes (gpt-plan) or abort allocating 19.7 GB (gpt-sample).
    public static let maximum = max(256, 4 * CPU.count)

    public static let parse: @Sendable (String) throws -> Int = NumberArgument.whole(1...maximum)
}

/// `--threads`, the same flag in every command.
public struct ThreadOption: ParsableArguments {
    @Option(name: .customLong("threads"), parsing: .unconditional,
            help: ArgumentHelp("Threads, 1 to \(ThreadCount.maximum) (default: the cores this process may use).",
                               valueName: "n"),
            transform: ThreadCount.parse)
    public var value: Int?

    public init() {}

    /// The count given, else the cores this process may use.
    public var count: Int { value ?? CPU.count }
}
