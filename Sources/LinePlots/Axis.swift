import Foundation

public enum Scale: Sendable, Equatable {
    case linear
    /// Base-10 logarithmic; values ≤ 0 cannot be shown and are left out.
    case log
}

/// A numeric axis: the range it spans, its scale and its tick values. `fraction(of:)` maps a value to 0...1
/// along the axis (0 at `lower`).
public struct Axis: Sendable, Equatable {
    public var lower: Double
    public var upper: Double
    public var scale: Scale
    public var ticks: [Double]

    public init(lower: Double, upper: Double, scale: Scale, ticks: [Double]) {
        precondition(lower < upper, "an axis needs lower < upper")
        precondition(scale == .linear || lower > 0, "a log axis needs a positive lower bound")
        self.lower = lower
        self.upper = upper
        self.scale = scale
        self.ticks = ticks
    }

    public func fraction(of value: Double) -> Double {
        switch scale {
        case .linear: return (value - lower) / (upper - lower)
        case .log: return (Foundation.log10(value) - Foundation.log10(lower)) / (Foundation.log10(upper) - Foundation.log10(lower))
        }
    }

    /// An axis covering `values` (non-finite values, and non-positive ones on a log scale, are ignored).
    /// Linear: Heckbert's "nice numbers" (Graphics Gems, 1990): a tick step of 1, 2 or 5 × 10^k giving about
    /// `targetTicks` ticks, and the range widened to whole steps. Log: the data's range widened by 2% of its
    /// decades on each side, ticks at 10^k, or at 1, 2, 5 × 10^k when the range spans fewer than three decades,
    /// or at 1, 1.5, 2, 3, …, 9 × 10^k when it spans less than 0.8 of a decade (a loss between 1.4 and 8).
    public static func covering(_ values: [Double], scale: Scale, targetTicks: Int = 5) -> Axis {
        let usable = values.filter { $0.isFinite && (scale == .linear || $0 > 0) }
        switch scale {
        case .linear:
            var lo = usable.min() ?? 0, hi = usable.max() ?? 1
            if lo == hi {
                let pad = lo == 0 ? 1 : abs(lo) * 0.1
                lo -= pad
                hi += pad
            }
            let step = niceNumber((hi - lo) / Double(max(targetTicks - 1, 1)))
            let lower = (lo / step).rounded(.down) * step, upper = (hi / step).rounded(.up) * step
            let count = Int(((upper - lower) / step).rounded())
            // Multiples of the step computed as i × step, so 0.1 + 0.2 style drift does not show in labels.
            let first = (lower / step).rounded()
            let ticks = (0...count).map { clean((first + Double($0)) * step, step: step) }
            return Axis(lower: lower, upper: upper, scale: .linear, ticks: ticks)
        case .log:
            var lo = Foundation.log10(usable.min() ?? 1), hi = Foundation.log10(usable.max() ?? 10)
            if lo == hi {
                lo -= 0.5
                hi += 0.5
            }
            let pad = (hi - lo) * 0.02
            lo -= pad
            hi += pad
            let lower = pow(10, lo), upper = pow(10, hi)
            let mantissas: [Double] = hi - lo >= 3 ? [1] : hi - lo >= 0.8 ? [1, 2, 5] : [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]
            var ticks: [Double] = []
            for k in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
                for m in mantissas {
                    let tick = m * pow(10, Double(k))
                    if tick >= lower, tick <= upper { ticks.append(tick) }
                }
            }
            return Axis(lower: lower, upper: upper, scale: .log, ticks: ticks)
        }
    }

    /// 1, 2, 5 or 10 × 10^k, whichever is nearest `x` by Heckbert's thresholds (1.5, 3, 7).
    static func niceNumber(_ x: Double) -> Double {
        let power = pow(10, Foundation.log10(x).rounded(.down))
        // The ratio is compared with a little slack, so 1.5e-4 / 1e-4 = 1.4999999999999998 counts as 1.5.
        let f = x / power * (1 + 1e-9)
        return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power
    }

    /// `x` rounded to the decimal places `step` has, so 0.30000000000000004 reads 0.3.
    static func clean(_ x: Double, step: Double) -> Double {
        let places = max(0, -Int(Foundation.log10(step).rounded(.down)) + 1)
        guard places < 15 else { return x }
        let scale = pow(10, Double(places))
        return (x * scale).rounded() / scale
    }

    /// Tick label. A linear axis labels all its ticks alike: in k, M or G when its largest tick is 10 000 or
    /// more, in short exponent form (6e-4) when it is below 0.01, else with the decimals the tick spacing needs.
    /// A log axis labels each tick by its own size.
    public func label(for value: Double) -> String {
        if value == 0 { return "0" }
        let largest = scale == .log ? abs(value) : (ticks.map(abs).max() ?? abs(value))
        let spacing = scale == .log ? abs(value) : ticks.count > 1 ? (ticks[1] - ticks[0]) : abs(value)
        if largest >= 10_000 {
            let (suffix, unit) = largest >= 1e9 ? ("G", 1e9) : largest >= 1e6 ? ("M", 1e6) : ("k", 1e3)
            return Self.trimmed(value / unit, places: Self.places(spacing / unit)) + suffix
        }
        if largest < 0.01 {
            let exponent = Foundation.log10(abs(value)).rounded(.down)
            return Self.trimmed(value / pow(10, exponent), places: 2) + "e" + String(Int(exponent))
        }
        if scale == .log {
            return Self.trimmed(value, places: 3 + max(0, -Int(Foundation.log10(abs(value)).rounded(.down))))
        }
        return Self.trimmed(value, places: Self.places(spacing))
    }

    private static func places(_ spacing: Double) -> Int {
        spacing >= 1 ? 0 : min(6, Int((-Foundation.log10(spacing) - 1e-9).rounded(.up)))
    }

    private static func trimmed(_ x: Double, places: Int) -> String {
        var text = String(format: "%.\(places)f", x)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }
}
