import CHDF5
import Durable
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed HDF5 call, with the file and the object it was about.
public struct HDF5Error: Error, CustomStringConvertible {
    public var file: String
    public var reason: String
    public var description: String { "\(file): \(reason)" }
}

/// A thin owner of an open HDF5 file: create or open, groups, float and integer datasets (chunked, with the
/// Fletcher-32 checksum filter, so that a flipped byte fails the read), string datasets and attributes.
final class HDF5File {
    let path: String
    private var id: hid_t

    private static let quiet: Void = gpt_h5_silence_errors()

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { if id >= 0 { H5Fclose(id) } }

    /// Creates (truncating) a file in the HDF5 1.8+ format, whose object headers carry checksums too.
    static func create(_ path: String) throws -> HDF5File {
        _ = quiet
        let access = H5Pcreate(gpt_H5P_FILE_ACCESS())
        guard access >= 0 else { throw HDF5Error(file: path, reason: "the HDF5 library cannot create a property list") }
        defer { H5Pclose(access) }
        H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V110)
        let id = H5Fcreate(path, gpt_H5F_ACC_TRUNC(), gpt_H5P_DEFAULT(), access)
        guard id >= 0 else {
            throw HDF5Error(file: path, reason: "cannot create the file (\(String(cString: strerror(errno))))")
        }
        return HDF5File(path: path, id: id)
    }

    static func open(_ path: String) throws -> HDF5File {
        _ = quiet
        // HDF5 opens whatever is there: a FIFO blocked it forever. Only a regular file is a checkpoint.
        do { _ = try RegularFile.openForReading(path) } catch {
            if case .notRegular(let kind) = error {
                throw HDF5Error(file: path, reason: "is \(kind), not a checkpoint file. Fix: give a ckpt-*.h5 written by gpt-train")
            }
        }
        guard H5Fis_hdf5(path) > 0 else {
            throw HDF5Error(file: path, reason: "not a readable HDF5 file (missing, truncated, or not HDF5)")
        }
        let id = H5Fopen(path, gpt_H5F_ACC_RDONLY(), gpt_H5P_DEFAULT())
        guard id >= 0 else { throw HDF5Error(file: path, reason: "cannot open: the file is damaged or truncated") }
        return HDF5File(path: path, id: id)
    }

    /// Flushes and closes; after this the object is unusable, whether or not it succeeded. (When H5Fclose fails,
    /// HDF5 1.10 keeps the identifier registered over freed state: it must never be used again, and the library's
    /// exit clean-up is off for that reason, see `gpt_h5_silence_errors`.)
    func close() throws {
        guard id >= 0 else { return }
        errno = 0
        let flushed = H5Fflush(id, H5F_SCOPE_GLOBAL)
        let cause = Self.writeFailure()
        let closed = H5Fclose(id)
        id = -1
        guard flushed >= 0, closed >= 0 else {
            throw HDF5Error(file: path, reason: "flushing and closing failed (\(cause ?? Self.writeFailure() ?? "disk full?"))")
        }
    }

    /// The system's reason for the last failed write, when errno holds one that a write sets for lack of room or
    /// a failing device; nil otherwise (errno is not reliable across HDF5's calls for anything else).
    static func writeFailure() -> String? {
        [ENOSPC, EDQUOT, EFBIG, EIO, EROFS].contains(errno) ? String(cString: strerror(errno)) : nil
    }

    func fail(_ what: String) -> HDF5Error { HDF5Error(file: path, reason: what) }

    /// A fixed-length, null-padded string type of `size` bytes in `cset` (the caller closes it).
    private static func stringType(size: Int, cset: H5T_cset_t = H5T_CSET_UTF8) -> hid_t {
        let type = H5Tcopy(gpt_H5T_C_S1())
        H5Tset_size(type, max(1, size))
        H5Tset_cset(type, cset)
        H5Tset_strpad(type, H5T_STR_NULLPAD)
        return type
    }

    /// Reads a fixed-length string value through `read`, in the file type's size and character set (HDF5 only
    /// converts between string types of one character set).
    private static func readFixedString(fileType: hid_t, _ read: (hid_t, UnsafeMutableRawPointer) -> herr_t) -> String? {
        let size = H5Tget_size(fileType)
        let memoryType = stringType(size: size, cset: H5Tget_cset(fileType))
        defer { H5Tclose(memoryType) }
        var bytes = [UInt8](repeating: 0, count: max(size, 1))
        guard bytes.withUnsafeMutableBytes({ read(memoryType, $0.baseAddress!) }) >= 0 else { return nil }
        while bytes.last == 0 { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    func exists(_ name: String) -> Bool {
        // H5Lexists needs every intermediate group to exist: check level by level.
        var prefix = ""
        for part in name.split(separator: "/") {
            prefix += "/" + part
            guard H5Lexists(id, prefix, gpt_H5P_DEFAULT()) > 0 else { return false }
        }
        return true
    }

    func createGroup(_ name: String) throws {
        let g = H5Gcreate2(id, name, gpt_H5P_DEFAULT(), gpt_H5P_DEFAULT(), gpt_H5P_DEFAULT())
        guard g >= 0 else { throw fail("cannot create group \(name)") }
        H5Gclose(g)
    }

    /// Names of the members of a group.
    func members(of group: String) throws -> [String] {
        var names: [String] = []
        var info = H5G_info_t()
        let g = H5Gopen2(id, group, gpt_H5P_DEFAULT())
        guard g >= 0 else { throw fail("missing group \(group)") }
        defer { H5Gclose(g) }
        guard H5Gget_info(g, &info) >= 0 else { throw fail("cannot list \(group)") }
        for i in 0..<info.nlinks {
            let size = H5Lget_name_by_idx(g, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, nil, 0, gpt_H5P_DEFAULT())
            let fallback = size < 0
            let length = fallback ? H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, gpt_H5P_DEFAULT()) : size
            guard length >= 0 else { throw fail("cannot list \(group)") }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            H5Lget_name_by_idx(g, ".", fallback ? H5_INDEX_NAME : H5_INDEX_CRT_ORDER, H5_ITER_INC, i, &buffer,
                               buffer.count, gpt_H5P_DEFAULT())
            names.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    // MARK: Datasets

    /// Chunks of about 1M elements along the first dimension: each is checksummed on its own.
    private func chunk(_ shape: [Int]) -> [hsize_t] {
        guard let first = shape.first else { return [] }
        let row = max(1, shape.dropFirst().reduce(1, *))
        let rows = max(1, min(first, (1 << 20) / row))
        return [hsize_t(rows)] + shape.dropFirst().map { hsize_t($0) }
    }

    private func createDataset(_ name: String, type: hid_t, fileType: hid_t? = nil, shape: [Int],
                               buffer: UnsafeRawPointer) throws {
        let dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        guard space >= 0 else { throw fail("cannot describe \(name) \(shape)") }
        defer { H5Sclose(space) }
        let properties = H5Pcreate(gpt_H5P_DATASET_CREATE())
        guard properties >= 0 else { throw fail("the HDF5 library cannot create a property list") }
        defer { H5Pclose(properties) }
        if shape.reduce(1, *) > 0 {
            let chunks = chunk(shape)
            guard H5Pset_chunk(properties, Int32(chunks.count), chunks) >= 0,
                  H5Pset_fletcher32(properties) >= 0 else { throw fail("cannot set up checksums for \(name)") }
        }
        let dataset = H5Dcreate2(id, name, fileType ?? type, space, gpt_H5P_DEFAULT(), properties, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw fail("cannot create dataset \(name)") }
        defer { H5Dclose(dataset) }
        if shape.reduce(1, *) > 0 {
            errno = 0
            guard H5Dwrite(dataset, type, gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), buffer) >= 0 else {
                throw fail("cannot write \(name) (\(Self.writeFailure() ?? "disk full?"))")
            }
        }
    }

    func writeFloats(_ name: String, shape: [Int], _ data: UnsafePointer<Float>) throws {
        try createDataset(name, type: gpt_H5T_NATIVE_FLOAT(), fileType: gpt_H5T_IEEE_F32LE(), shape: shape, buffer: data)
    }

    func writeInt64s(_ name: String, _ values: [Int64]) throws {
        try values.withUnsafeBufferPointer {
            try createDataset(name, type: gpt_H5T_NATIVE_INT64(), fileType: gpt_H5T_STD_I64LE(), shape: [values.count], buffer: $0.baseAddress!)
        }
    }

    func writeUInt64s(_ name: String, _ values: [UInt64]) throws {
        try values.withUnsafeBufferPointer {
            try createDataset(name, type: gpt_H5T_NATIVE_UINT64(), fileType: gpt_H5T_STD_U64LE(), shape: [values.count], buffer: $0.baseAddress!)
        }
    }

    func writeDoubles(_ name: String, _ values: [Double]) throws {
        try values.withUnsafeBufferPointer {
            try createDataset(name, type: gpt_H5T_NATIVE_DOUBLE(), fileType: gpt_H5T_IEEE_F64LE(), shape: [values.count], buffer: $0.baseAddress!)
        }
    }

    /// A UTF-8 string as a one-element dataset of a fixed-length string type (h5py reads it as `f[name][0]`,
    /// bytes). Datasets, unlike attributes, have no 64 KB limit and carry the checksum.
    func writeString(_ name: String, _ text: String) throws {
        var bytes = Array(text.utf8)
        let type = Self.stringType(size: bytes.count)
        defer { H5Tclose(type) }
        if bytes.isEmpty { bytes = [0] }
        try bytes.withUnsafeBufferPointer { try createDataset(name, type: type, shape: [1], buffer: $0.baseAddress!) }
    }

    /// The shape of a dataset, or an error naming it when it is missing.
    func shape(_ name: String) throws -> [Int] {
        guard exists(name) else { throw fail("missing dataset \(name)") }
        let dataset = H5Dopen2(id, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw fail("cannot open dataset \(name)") }
        defer { H5Dclose(dataset) }
        let space = H5Dget_space(dataset)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0 else { throw fail("cannot read the shape of \(name)") }
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.prefix(rank).map { Int($0) }
    }

    /// How a dataset is stored: its shape, its element type in this format's words (`float32`, `int64`,
    /// `uint64`, `float64`, `string`; others as found: `int32`, `float16`, `float32 big-endian`, ...), and
    /// whether it carries the Fletcher-32 checksum.
    struct StoredDataset: Equatable {
        var shape: [Int]
        var type: String
        var checksummed: Bool
    }

    func stored(_ name: String) throws -> StoredDataset {
        guard exists(name) else { throw fail("missing dataset \(name)") }
        let dataset = H5Dopen2(id, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw fail("cannot open dataset \(name) (it is not a dataset, or its object header is damaged)") }
        defer { H5Dclose(dataset) }
        let type = H5Dget_type(dataset)
        guard type >= 0 else { throw fail("cannot read the type of \(name)") }
        defer { H5Tclose(type) }
        let properties = H5Dget_create_plist(dataset)
        guard properties >= 0 else { throw fail("cannot read the storage properties of \(name)") }
        defer { H5Pclose(properties) }
        var checksummed = false
        for index in 0..<max(0, H5Pget_nfilters(properties)) {
            var flags: UInt32 = 0, values = 0, config: UInt32 = 0
            if H5Pget_filter2(properties, UInt32(index), &flags, &values, nil, 0, nil, &config) == gpt_H5Z_FILTER_FLETCHER32() {
                checksummed = true
            }
        }
        return StoredDataset(shape: try shape(name), type: Self.describe(type), checksummed: checksummed)
    }

    /// A type in the words `stored(_:)` uses.
    static func describe(_ type: hid_t) -> String {
        let bits = H5Tget_size(type) * 8
        let order = H5Tget_order(type) == H5T_ORDER_BE ? " big-endian" : ""
        switch H5Tget_class(type) {
        case H5T_FLOAT:
            let ieee = (bits == 32 && H5Tequal(type, gpt_H5T_IEEE_F32LE()) > 0)
                || (bits == 64 && H5Tequal(type, gpt_H5T_IEEE_F64LE()) > 0)
            return "float\(bits)" + order + (ieee || !order.isEmpty || (bits != 32 && bits != 64) ? "" : " (not IEEE 754)")
        case H5T_INTEGER:
            return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(bits)" + order
        case H5T_STRING:
            return H5Tis_variable_str(type) > 0 ? "variable-length string" : "string"
        default:
            return "HDF5 type class \(H5Tget_class(type).rawValue)"
        }
    }

    /// Checks that `name` is stored exactly as this format writes it: element type `type`, `shape` when given, and
    /// the Fletcher-32 checksum. Returns its shape.
    @discardableResult
    func verify(_ name: String, type: String, shape expected: [Int]? = nil) throws -> [Int] {
        let found = try stored(name)
        guard found.type == type else { throw fail("\(name) is stored as \(found.type); this format writes \(type)") }
        if let expected, found.shape != expected {
            throw fail("\(name) has shape \(found.shape), expected \(expected)")
        }
        guard found.checksummed || found.shape.reduce(1, *) == 0 else {
            throw fail("\(name) is stored without the Fletcher-32 checksum this format puts on every dataset")
        }
        return found.shape
    }

    private func read(_ name: String, type: hid_t, stored storedType: String, expected shape: [Int]?,
                      into buffer: UnsafeMutableRawPointer) throws {
        let actual = try verify(name, type: storedType, shape: shape)
        guard actual.reduce(1, *) > 0 else { return }
        let dataset = H5Dopen2(id, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw fail("cannot open dataset \(name)") }
        defer { H5Dclose(dataset) }
        guard H5Dread(dataset, type, gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), buffer) >= 0 else {
            throw fail("cannot read dataset \(name): its checksum does not match (the file is corrupted)")
        }
    }

    func readFloats(_ name: String, shape: [Int], into buffer: UnsafeMutablePointer<Float>) throws {
        try read(name, type: gpt_H5T_NATIVE_FLOAT(), stored: "float32", expected: shape, into: buffer)
    }

    func readInt64s(_ name: String) throws -> [Int64] {
        let count = try shape(name).reduce(1, *)
        var values = [Int64](repeating: 0, count: count)
        try values.withUnsafeMutableBytes {
            try read(name, type: gpt_H5T_NATIVE_INT64(), stored: "int64", expected: [count], into: $0.baseAddress!)
        }
        return values
    }

    func readUInt64s(_ name: String) throws -> [UInt64] {
        let count = try shape(name).reduce(1, *)
        var values = [UInt64](repeating: 0, count: count)
        try values.withUnsafeMutableBytes {
            try read(name, type: gpt_H5T_NATIVE_UINT64(), stored: "uint64", expected: [count], into: $0.baseAddress!)
        }
        return values
    }

    func readDoubles(_ name: String) throws -> [Double] {
        let count = try shape(name).reduce(1, *)
        var values = [Double](repeating: 0, count: count)
        try values.withUnsafeMutableBytes {
            try read(name, type: gpt_H5T_NATIVE_DOUBLE(), stored: "float64", expected: [count], into: $0.baseAddress!)
        }
        return values
    }

    func readString(_ name: String) throws -> String {
        try verify(name, type: "string", shape: [1])
        let dataset = H5Dopen2(id, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw fail("cannot open dataset \(name)") }
        defer { H5Dclose(dataset) }
        let fileType = H5Dget_type(dataset)
        defer { H5Tclose(fileType) }
        guard let text = Self.readFixedString(fileType: fileType, {
            H5Dread(dataset, $0, gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), $1)
        }) else {
            throw fail("cannot read dataset \(name): its checksum does not match (the file is corrupted)")
        }
        return text
    }

    // MARK: Attributes (on the root group)

    func writeAttribute(_ name: String, _ value: Int64) throws {
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(id, name, gpt_H5T_STD_I64LE(), space, gpt_H5P_DEFAULT(), gpt_H5P_DEFAULT())
        guard attribute >= 0 else { throw fail("cannot create attribute \(name)") }
        defer { H5Aclose(attribute) }
        var v = value
        guard H5Awrite(attribute, gpt_H5T_NATIVE_INT64(), &v) >= 0 else { throw fail("cannot write attribute \(name)") }
    }

    func writeAttribute(_ name: String, _ text: String) throws {
        let bytes = Array(text.utf8)
        let type = Self.stringType(size: bytes.count)
        defer { H5Tclose(type) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let attribute = H5Acreate2(id, name, type, space, gpt_H5P_DEFAULT(), gpt_H5P_DEFAULT())
        guard attribute >= 0 else { throw fail("cannot create attribute \(name)") }
        defer { H5Aclose(attribute) }
        let padded = bytes.isEmpty ? [UInt8(0)] : bytes
        guard H5Awrite(attribute, type, padded) >= 0 else { throw fail("cannot write attribute \(name)") }
    }

    func readIntAttribute(_ name: String) throws -> Int64 {
        guard H5Aexists(id, name) > 0 else { throw fail("missing attribute \(name)") }
        let attribute = H5Aopen(id, name, gpt_H5P_DEFAULT())
        guard attribute >= 0 else { throw fail("cannot open attribute \(name)") }
        defer { H5Aclose(attribute) }
        var v: Int64 = 0
        guard H5Aread(attribute, gpt_H5T_NATIVE_INT64(), &v) >= 0 else { throw fail("cannot read attribute \(name)") }
        return v
    }

    func readStringAttribute(_ name: String) throws -> String {
        guard H5Aexists(id, name) > 0 else { throw fail("missing attribute \(name)") }
        let attribute = H5Aopen(id, name, gpt_H5P_DEFAULT())
        guard attribute >= 0 else { throw fail("cannot open attribute \(name)") }
        defer { H5Aclose(attribute) }
        let fileType = H5Aget_type(attribute)
        defer { H5Tclose(fileType) }
        let space = H5Aget_space(attribute)
        defer { H5Sclose(space) }
        guard H5Tget_class(fileType) == H5T_STRING, H5Tis_variable_str(fileType) == 0,
              H5Sget_simple_extent_npoints(space) == 1 else {
            throw fail("attribute \(name) is not one fixed-length string")
        }
        guard let text = Self.readFixedString(fileType: fileType, { H5Aread(attribute, $0, $1) }) else {
            throw fail("cannot read attribute \(name)")
        }
        return text
    }
}
