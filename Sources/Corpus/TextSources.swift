import Foundation

/// The text files a command was pointed at: files as given, folders searched recursively for regular files
/// (hidden ones skipped), in sorted order so that every run reads them in the same order.
public enum TextSources {
    public static func files(_ inputs: [String]) throws -> [String] {
        var out: [String] = []
        let fm = FileManager.default
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw CorpusError(input, "no such file or directory")
            }
            if isDirectory.boolValue {
                guard let walker = fm.enumerator(atPath: input) else { throw CorpusError(input, "cannot list") }
                var found: [String] = []
                for case let relative as String in walker {
                    let path = (input as NSString).appendingPathComponent(relative)
                    var dir: ObjCBool = false
                    if !relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }),
                       fm.fileExists(atPath: path, isDirectory: &dir), !dir.boolValue {
                        found.append(path)
                    }
                }
                if found.isEmpty { throw CorpusError(input, "holds no files") }
                out += found.sorted()
            } else {
                out.append(input)
            }
        }
        return out
    }

    /// Total size in bytes.
    public static func size(_ files: [String]) throws -> Int {
        try files.reduce(0) { total, path in
            guard let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber else {
                throw CorpusError(path, "cannot read its size")
            }
            return total + size.intValue
        }
    }
}
