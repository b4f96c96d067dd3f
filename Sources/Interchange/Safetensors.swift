import Formatting
import Durable
import Foundation

/// The safetensors format, written from its published specification (github.com/huggingface/safetensors, "Format"):
///
/// - 8 bytes: `N`, the header's length, an unsigned little-endian 64-bit integer;
/// - `N` bytes: a UTF-8 JSON object. Each key but `"__metadata__"` names a tensor:
///   `{"dtype": "F32", "shape": [768, 2304], "data_offsets": [BEGIN, END]}`, the offsets counted in bytes from
///   the start of the data buffer; `"__metadata__"` maps strings to strings. The header may end in spaces;
/// - the data buffer: every tensor's elements, row-major, little-endian, at its offsets. The tensors cover the
///   buffer without holes or overlaps.
///
/// Reading checks all of that and names the file and the tensor or field that breaks it.
public enum Safetensors {
    /// Element types of the specification, and their sizes in bytes.
    public enum DType: String, Sendable, CaseIterable {
        case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
        case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
        case i32 = "I32", u32 = "U32", f32 = "F32"
        case f64 = "F64", i64 = "I64", u64 = "U64"

        public var size: Int {
            switch self {
            case .bool, .u8, .i8, .f8e5m2, .f8e4m3: 1
            case .i16, .u16, .f16, .bf16: 2
            case .i32, .u32, .f32: 4
            case .f64, .i64, .u64: 8
            }
        }
    }

    /// One tensor of a file: its element type, shape, and byte range in the data buffer.
    public struct Entry: Sendable, Equatable {
        public var dtype: DType
        public var shape: [Int]
        /// Byte range relative to the start of the data buffer.
        public var offsets: Range<Int>
        public var count: Int { shape.reduce(1, *) }
        public init(dtype: DType, shape: [Int], offsets: Range<Int>) {
            self.dtype = dtype
            self.shape = shape
            self.offsets = offsets
        }
    }

    /// A tensor to write: float32 values and their shape.
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// The largest header read (the reference implementation's limit is 100 MB).
    public static let maximumHeaderBytes = 100_000_000

    /// The file bytes for `tensors` (float32, in the order given) and string `metadata`. The header is padded
    /// with spaces so the data buffer starts at a multiple of 8 bytes.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> Data {
        var header = "{"
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for tensor in tensors {
            let bytes = tensor.values.count * 4
            entries.append("\(jsonString(tensor.name)):{\"dtype\":\"F32\",\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],"
                           + "\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += entries.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var data = Data(capacity: 8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for tensor in tensors {
            tensor.values.withUnsafeBufferPointer { buffer in
                // Little-endian hosts only (x86-64, arm64): the floats' bytes are already in file order.
                data.append(UnsafeBufferPointer(start: UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                                count: buffer.count * 4))
            }
        }
        return data
    }

    /// JSON string literal (quotes, backslashes and control characters escaped).
    static func jsonString(_ s: String) -> String { quotedString(s) }
}

/// A safetensors file read into memory and checked against the specification.
public struct SafetensorsFile: Sendable {
    /// Where it came from, for messages.
    public let path: String
    public let metadata: [String: String]
    public let entries: [String: Safetensors.Entry]
    /// The data buffer (everything after the header).
    let buffer: Data

    /// Reads and checks the file at `path`.
    public init(contentsOf path: String) throws {
        let data: Data
        do { data = try RegularFile.read(path) } catch {
            throw InterchangeError(file: path, field: nil, error.description, fix: "check the path")
        }
        try self.init(data: data, path: path)
    }

