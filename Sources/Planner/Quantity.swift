/// Parses numbers as people write them on a command line: `1e20`, `3.2e19`, `124M`, `1.5B`, `2T`, `0.5M`,
/// `80GiB`, `512MiB`, `40GB`.
public enum Quantity {
    /// Decimal suffixes (K, M, B or G, T, P) multiply by powers of 1000; binary ones (KiB, MiB, GiB, TiB) by
    /// powers of 1024; a trailing `B` after a decimal suffix (`40GB`) means bytes and changes nothing.
    public static func parse(_ text: String) -> Double? {
        let s = text.trimmingWhitespace()
        guard !s.isEmpty else { return nil }
        let suffixes: [(String, Double)] = [
            ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15),
            ("k", 1e3), ("K", 1e3), ("M", 1e6), ("B", 1e9), ("G", 1e9), ("T", 1e12), ("P", 1e15),
        ]
        for (suffix, scale) in suffixes where s.hasSuffix(suffix) {
            let number = String(s.dropLast(suffix.count))
            guard let value = plainNumber(number) else { return nil }
            return value * scale
        }
        return plainNumber(s)
    }

    private static func plainNumber(_ s: String) -> Double? {
        // Double(String) accepts "nan", "inf" and hex floats; a size or budget is none of those.
        guard !s.isEmpty, s.allSatisfy({ "0123456789.eE+-_".contains($0) }),
              let value = Double(s.replacingUnderscores()), value.isFinite
        else { return nil }
        return value
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }

    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
