import Foundation
import GPT
import GPTShape
import Interchange
import XCTest

/// The safetensors reader and writer and config.json against the specification, without Python.
final class InterchangeFormatTests: XCTestCase {
    /// A file made by hand: 8-byte little-endian header length, the JSON header, the data.
    func file(_ header: String, data: [UInt8]) -> Data {
        var bytes = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        return bytes
    }

    func refusal(_ data: Data) -> String {
        do {
            _ = try SafetensorsFile(data: data, path: "m.safetensors")
            return "accepted"
        } catch { return "\(error)" }
    }

    func testWrittenFilesReadBack() throws {
        let tensors = [Safetensors.Tensor(name: "a", shape: [2, 3], values: [1, -2, 3.5, .leastNonzeroMagnitude, -0.0, 6]),
                       Safetensors.Tensor(name: "b\"quoted\"", shape: [1], values: [7])]
        let data = Safetensors.encode(tensors, metadata: ["format": "pt"])
        let headerLength = data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + headerLength) % 8, 0, "the data starts 8-byte aligned")
        let read = try SafetensorsFile(data: data, path: "m.safetensors")
        XCTAssertEqual(read.metadata, ["format": "pt"])
        XCTAssertEqual(read.entries["a"], Safetensors.Entry(dtype: .f32, shape: [2, 3], offsets: 0 ..< 24))
        XCTAssertEqual(try read.floats("a").map(\.bitPattern), tensors[0].values.map(\.bitPattern))
        XCTAssertEqual(try read.floats("b\"quoted\""), [7])
    }

    func testHalfPrecisionIsWidenedExactly() throws {
        // 1.5 in bf16 is 0x3FC0; -2 in f16 is 0xC000.
        let data = file(#"{"x":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"y":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}"#,
                        data: [0xC0, 0x3F, 0x00, 0xC0])
        let read = try SafetensorsFile(data: data, path: "m")
        XCTAssertEqual(try read.floats("x"), [1.5])
        XCTAssertEqual(try read.floats("y"), [-2])
    }

    func testMalformedFilesAreRefusedWithTheField() {
        let f32 = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(refusal(Data([1, 2, 3])), "m.safetensors: is 3 bytes long, shorter than the 8-byte header length. Fix: the file is damaged or not safetensors; write it again (e.g. with save_pretrained)")
        var huge = file("{}", data: [])
        huge.replaceSubrange(0 ..< 8, with: [0, 0, 0, 0, 1, 0, 0, 0])
        XCTAssertTrue(refusal(huge).hasPrefix("m.safetensors: header length: says the header is 4294967296 bytes, over the limit"))
        var long = file("{}", data: [])
        long.replaceSubrange(0 ..< 8, with: [100, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertTrue(refusal(long).hasPrefix("m.safetensors: header length: says the header is 100 bytes, but only 2 follow (truncated?)"))
        XCTAssertTrue(refusal(file("[1]", data: [])).hasPrefix("m.safetensors: header: does not start with a JSON object"))
        XCTAssertTrue(refusal(file("{\"a\": ", data: [])).hasPrefix("m.safetensors: header: is not valid JSON"))
        for (header, expected) in [
            (#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, "a.dtype: \"F33\" is not a safetensors dtype"),
            (#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "a.shape: must hold non-negative integers"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "a.data_offsets: must be a list of two integers"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,0]}}"#, "a.data_offsets: [4, 0] is not a byte range"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}"#, "a.data_offsets: [0, 12] ends past the data, which holds 8 bytes (truncated?)"),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, "a.data_offsets: [0, 8] holds 8 bytes, but shape [3] of F32 needs 12"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
             "data_offsets: [4, 8] overlaps another tensor's bytes"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, "a.data_offsets: leaves bytes 0..<4 of the data belonging to no tensor"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, "data: the tensors end at byte 4 of the data, but it holds 8 bytes"),
        ] {
            let message = refusal(file(header, data: f32))
            XCTAssertTrue(message.contains(expected), "\(header): \(message)")
            XCTAssertTrue(message.hasPrefix("m.safetensors: "), message)
        }
        // A dtype the model cannot use is refused when the tensor is read.
        let ints = try? SafetensorsFile(data: file(#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: f32), path: "m")
        XCTAssertThrowsError(try ints?.floats("a") ?? []) { error in
            XCTAssertTrue("\(error)".hasPrefix("m: a.dtype: is I64, which cannot become float32 weights exactly"), "\(error)")
        }
    }

    func testConfigRoundTripAndRefusals() throws {
        let shape = ModelShape(nLayer: 3, nHead: 4, dModel: 64, dFF: 200, seqLen: 128, vocabSize: 320, bias: true)
        let config = GPT2Config(shape: shape, endOfText: 299)
        let read = try GPT2Config.read(config.jsonData(), file: "config.json")
        XCTAssertEqual(read.shape, shape)
        XCTAssertEqual(read.eosTokenID, 299)
        let text = String(decoding: config.jsonData(), as: UTF8.self)
        for (from, to, expected) in [
            ("\"gelu_new\"", "\"gelu\"", "config.json: activation_function: is \"gelu\""),
            ("\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": 1e-06", "config.json: layer_norm_epsilon: is 1e-06"),
            ("\"model_type\": \"gpt2\"", "\"model_type\": \"llama\"", "config.json: model_type: is \"llama\""),
            ("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", "config.json: tie_word_embeddings: is false"),
            ("\"n_head\": 4", "\"n_head\": 5", "config.json: n_head: 5 does not divide n_embd = 64"),
            ("\"n_layer\": 3", "\"n_layer\": 0", "config.json: n_layer: must be a positive integer"),
        ] {
            XCTAssertThrowsError(try GPT2Config.read(Data(text.replacingOccurrences(of: from, with: to).utf8), file: "config.json")) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error)")
            }
        }
        // n_inner null means 4·n_embd.
        let defaulted = try GPT2Config.read(Data(text.replacingOccurrences(of: "\"n_inner\": 200", with: "\"n_inner\": null").utf8), file: "c")
        XCTAssertEqual(defaulted.nInner, 256)
    }

    func testTensorNamesAndTransposes() {
        let layout = ParameterLayout(ModelShape(nLayer: 1, nHead: 1, dModel: 2, dFF: 3, seqLen: 2, vocabSize: 4, bias: false))
        let entries = GPT2Weights.entries(layout)
        XCTAssertEqual(entries.count, 2 + 12 + 2)
        let fc = entries.first { $0.name == "transformer.h.0.mlp.c_fc.weight" }!
        XCTAssertEqual(fc.shape, [2, 3])  // Conv1D: [in, out]
        XCTAssertTrue(fc.transposed)
        XCTAssertNil(entries.first { $0.name == "transformer.h.0.attn.c_attn.bias" }!.offset, "a bias-free model exports zeros")
        let parameters = (0 ..< layout.count).map { Float($0) }
        let tensors = parameters.withUnsafeBufferPointer { GPT2Weights.tensors(layout, parameters: $0.baseAddress!) }
        let ours = layout.tensor(named: "transformer.h.0.mlp.c_fc.weight")!  // [3, 2] = [out, in]
        let theirs = tensors.first { $0.name == fc.name }!.values
        for o in 0..<3 { for i in 0..<2 { XCTAssertEqual(theirs[i * 3 + o], parameters[ours.offset + o * 2 + i]) } }
        XCTAssertEqual(tensors.first { $0.name == "transformer.ln_f.bias" }!.values, [0, 0])
    }
}
