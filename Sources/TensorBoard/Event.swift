/// The part of TensorFlow's `Event` protocol buffer (tensorflow/core/util/event.proto) that scalar logs use:
/// `wall_time` = 1 (double), `step` = 2 (int64), `file_version` = 3 (string), `summary` = 5 (Summary); a
/// Summary (tensorflow/core/framework/summary.proto) is repeated `value` = 1, each with `tag` = 1 (string) and
/// `simple_value` = 2 (float). Encoded and decoded by hand: these few fields do not need a protobuf runtime.
public struct Event: Equatable, Sendable {
    public struct Scalar: Equatable, Sendable {
        public var tag: String
        public var value: Float

        public init(tag: String, value: Float) {
            self.tag = tag
            self.value = value
        }
    }

    public var wallTime: Double
    public var step: Int64
    public var fileVersion: String?
    /// The summary's values; empty for an event without a summary.
    public var scalars: [Scalar]

    public init(wallTime: Double, step: Int64 = 0, fileVersion: String? = nil, scalars: [Scalar] = []) {
        self.wallTime = wallTime
        self.step = step
        self.fileVersion = fileVersion
        self.scalars = scalars
    }

    /// The first event of every file: TensorBoard reads files whose version is "brain.Event:2".
    public static func fileVersion(wallTime: Double) -> Event {
        Event(wallTime: wallTime, fileVersion: "brain.Event:2")
    }

    public func serialized() -> [UInt8] {
        var out = ProtoWriter()
        out.double(field: 1, wallTime)
        if step != 0 { out.varint(field: 2, UInt64(bitPattern: step)) }
        if let fileVersion { out.bytes(field: 3, Array(fileVersion.utf8)) }
        if !scalars.isEmpty {
            var summary = ProtoWriter()
            for scalar in scalars {
                var value = ProtoWriter()
                value.bytes(field: 1, Array(scalar.tag.utf8))
                value.float(field: 2, scalar.value)
                summary.bytes(field: 1, value.bytes)
            }
            out.bytes(field: 5, summary.bytes)
        }
        return out.bytes
    }

    public struct DecodingError: Error, CustomStringConvertible, Equatable {
        public var reason: String
        public var description: String { "malformed Event message: \(reason)" }
    }

    /// Decodes an Event, skipping fields this type does not model.
    public init(serialized bytes: [UInt8]) throws {
        self.init(wallTime: 0)
        var reader = ProtoReader(bytes[...])
        while let (field, wire) = try reader.key() {
            switch (field, wire) {
            case (1, 1): wallTime = Double(bitPattern: try reader.fixed64())
            case (2, 0): step = Int64(bitPattern: try reader.varint())
            case (3, 2): fileVersion = String(decoding: try reader.lengthDelimited(), as: UTF8.self)
            case (5, 2):
                var summary = ProtoReader(try reader.lengthDelimited())
                while let (f, w) = try summary.key() {
                    guard f == 1, w == 2 else { try summary.skip(wire: w); continue }
                    var valueReader = ProtoReader(try summary.lengthDelimited())
                    var tag = "", value: Float?
                    while let (vf, vw) = try valueReader.key() {
                        switch (vf, vw) {
                        case (1, 2): tag = String(decoding: try valueReader.lengthDelimited(), as: UTF8.self)
                        case (2, 5): value = Float(bitPattern: try valueReader.fixed32())
                        default: try valueReader.skip(wire: vw)
                        }
                    }
                    if let value { scalars.append(Scalar(tag: tag, value: value)) }
                }
            default: try reader.skip(wire: wire)
            }
        }
    }
}

struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wire: UInt64) { rawVarint(UInt64(field) << 3 | wire) }

    mutating func varint(field: Int, _ value: UInt64) {
        key(field, 0)
        rawVarint(value)
    }

    mutating func double(field: Int, _ value: Double) {
        key(field, 1)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }

    mutating func float(field: Int, _ value: Float) {
        key(field, 5)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }

    mutating func bytes(field: Int, _ value: [UInt8]) {
        key(field, 2)
        rawVarint(UInt64(value.count))
        bytes += value
    }
}

struct ProtoReader {
    var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    mutating func key() throws -> (Int, UInt64)? {
        guard !rest.isEmpty else { return nil }
        let key = try varint()
        guard key >> 3 >= 1, key >> 3 <= UInt64(Int32.max) else { throw Event.DecodingError(reason: "field number 0") }
        return (Int(key >> 3), key & 7)
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard let byte = rest.popFirst() else { throw Event.DecodingError(reason: "truncated varint") }
            guard shift < 64 else { throw Event.DecodingError(reason: "varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw Event.DecodingError(reason: "varint longer than 10 bytes")
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, rest.count >= n else { throw Event.DecodingError(reason: "field runs past the end") }
        defer { rest = rest.dropFirst(n) }
        return rest.prefix(n)
    }

    mutating func fixed64() throws -> UInt64 { UInt64(littleEndianBytes: Array(try take(8))) }
    mutating func fixed32() throws -> UInt32 { UInt32(littleEndianBytes: Array(try take(4))) }

    mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
        let length = try varint()
        guard length <= UInt64(rest.count) else { throw Event.DecodingError(reason: "field runs past the end") }
        return try take(Int(length))
    }

    mutating func skip(wire: UInt64) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try take(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try take(4)
        default: throw Event.DecodingError(reason: "unsupported wire type \(wire)")
        }
    }
}
