import Foundation
import TensorBoard
import XCTest

final class CRC32CTests: XCTestCase {
    func testCheckValue() {
        // The standard check value of CRC-32C (the CRC catalogue's "check" for CRC-32/ISCSI).
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    /// RFC 3720 (iSCSI), appendix B.4: the CRC bytes are listed as sent (least significant first).
    func testRFC3720Vectors() {
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }), 0x113F_DB5C)
        let readPDU: [UInt8] = [
            0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
            0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]
        XCTAssertEqual(CRC32C.checksum(readPDU), 0xD996_3A56)
    }

    func testContinuationEqualsWholeAndMaskRoundTrips() {
        let text = Array("The quick brown fox jumps over the lazy dog".utf8)
        XCTAssertEqual(CRC32C.checksum(text[10...], continuing: CRC32C.checksum(text[..<10])), CRC32C.checksum(text))
        for crc: UInt32 in [0, 1, 0xE306_9283, 0xFFFF_FFFF] {
            XCTAssertEqual(CRC32C.unmask(CRC32C.mask(crc)), crc)
        }
        // The definition: rotate right by 15, add 0xa282ead8 (wrapping).
        XCTAssertEqual(CRC32C.mask(0), 0xA282_EAD8)
        XCTAssertEqual(CRC32C.mask(0x0000_8000), 0xA282_EAD9)
    }
}

final class EventFormatTests: XCTestCase {
    /// Every TensorFlow/TensorBoard event file starts with these 12 bytes: the length of the file-version event
    /// (24) and its masked CRC, a constant that any event file written by TensorFlow shows.
    func testFileVersionRecordHeaderMatchesTensorFlowFiles() {
        let record = TFRecord.frame(Event.fileVersion(wallTime: 1_700_000_000.25).serialized())
        XCTAssertEqual(Array(record.prefix(12)), [0x18, 0, 0, 0, 0, 0, 0, 0, 0xA3, 0x7F, 0x4B, 0x22])
        XCTAssertEqual(record.count, 12 + 24 + 4)
    }

    func testEventBytesByHand() {
        let event = Event(wallTime: 1.5, step: 3, scalars: [Event.Scalar(tag: "a", value: 2)])
        let expected: [UInt8] = [
            0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F,  // field 1, fixed64: 1.5
            0x10, 0x03,  // field 2, varint: 3
            0x2A, 0x0A,  // field 5, 10 bytes: Summary
            0x0A, 0x08,  // Summary field 1, 8 bytes: Value
            0x0A, 0x01, 0x61,  // Value.tag = "a"
            0x15, 0, 0, 0, 0x40,  // Value.simple_value = 2 (fixed32)
        ]
        XCTAssertEqual(event.serialized(), expected)
        XCTAssertEqual(try Event(serialized: expected), event)
    }

    func testRoundTripWithLargeStepsNegativeValuesAndUnknownFields() throws {
        let event = Event(wallTime: 1_764_000_000.123456, step: 1 << 40,
                          scalars: [Event.Scalar(tag: "loss/train", value: -3.25), Event.Scalar(tag: "ü/λ", value: .infinity)])
        var bytes = event.serialized()
        bytes += [0x20, 0x96, 0x01]  // field 4 (varint 150), which Event skips
        XCTAssertEqual(try Event(serialized: bytes), event)
        XCTAssertThrowsError(try Event(serialized: Array(bytes.dropLast(4))))
    }

