#if canImport(Glibc)
import Glibc
#endif
import Durable
import Foundation

/// The text files a command was pointed at: files as given, folders searched recursively (hidden entries skipped),
/// in sorted order so that every run reads them in the same order.
///
/// Only regular files are read (a link is judged by what it points to): a FIFO would block the read forever and a
/// link to /dev/zero never end, so anything else is refused, naming it, as are what a folder holds but cannot be
/// read — a sub-folder that cannot be listed, a dangling link, a name that is not UTF-8. Nothing is left out in
/// silence: a file reached twice (given twice, through a folder and by name, or through a hard or symbolic link;
/// judged by device and inode) is read once, and the second sighting, like each hidden entry, is listed in
/// `skipped` with the reason.
public enum TextSources {
    public struct Listing: Sendable {
        public var files: [String] = []
        public var skipped: [(path: String, reason: String)] = []
    }

    struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    public static func list(_ inputs: [String]) throws -> Listing {
        var listing = Listing()
        var ordered: [(path: String, id: FileID)] = []
        for input in inputs {
            let info = try status(of: input, in: nil)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                var found: [(path: String, id: FileID)] = []
                var visited: Set<FileID> = [FileID(info)]
                try walk(input, root: input, visited: &visited, found: &found, skipped: &listing.skipped)
                if found.isEmpty { throw CorpusError(input, "holds no files") }
                ordered += found.sorted { $0.path < $1.path }
            case S_IFREG: ordered.append((input, FileID(info)))
            default: throw notAFile(input, kind: RegularFile.kind(of: info.st_mode), in: nil)
            }
        }
        var seen: [FileID: String] = [:]
        for (path, id) in ordered {
            if let first = seen[id] {
                listing.skipped.append((path, "the same file as \(first) (read once)"))
            } else {
                seen[id] = path
                listing.files.append(path)
            }
        }
        return listing
    }

    /// The files `list` reads, without what it skipped.
    public static func files(_ inputs: [String]) throws -> [String] { try list(inputs).files }

    /// Opens a file `list` returned for reading, refusing anything that is not a regular file by now.
    public static func open(_ path: String) throws -> FileHandle {
        guard let handle = try openIfPresent(path) else { throw CorpusError(path, "no such file or directory") }
        return handle
    }

    /// The bytes of the regular file at `path`, or nil when nothing is there (anything else is refused by name).
    public static func contents(_ path: String) throws -> Data? {
        guard let handle = try openIfPresent(path) else { return nil }
        do { return try handle.readToEnd() ?? Data() } catch { throw CorpusError(path, "cannot be read: \(error)") }
    }

    static func openIfPresent(_ path: String) throws -> FileHandle? {
        do { return try RegularFile.openForReading(path) } catch {
            switch error {
            case .missing: return nil
            case .notRegular(let kind):
                throw CorpusError(path, "is \(kind), not a regular file (reading it could wait forever or never end). "
                                  + "Fix: put the file back (a prepared directory: run gpt-data prepare again)")
            case .unreadable(let reason): throw CorpusError(path, "cannot be read: \(reason)")
            }
        }
    }

    /// Total size in bytes.
    public static func size(_ files: [String]) throws -> Int {
        try files.reduce(0) { total, path in total + Int(try status(of: path, in: nil).st_size) }
    }

    /// `stat` of `path` (following links), or an error naming what is wrong: missing, a dangling link, unreadable.
    static func status(of path: String, in root: String?) throws -> stat {
        var info = stat()
        guard stat(path, &info) != 0 else { return info }
        let code = errno
        var link = stat()
        if lstat(path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
            let state = code == ENOENT ? "does not exist" : "cannot be read (\(String(cString: strerror(code))))"
            let from = root.map { " from \($0)" } ?? ""
            throw CorpusError(path, "a symbolic link to \(target), which \(state). Fix: remove the link\(from), "
                              + "or restore what it points to")
        }
        if code == ENOENT, root == nil { throw CorpusError(path, "no such file or directory") }
        throw CorpusError(path, "cannot be read: \(String(cString: strerror(code)))")
    }

    static func notAFile(_ path: String, kind: String, in root: String?) -> CorpusError {
        CorpusError(path, "is \(kind), not a text file (reading it could wait forever or never end). Fix: "
                    + (root.map { "move it out of \($0), or give the text files one by one" } ?? "give text files or folders of them"))
    }

    /// Adds the regular files under `directory` to `found`, descending into sub-folders (and links to folders,
    /// each folder once: a link loop ends).
    static func walk(_ directory: String, root: String, visited: inout Set<FileID>,
                     found: inout [(path: String, id: FileID)], skipped: inout [(path: String, reason: String)]) throws {
        guard let handle = opendir(directory) else {
            throw CorpusError(directory, "this folder cannot be listed: \(String(cString: strerror(errno))). Fix: make it "
                              + "readable (chmod u+rx), or move it out of \(root)")
        }
        defer { closedir(handle) }
        var names: [[UInt8]] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name != [0x2E], name != [0x2E, 0x2E] { names.append(name) }
        }
        for bytes in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let name = String(validating: bytes, as: UTF8.self) else {
                let shown = bytes.map { $0 < 0x80 && $0 >= 0x20 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
                throw CorpusError((directory as NSString).appendingPathComponent(shown),
                                  "its name is not UTF-8, so it cannot be recorded in meta.json. Fix: rename it (e.g. "
                                  + "`convmv -f latin1 -t utf-8`), or move it out of \(root)")
            }
            let path = (directory as NSString).appendingPathComponent(name)
            if name.hasPrefix(".") {
                skipped.append((path, "hidden (its name starts with a dot)"))
                continue
            }
            let info = try status(of: path, in: root)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                if visited.insert(FileID(info)).inserted {
                    try walk(path, root: root, visited: &visited, found: &found, skipped: &skipped)
                } else {
                    skipped.append((path, "a folder already read (a link loop or a second link to it)"))
                }
            case S_IFREG: found.append((path, FileID(info)))
            default: throw notAFile(path, kind: RegularFile.kind(of: info.st_mode), in: root)
            }
        }
    }
}
