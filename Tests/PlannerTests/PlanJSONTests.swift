import Foundation
import GPTShape
import Planner
import XCTest

/// The plan's JSON type: the documented keys with the plan's values, `null` cost without a price, a decodable round
/// trip, and non-finite numbers refused with the key named.
final class PlanJSONTests: XCTestCase {
    func plan(price: Double? = nil) throws -> Plan {
        var r = PlanRequest(target: .flops(1e20), hardware: .given(.a100_80gb))
        r.devices = .fixed(8)
        r.pricePerDeviceHour = price
        return try Plan.make(r)
    }

    func object(_ json: PlanJSON) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: try json.encoded()) as! [String: Any]
    }

    func testKeysValuesAndRoundTrip() throws {
        let p = try plan()
        let json = PlanJSON(p, rationale: ["one", "two"])
        let o = try object(json)
        XCTAssertEqual(Set(o.keys), ["flops", "fit", "params", "non_embedding_params", "tokens", "tokens_per_param",
                                     "predicted_loss", "model", "flops_per_token", "batch_tokens", "batch_sequences",
                                     "learning_rate", "min_learning_rate", "warmup_steps", "steps", "memory_bytes",
                                     "rationale", "hardware", "layout", "memory_per_device", "time_seconds",
                                     "device_hours", "cost"])
        XCTAssertTrue(o["cost"] is NSNull)
        XCTAssertEqual(o["params"] as? Int, p.params)
        XCTAssertEqual(o["rationale"] as? [String], ["one", "two"])
        let layout = o["layout"] as! [String: Any]
        XCTAssertEqual(Set(layout.keys), ["data_parallel", "tensor_parallel", "pipeline_parallel", "zero_stage",
                                          "recompute", "micro_batch", "grad_accum"])
        XCTAssertEqual(layout["recompute"] as? String, p.layout.recompute.rawValue)
        XCTAssertEqual(Set((o["hardware"] as! [String: Any]).keys), ["name", "memory_bytes", "peak_flops", "devices", "precision"])
        XCTAssertEqual((o["hardware"] as! [String: Any])["devices"] as? Int, 8)
        XCTAssertEqual(Set((o["model"] as! [String: Any]).keys), ["n_layer", "n_head", "d_model", "d_ff", "seq_len", "vocab_size"])
        XCTAssertEqual(Set((o["memory_per_device"] as! [String: Any]).keys),
                       ["weights", "gradients", "optimizer", "activations", "other", "total"])
        // Read back by JSONDecoder (exact, where JSONSerialization rounds the last digit): the same values.
        let decoded = try JSONDecoder().decode(PlanJSON.self, from: try json.encoded())
        XCTAssertEqual(decoded, json)
        XCTAssertEqual(decoded.learningRate, p.learningRate)
        XCTAssertEqual(decoded.memoryPerDevice.total, p.memory.total)
        XCTAssertNil(decoded.cost)

        let priced = try object(PlanJSON(try plan(price: 2), rationale: []))
        XCTAssertEqual(priced["cost"] as! Double, (priced["device_hours"] as! Double) * 2, accuracy: 1e-9)
    }

    func testNonFiniteNumbersAreRefusedNamingTheKey() throws {
        var json = PlanJSON(try plan(), rationale: [])
        json.memoryPerDevice.activations = .nan
        XCTAssertThrowsError(try json.encoded()) { error in
            guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(context.codingPath.map(\.stringValue), ["memory_per_device", "activations"])
        }
        json = PlanJSON(try plan(), rationale: [])
        json.cost = .infinity
        XCTAssertThrowsError(try json.encoded())
    }
}