    func testReaderRejectsDamage() throws {
        let records = [[UInt8](), Array("hello".utf8), [UInt8](repeating: 7, count: 300)]
        let file = records.flatMap(TFRecord.frame)
        XCTAssertEqual(try TFRecord.records(in: file), records)
        var flipped = file
        flipped[16 + 12 + 2] ^= 1  // a byte of "hello"
        XCTAssertThrowsError(try TFRecord.records(in: flipped)) { error in
            XCTAssertEqual(error as? TFRecord.FormatError, TFRecord.FormatError(offset: 16, reason: "data checksum mismatch"))
        }
        var badLength = file
        badLength[16] = 6
        XCTAssertThrowsError(try TFRecord.records(in: badLength)) { error in
            XCTAssertEqual((error as? TFRecord.FormatError)?.reason, "length checksum mismatch")
        }
        XCTAssertThrowsError(try TFRecord.records(in: Array(file.dropLast(1)))) { error in
            XCTAssertEqual((error as? TFRecord.FormatError)?.offset, 16 + 21)
        }
    }
}

final class EventWriterTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = (NSTemporaryDirectory() as NSString).appendingPathComponent("tb-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func testFileNameFirstEventAndScalars() throws {
        let writer = try EventWriter(directory: directory + "/tb", flushInterval: 0, clock: { 1_764_000_000.5 })
        let name = (writer.path as NSString).lastPathComponent
        let host = try String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(name, "events.out.tfevents.1764000000.\(host)")
        try writer.add(scalar: 2.5, tag: "loss/train", step: 10)
        try writer.add(scalar: Float(0.001), tag: "train/lr", step: 10, wallTime: 42)
        try writer.close()
        let events = try EventFile.read(path: writer.path)
        XCTAssertEqual(events, [
            Event(wallTime: 1_764_000_000.5, fileVersion: "brain.Event:2"),
            Event(wallTime: 1_764_000_000.5, step: 10, scalars: [.init(tag: "loss/train", value: 2.5)]),
            Event(wallTime: 42, step: 10, scalars: [.init(tag: "train/lr", value: 0.001)]),
        ])
        XCTAssertEqual(EventFile.paths(in: directory + "/tb"), [writer.path])
        XCTAssertThrowsError(try writer.add(scalar: 1, tag: "x", step: 1))
    }

    func testSecondWriterInTheSameSecondGetsItsOwnFile() throws {
        let a = try EventWriter(directory: directory, clock: { 100 })
        let b = try EventWriter(directory: directory, clock: { 100 })
        XCTAssertEqual(b.path, a.path + ".1")
        try a.close()
        try b.close()
    }

    /// Events wait in memory until `flushInterval` seconds have passed since the last write, then go together.
    func testBufferedUntilTheIntervalPasses() throws {
        final class Clock: @unchecked Sendable { var now = 1000.0 }
        let clock = Clock()
        let writer = try EventWriter(directory: directory, flushInterval: 10, clock: { clock.now })
        func size() throws -> Int { try FileManager.default.attributesOfItem(atPath: writer.path)[.size] as! Int }
        let header = try size()
        XCTAssertEqual(header, 40)  // the file-version record is written at once
        try writer.add(scalar: 1, tag: "a", step: 1)
        clock.now += 9.5
        try writer.add(scalar: 2, tag: "a", step: 2)
        XCTAssertEqual(try size(), header)
        clock.now += 0.5
        try writer.add(scalar: 3, tag: "a", step: 3)
        XCTAssertEqual(try EventFile.read(path: writer.path).map(\.step), [0, 1, 2, 3])
        try writer.add(scalar: 4, tag: "a", step: 4)
        XCTAssertEqual(try EventFile.read(path: writer.path).count, 4)
        try writer.flush()
        XCTAssertEqual(try EventFile.read(path: writer.path).count, 5)
        try writer.add(scalar: 5, tag: "a", step: 5)
        try writer.close()
        XCTAssertEqual(try EventFile.read(path: writer.path).map(\.step), [0, 1, 2, 3, 4, 5])
    }

    func testUnwritableDirectoryThrowsNamingIt() throws {
        _ = FileManager.default.createFile(atPath: directory, contents: Data("a file".utf8))
        XCTAssertThrowsError(try EventWriter(directory: directory + "/tb")) { error in
            XCTAssertTrue("\(error)".hasPrefix(directory + "/tb"), "\(error)")
        }
    }
}
