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

    func estimate(tokens: Double?, price: Double?, mfu: Double? = nil) throws -> Estimate {
        let shape = ModelShape(nLayer: 12, nHead: 12, dModel: 768, dFF: 3072, seqLen: 1024, vocabSize: 50257,
                               bias: true)
        var r = EstimateRequest(shape: shape, hardware: .a100_80gb, batchSequences: 512)
        r.devices = 8
        r.trainingTokens = tokens
        r.pricePerDeviceHour = price
        r.mfu = mfu
        return try Estimate.make(r)
    }

    /// `gpt-plan estimate --json`: issue 23's keys (params, memory_per_device, step_seconds, throughput) and the
    /// others, `null` where a part does not apply, a decodable round trip.
    func testEstimateKeysNullsAndRoundTrip() throws {
        let e = try estimate(tokens: nil, price: nil)
        let json = EstimateJSON(e)
        let o = try JSONSerialization.jsonObject(with: try json.encoded()) as! [String: Any]
        XCTAssertEqual(Set(o.keys), ["params", "parameters", "model", "flops_per_token", "hardware", "layout",
                                     "batch_sequences", "batch_tokens", "memory_conventions", "memory_per_device",
                                     "step_seconds", "step_seconds_by_cause", "throughput", "mfu_assumed",
                                     "step_time_model", "layouts_evaluated", "training"])
        XCTAssertEqual(o["params"] as? Int, e.shape.parameterCount.total)
        XCTAssertEqual(Set((o["throughput"] as! [String: Any]).keys),
                       ["tokens_per_second_per_device", "model_flops_utilization", "hardware_flops_utilization"])
        XCTAssertEqual(Set((o["memory_per_device"] as! [String: Any]).keys),
                       ["weights", "gradients", "optimizer", "activations", "other", "total"])
        XCTAssertEqual(Set((o["layout"] as! [String: Any]).keys),
                       ["data_parallel", "tensor_parallel", "pipeline_parallel", "zero_stage", "recompute",
                        "micro_batch", "grad_accum", "interleave"])
        XCTAssertEqual(Set((o["model"] as! [String: Any]).keys),
                       ["family", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff", "seq_len", "vocab_size", "bias",
                        "tie_embeddings"])
        // The calibrated A100 model times the compute: no single MFU; no tokens: no training.
        XCTAssertTrue(o["mfu_assumed"] is NSNull)
        XCTAssertTrue(o["training"] is NSNull)
        XCTAssertEqual((o["step_time_model"] as! [String: Any])["matmul_efficiency"] as? Double,
                       StepTimeModel.fittedA100)
        XCTAssertEqual(o["step_seconds"] as? Double, e.stepSeconds)
        XCTAssertEqual(try JSONDecoder().decode(EstimateJSON.self, from: try json.encoded()), json)

        let given = try JSONSerialization.jsonObject(
            with: try EstimateJSON(try estimate(tokens: 1e10, price: nil, mfu: 0.5)).encoded()) as! [String: Any]
        XCTAssertEqual(given["mfu_assumed"] as? Double, 0.5)
        XCTAssertTrue(given["step_time_model"] is NSNull)
        let training = given["training"] as! [String: Any]
        XCTAssertEqual(Set(training.keys), ["tokens", "steps", "seconds", "device_hours", "cost"])
        XCTAssertTrue(training["cost"] is NSNull)
        let priced = try EstimateJSON(try estimate(tokens: 1e10, price: 2))
        XCTAssertEqual(priced.training?.cost ?? 0, (priced.training?.deviceHours ?? 0) * 2, accuracy: 1e-9)
    }

    func testEstimateNonFiniteNumbersAreRefusedNamingTheKey() throws {
        var json = EstimateJSON(try estimate(tokens: 1e10, price: 1))
        json.throughput.modelFlopsUtilization = .infinity
        XCTAssertThrowsError(try json.encoded()) { error in
            guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(context.codingPath.map(\.stringValue), ["throughput", "model_flops_utilization"])
        }
        json = EstimateJSON(try estimate(tokens: 1e10, price: 1))
        json.training?.cost = .nan
        XCTAssertThrowsError(try json.encoded()) { error in
            guard case EncodingError.invalidValue(_, let context) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(context.codingPath.map(\.stringValue), ["training", "cost"])
        }
    }
}
