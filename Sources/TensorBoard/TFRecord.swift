import Foundation

/// TFRecord framing: each record is its length (UInt64, little-endian), the masked CRC-32C of those 8 bytes, the
/// data, and the masked CRC-32C of the data (tensorflow/core/lib/io/record_writer.cc).
public enum TFRecord {
    /// The framed bytes of one record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = littleEndian(UInt64(data.count))
        out += length
        out += littleEndian(CRC32C.mask(CRC32C.checksum(length)))
        out += data
        out += littleEndian(CRC32C.mask(CRC32C.checksum(data)))
        return out
    }

    public struct FormatError: Error, CustomStringConvertible, Equatable {
        /// Byte offset of the record that is damaged.
        public var offset: Int
        public var reason: String
        public var description: String { "record at byte \(offset): \(reason)" }

        public init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// The records of a whole file, each checked against both of its checksums. A truncated last record (a file
    /// still being written) is an error too: callers that read live files can catch it.
    public static func records(in bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 12 else {
                throw FormatError(offset: offset, reason: "truncated header (\(bytes.count - offset) of 12 bytes)")
            }
            let lengthBytes = Array(bytes[offset..<offset + 8])
            let length = UInt64(littleEndianBytes: lengthBytes)
            guard UInt32(littleEndianBytes: Array(bytes[offset + 8..<offset + 12]))
                    == CRC32C.mask(CRC32C.checksum(lengthBytes)) else {
                throw FormatError(offset: offset, reason: "length checksum mismatch")
            }
            let available = UInt64(bytes.count - offset - 12)
            guard length <= available, available - length >= 4 else {
                throw FormatError(offset: offset, reason: "truncated record (length \(length), \(available) bytes left)")
            }
            let start = offset + 12, end = start + Int(length)
            let data = Array(bytes[start..<end])
            guard UInt32(littleEndianBytes: Array(bytes[end..<end + 4])) == CRC32C.mask(CRC32C.checksum(data)) else {
                throw FormatError(offset: offset, reason: "data checksum mismatch")
            }
            records.append(data)
            offset = end + 4
        }
        return records
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}

extension FixedWidthInteger {
    init(littleEndianBytes bytes: [UInt8]) {
        var value: Self = 0
        for (i, byte) in bytes.prefix(MemoryLayout<Self>.size).enumerated() { value |= Self(byte) << (8 * i) }
        self = value
    }
}
