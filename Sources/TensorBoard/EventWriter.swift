import Foundation

/// A file that cannot be created, written or read, with the reason.
public struct EventFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Writes scalars to a TensorBoard event file, `events.out.tfevents.<unix time>.<hostname>` in `directory`
/// (created if needed): first the file-version event, then one event per `add`. Events are kept in memory and
/// written when `flushInterval` seconds have passed since the last write, on `flush()`, and on `close()`; the
/// file-version event is written at once, so the file is valid from the start. Not thread-safe.
public final class EventWriter {

    /// The event file.
    public let path: String
    public let flushInterval: Double
    private let clock: () -> Double
    private var descriptor: Int32
    private var pending: [UInt8] = []
    private var lastFlush: Double

    /// - Parameters:
    ///   - flushInterval: seconds between writes to the file (0: every event is written at once).
    ///   - clock: seconds since 1970, for the file name, the default wall time and the flush interval.
    public init(directory: String, flushInterval: Double = 10,
                clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        precondition(flushInterval >= 0 && flushInterval.isFinite, "flushInterval must be finite and ≥ 0")
        self.flushInterval = flushInterval
        self.clock = clock
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw EventFileError(path: directory, reason: "cannot create the directory (\(error.localizedDescription))")
        }
        let now = clock()
        let host = Self.hostName
        let base = (directory as NSString).appendingPathComponent("events.out.tfevents.\(Int64(now)).\(host)")
        var candidate = base, suffix = 0, fd: Int32 = -1
        while true {
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 || errno != EEXIST { break }
            suffix += 1
            candidate = base + ".\(suffix)"
        }
        guard fd >= 0 else { throw EventFileError(path: candidate, reason: String(cString: strerror(errno))) }
        path = candidate
        descriptor = fd
        lastFlush = now
        pending = TFRecord.frame(Event.fileVersion(wallTime: now).serialized())
        try flush()
    }

    /// The machine's name as gethostname(2) gives it (what TensorFlow's writers use; no DNS lookup).
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : String(name.map { $0 == "/" ? "_" : $0 })
    }

    deinit {
        if descriptor >= 0 { try? close() }
    }

    /// Adds one scalar at `step`; `wallTime` (seconds since 1970) defaults to now.
    public func add(scalar value: Double, tag: String, step: Int, wallTime: Double? = nil) throws {
        try add([Event.Scalar(tag: tag, value: Float(value))], step: step, wallTime: wallTime)
    }

    /// Adds a float32 scalar as is (no rounding through Double).
    @_disfavoredOverload
    public func add(scalar value: Float, tag: String, step: Int, wallTime: Double? = nil) throws {
        try add([Event.Scalar(tag: tag, value: value)], step: step, wallTime: wallTime)
    }

    /// Adds several scalars of one step as one event.
    public func add(_ scalars: [Event.Scalar], step: Int, wallTime: Double? = nil) throws {
        guard descriptor >= 0 else { throw EventFileError(path: path, reason: "the writer is closed") }
        guard !scalars.isEmpty else { return }
        let now = clock()
        pending += TFRecord.frame(Event(wallTime: wallTime ?? now, step: Int64(step), scalars: scalars).serialized())
        if now - lastFlush >= flushInterval { try flush() }
    }

    /// Writes what is pending to the file.
    public func flush() throws {
        guard descriptor >= 0 else { throw EventFileError(path: path, reason: "the writer is closed") }
        lastFlush = clock()
        var written = 0
        while written < pending.count {
            let n = pending.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                pending.removeFirst(written)
                throw EventFileError(path: path, reason: reason)
            }
            written += n
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes what is pending, syncs the file to disk and closes it. The writer cannot be used afterwards.
    public func close() throws {
        guard descriptor >= 0 else { return }
        defer {
            _ = Foundation.close(descriptor)
            descriptor = -1
        }
        try flush()
        guard fsync(descriptor) == 0 else { throw EventFileError(path: path, reason: String(cString: strerror(errno))) }
    }
}

/// Reads event files back (for tests, and to check what a run wrote).
public enum EventFile {
    /// All events of a file, in order; throws on a damaged record or message.
    public static func read(path: String) throws -> [Event] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EventFileError(path: path, reason: "cannot read the file")
        }
        return try TFRecord.records(in: [UInt8](data)).map(Event.init(serialized:))
    }

    /// The event files in `directory`, oldest name first.
    public static func paths(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
    }
}
