import CHDF5
import Foundation
import TestFixtures
import XCTest

/// Targeted damage to a real checkpoint through the HDF5 C API (no Python): rewrite a dataset with another type
/// or without the checksum, change values with valid checksums, add or delete objects, flip a stored byte.
enum HDF5Surgery {
    /// Opens `path` for writing, runs `body` on the file, closes it.
    static func edit(_ path: String, _ body: (hid_t) throws -> Void) throws {
        gpt_h5_silence_errors()
        let file = H5Fopen(path, gpt_H5F_ACC_RDWR(), gpt_H5P_DEFAULT())
        guard file >= 0 else { throw Failure("cannot open \(path) for writing") }
        defer { H5Fclose(file) }
        try body(file)
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ text: String) { description = text }
    }

    static func shape(_ file: hid_t, _ name: String) throws -> [Int] {
        let dataset = H5Dopen2(file, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw Failure("no dataset \(name)") }
        defer { H5Dclose(dataset) }
        let space = H5Dget_space(dataset)
        defer { H5Sclose(space) }
        var dims = [hsize_t](repeating: 0, count: 8)
        let rank = Int(H5Sget_simple_extent_dims(space, &dims, nil))
        return dims.prefix(rank).map { Int($0) }
    }

    static func readFloats(_ file: hid_t, _ name: String) throws -> [Float] {
        let count = try shape(file, name).reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        let dataset = H5Dopen2(file, name, gpt_H5P_DEFAULT())
        defer { H5Dclose(dataset) }
        guard H5Dread(dataset, gpt_H5T_NATIVE_FLOAT(), gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), &values) >= 0 else {
            throw Failure("cannot read \(name)")
        }
        return values
    }

    /// Replaces dataset `name` by one of `shape` stored as `fileType` (converted by HDF5 from `memoryType`),
    /// chunked, with or without Fletcher-32.
    static func replace(_ file: hid_t, _ name: String, fileType: hid_t, memoryType: hid_t, shape: [Int],
                        data: UnsafeRawPointer, checksum: Bool = true) throws {
        if H5Lexists(file, name, gpt_H5P_DEFAULT()) > 0 {
            guard H5Ldelete(file, name, gpt_H5P_DEFAULT()) >= 0 else { throw Failure("cannot delete \(name)") }
        }
        let dims = shape.map { hsize_t($0) }
        let space = H5Screate_simple(Int32(dims.count), dims, nil)
        defer { H5Sclose(space) }
        let properties = H5Pcreate(gpt_H5P_DATASET_CREATE())
        defer { H5Pclose(properties) }
        H5Pset_chunk(properties, Int32(dims.count), dims)
        if checksum { H5Pset_fletcher32(properties) }
        let dataset = H5Dcreate2(file, name, fileType, space, gpt_H5P_DEFAULT(), properties, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw Failure("cannot create \(name)") }
        defer { H5Dclose(dataset) }
        guard H5Dwrite(dataset, memoryType, gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), data) >= 0 else {
            throw Failure("cannot write \(name)")
        }
    }

    /// Rewrites a float32 dataset in place with `change` applied (the checksum is recomputed: valid).
    static func changeFloats(_ file: hid_t, _ name: String, _ change: (inout [Float]) -> Void) throws {
        var values = try readFloats(file, name)
        change(&values)
        let dataset = H5Dopen2(file, name, gpt_H5P_DEFAULT())
        defer { H5Dclose(dataset) }
        guard H5Dwrite(dataset, gpt_H5T_NATIVE_FLOAT(), gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), values) >= 0 else {
            throw Failure("cannot write \(name)")
        }
    }

    static func writeInt64(_ file: hid_t, _ name: String, _ value: Int64) throws {
        let dataset = H5Dopen2(file, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw Failure("no dataset \(name)") }
        defer { H5Dclose(dataset) }
        var v = value
        guard H5Dwrite(dataset, gpt_H5T_NATIVE_INT64(), gpt_H5S_ALL(), gpt_H5S_ALL(), gpt_H5P_DEFAULT(), &v) >= 0 else {
            throw Failure("cannot write \(name)")
        }
    }

    static func delete(_ file: hid_t, _ name: String) throws {
        guard H5Ldelete(file, name, gpt_H5P_DEFAULT()) >= 0 else { throw Failure("cannot delete \(name)") }
    }

    /// IEEE 754 half precision, as h5py makes it (HDF5 1.10 has no predefined float16).
    static func float16() -> hid_t {
        let type = H5Tcopy(gpt_H5T_IEEE_F32LE())
        H5Tset_fields(type, 15, 10, 5, 0, 10)
        H5Tset_size(type, 2)
        H5Tset_ebias(type, 15)
        return type
    }

    /// The byte offset in the file of the first chunk of `name`'s stored data.
    static func firstChunkAddress(_ path: String, _ name: String) throws -> Int {
        gpt_h5_silence_errors()
        let file = H5Fopen(path, gpt_H5F_ACC_RDONLY(), gpt_H5P_DEFAULT())
        guard file >= 0 else { throw Failure("cannot open \(path)") }
        defer { H5Fclose(file) }
        let dataset = H5Dopen2(file, name, gpt_H5P_DEFAULT())
        guard dataset >= 0 else { throw Failure("no dataset \(name)") }
        defer { H5Dclose(dataset) }
        var offset = [hsize_t](repeating: 0, count: 8)
        var mask: UInt32 = 0
        var address: haddr_t = 0
        var size: hsize_t = 0
        let space = H5Dget_space(dataset)
        defer { H5Sclose(space) }
        guard H5Dget_chunk_info(dataset, space, 0, &offset, &mask, &address, &size) >= 0 else {
            throw Failure("no chunk information for \(name)")
        }
        return Int(address)
    }

    /// Flips one bit of the byte at `offset` in the file.
    static func flipByte(_ path: String, at offset: Int) throws {
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[offset] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: path))
    }
}

extension Fixtures.Options {
    /// The fault tests' run: `steps` steps, one warmup step, a checkpoint every `every` steps.
    static func checkpointed(steps: Int, every: Int) -> Fixtures.Options {
        var o = Fixtures.Options()
        o.steps = steps
        o.warmup = 1
        o.checkpointInterval = every
        return o
    }
}