    /// Checks `data`, the bytes of a safetensors file; `path` names it in errors.
    public init(data: Data, path: String) throws {
        self.path = path
        func fail(_ field: String?, _ message: String) -> InterchangeError {
            InterchangeError(file: path, field: field, message,
                             fix: "the file is damaged or not safetensors; write it again (e.g. with save_pretrained)")
        }
        guard data.count >= 8 else { throw fail(nil, "is \(data.count) bytes long, shorter than the 8-byte header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(Safetensors.maximumHeaderBytes) else {
            throw fail("header length", "says the header is \(headerLength) bytes, over the limit of \(Safetensors.maximumHeaderBytes)")
        }
        guard Int(headerLength) <= data.count - 8 else {
            throw fail("header length", "says the header is \(headerLength) bytes, but only \(data.count - 8) follow (truncated?)")
        }
        let headerData = data.subdata(in: 8 ..< 8 + Int(headerLength))
        guard headerData.first == UInt8(ascii: "{") else { throw fail("header", "does not start with a JSON object") }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw fail("header", "is not valid JSON")
        }
        guard let header = object as? [String: Any] else { throw fail("header", "is not a JSON object") }
        let bufferLength = data.count - 8 - Int(headerLength)
        var metadata: [String: String] = [:]
        var entries: [String: Safetensors.Entry] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail("__metadata__", "must be an object of strings") }
                for (k, v) in map {
                    guard let s = v as? String else { throw fail("__metadata__.\(k)", "must be a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let fields = value as? [String: Any] else { throw fail(name, "must be an object with dtype, shape, data_offsets") }
            guard let dtypeName = fields["dtype"] as? String else { throw fail("\(name).dtype", "is missing or not a string") }
            guard let dtype = Safetensors.DType(rawValue: dtypeName) else {
                throw fail("\(name).dtype", "\"\(dtypeName)\" is not a safetensors dtype")
            }
            guard let shapeList = fields["shape"] as? [Any] else { throw fail("\(name).shape", "is missing or not a list") }
            var shape: [Int] = []
            for dimension in shapeList {
                guard let n = Self.integer(dimension), n >= 0 else {
                    throw fail("\(name).shape", "must hold non-negative integers")
                }
                shape.append(n)
            }
            guard let offsetList = fields["data_offsets"] as? [Any], offsetList.count == 2,
                  let begin = Self.integer(offsetList[0]), let end = Self.integer(offsetList[1]) else {
                throw fail("\(name).data_offsets", "must be a list of two integers [BEGIN, END]")
            }
            guard begin >= 0, begin <= end else { throw fail("\(name).data_offsets", "[\(begin), \(end)] is not a byte range") }
            guard end <= bufferLength else {
                throw fail("\(name).data_offsets", "[\(begin), \(end)] ends past the data, which holds \(bufferLength) bytes (truncated?)")
            }
            var count = 1
            for n in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow else { throw fail("\(name).shape", "\(shape) has too many elements") }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, bytes == end - begin else {
                throw fail("\(name).data_offsets", "[\(begin), \(end)] holds \(end - begin) bytes, but shape \(shape) of \(dtypeName) needs \(bytes)")
            }
            entries[name] = Safetensors.Entry(dtype: dtype, shape: shape, offsets: begin ..< end)
        }
        // The tensors must cover the data buffer exactly: no overlaps, no holes.
        var position = 0
        for (name, entry) in entries.sorted(by: { ($0.value.offsets.lowerBound, $0.value.offsets.upperBound) < ($1.value.offsets.lowerBound, $1.value.offsets.upperBound) }) {
            if entry.offsets.lowerBound < position {
                throw fail("\(name).data_offsets", "[\(entry.offsets.lowerBound), \(entry.offsets.upperBound)] overlaps another tensor's bytes")
            }
            if entry.offsets.lowerBound > position {
                throw fail("\(name).data_offsets", "leaves bytes \(position)..<\(entry.offsets.lowerBound) of the data belonging to no tensor")
            }
            position = entry.offsets.upperBound
        }
        guard position == bufferLength else {
            throw fail("data", "the tensors end at byte \(position) of the data, but it holds \(bufferLength) bytes")
        }
        self.metadata = metadata
        self.entries = entries
        self.buffer = data.subdata(in: 8 + Int(headerLength) ..< data.count)
    }

    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber else { return nil }
        let d = number.doubleValue
        guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    /// The values of tensor `name` as float32: F32 as stored; F16 and BF16 widened (exactly).
    /// - Throws: `InterchangeError` for a missing tensor or another dtype.
    public func floats(_ name: String) throws -> [Float] {
        guard let entry = entries[name] else {
            throw InterchangeError(file: path, field: name, "is missing", fix: "export the model again with all its tensors")
        }
        let n = entry.count
        var out = [Float](repeating: 0, count: n)
        try buffer.withUnsafeBytes { raw in
            let base = raw.baseAddress! + entry.offsets.lowerBound
            switch entry.dtype {
            case .f32:
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(littleEndian: (base + 4 * i).loadUnaligned(as: UInt32.self))) }
            case .bf16:
                for i in 0..<n {
                    out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: (base + 2 * i).loadUnaligned(as: UInt16.self))) << 16)
                }
            case .f16:
                for i in 0..<n {
                    out[i] = Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * i).loadUnaligned(as: UInt16.self))))
                }
            default:
                throw InterchangeError(file: path, field: "\(name).dtype",
                                       "is \(entry.dtype.rawValue), which cannot become float32 weights exactly (F32, F16 and BF16 can)",
                                       fix: "save the model in float32 (model.float().save_pretrained(DIR))")
            }
        }
        return out
    }
}

/// Input that cannot be used or output that cannot be written: the file, the field, what is wrong and the fix.
public struct InterchangeError: Error, CustomStringConvertible, LocalizedError {
    public var file: String
    public var field: String?
    public var message: String
    public var fix: String

    public init(file: String, field: String?, _ message: String, fix: String) {
        self.file = file
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        "\(file)\(field.map { ": \($0)" } ?? "")\(message.isEmpty ? "" : ": \(message)"). Fix: \(fix)"
    }
    public var errorDescription: String? { description }
}
