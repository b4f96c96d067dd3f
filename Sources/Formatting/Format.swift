import Foundation

/// `x` with `digits` significant digits, in the shortest of plain or exponent form ("%g").
public func sig(_ x: Double, _ digits: Int = 3) -> String {
    String(format: "%.\(digits)g", x)
}

/// A count with an SI suffix: 124.4M, 1.02B, 20.2T; 2.5e+21 from 1e18.
public func si(_ x: Double, _ digits: Int = 3) -> String {
    // Past the suffixes, exponent form (2.5e+21) rather than thousands of P.
    guard abs(x) < 1e18 || !x.isFinite else { return sig(x, digits) }
    let units: [(Double, String)] = [(1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")]
    for (scale, suffix) in units where abs(x) >= scale {
        return sig(x / scale, digits) + suffix
    }
    return sig(x, digits)
}

/// A byte count in binary units: 13.6 GiB.
public func bytes(_ x: Double) -> String {
    let units: [(Double, String)] = [(0x1p40, "TiB"), (0x1p30, "GiB"), (0x1p20, "MiB"), (0x1p10, "KiB")]
    for (scale, suffix) in units where x >= scale {
        return sig(x / scale, 3) + " " + suffix
    }
    return "\(Int(x)) B"
}

/// A duration in the largest sensible unit: 42 s, 3.5 min, 7.2 h, 12 days.
public func duration(_ seconds: Double) -> String {
    if seconds < 120 { return sig(seconds, 3) + " s" }
    if seconds < 7200 { return sig(seconds / 60, 3) + " min" }
    if seconds < 172_800 { return sig(seconds / 3600, 3) + " h" }
    return sig(seconds / 86400, 3) + " days"
}

/// A rate of floating-point work: 415 GFLOP/s, 312 TFLOP/s.
public func flopRate(_ flopsPerSecond: Double) -> String {
    flopsPerSecond >= 1e13 ? sig(flopsPerSecond / 1e12, 4) + " TFLOP/s" : sig(flopsPerSecond / 1e9, 4) + " GFLOP/s"
}

/// `s` as a double-quoted string literal that JSON and TOML both read back as `s`: quote and backslash escaped,
/// newline, carriage return and tab as `\n`, `\r`, `\t`, every other control character (and DEL, which TOML does
/// not allow bare) as `\u00xx`. The one quoting of the JSON and TOML the package writes by hand (safetensors
/// headers, tokenizer files, metrics lines, recipes).
public func quotedString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case let c where c.value < 0x20 || c.value == 0x7F:
            let hex = String(c.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
