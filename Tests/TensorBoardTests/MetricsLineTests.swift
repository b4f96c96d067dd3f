import Foundation
import Metrics
import XCTest

/// metrics.jsonl's line: written in a fixed key order and the shortest exact form, read back to the same values;
/// NaN and infinities written as null.
final class MetricsLineTests: XCTestCase {
    func testEachRecordIsWrittenExactlyAndReadsBack() throws {
        let cases: [(MetricsLine, String)] = [
            (MetricsLine(step: 3, .training(.init(trainLoss: 3.1234567, lr: 0.00030000000000000003, gradNorm: 1.5,
                                                  tokensPerSecond: 12345, mfu: nil))),
             #"{"step":3,"train_loss":3.1234567,"lr":0.00030000000000000003,"grad_norm":1.5,"tokens_per_sec":12345,"mfu":null}"#),
            (MetricsLine(step: 4, .training(.init(trainLoss: 3, lr: 1e-05, gradNorm: 2, tokensPerSecond: 1e16, mfu: 0.1234,
                                                  communicationSeconds: 0.000012))),
             #"{"step":4,"train_loss":3.0,"lr":1e-05,"grad_norm":2,"tokens_per_sec":1e+16,"mfu":0.1234,"comm_seconds":1.2e-05}"#),
            (MetricsLine(step: 5, .validation(loss: 2.75)), #"{"step":5,"val_loss":2.75}"#),
            (MetricsLine(step: 6, .event(.init(kind: "spike", loss: 1234.5, gradNorm: 9.5, action: "rollback",
                                               reason: "loss_sigmas", rolledBackTo: 4, batchesPassedOver: 2))),
             #"{"step":6,"event":"spike","loss":1234.5,"grad_norm":9.5,"action":"rollback","reason":"loss_sigmas","rolled_back_to":4,"batches_passed_over":2}"#),
            (MetricsLine(step: 8, .health(.init(maxAbsLogit: 7.5, blockInputMaxAbs: [1.5, 2],
                                                gradNorms: [.init("wte", 0.25), .init("lm_head", 0.5)],
                                                updateRatios: [.init("wte", 0.001), .init("lm_head", 0.002)]))),
             #"{"step":8,"health":{"max_abs_logit":7.5,"block_input_max_abs":{"0":1.5,"1":2},"grad_norm":{"wte":0.25,"lm_head":0.5},"update_ratio":{"wte":0.001,"lm_head":0.002}}}"#),
        ]
        for (line, text) in cases {
            XCTAssertEqual(try line.jsonLine(), text)
            let back = try XCTUnwrap(try MetricsLine(jsonLine: text))
            XCTAssertEqual(back.step, line.step)
            XCTAssertEqual(back.extra, [:])
            if case .health = line.record {
                // Read back, a health line's tensors come in sorted order.
                XCTAssertEqual(back.numbers.map(\.key), line.numbers.map(\.key))
                XCTAssertTrue(back.numbers.elementsEqual(line.numbers) { $0 == $1 })
            } else {
                XCTAssertEqual(back, line, text)
            }
        }
    }

    func testValuesThatAreNotFiniteAreWrittenAsNull() throws {
        let line = MetricsLine(step: 9, .event(.init(kind: "spike", loss: .nan, gradNorm: .infinity, action: "stop",
                                                     reason: "non_finite_loss")))
        let text = try line.jsonLine()
        XCTAssertEqual(text, #"{"step":9,"event":"spike","loss":null,"grad_norm":null,"action":"stop","reason":"non_finite_loss"}"#)
        let back = try XCTUnwrap(try MetricsLine(jsonLine: text))
        XCTAssertEqual(back.record, .event(.init(kind: "spike", action: "stop", reason: "non_finite_loss")))
    }

    func testLinesThatAreNotMetricsAreNotRead() throws {
        for text in ["", "not json", #"{"train_loss":3}"#, #"{"step":1.5}"#, #"{"step":4,"train_lo"#, "[1,2]"] {
            XCTAssertNil(try MetricsLine(jsonLine: text), text)
        }
    }

    /// A sweep run's final loss (gpt-plan fit, gpt-train sweep): the validation line at the last step (moved here
    /// from the planner's `FinalLoss`, which read metrics.jsonl by hand).
    func testFinalLossIsTheValidationAtTheLastStep() throws {
        let text = """
        {"step":1,"loss":4.0,"lr":0.001}
        {"step":10,"val_loss":3.5}
        {"step":20,"val_loss":3.25}
        """
        XCTAssertEqual(try MetricsFile(path: "m", text: text).validationLoss(atStep: 20), 3.25)
        XCTAssertNil(try MetricsFile(path: "m", text: text).validationLoss(atStep: 30))
    }
}
