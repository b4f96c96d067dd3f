import Foundation
import Tokenizers

/// BPE training and encoding speed on a corpus held in memory (file reading is left out of the timings).
public enum TokenizerBenchmark {
    public struct Result: Sendable {
        public var files: Int
        public var bytes: Int
        public var vocabSize: Int
        public var trainSeconds: Double
        public var encodeSeconds: Double
        public var tokens: Int
        public var roundTrip: Bool
    }

    public static func run(inputs: [String], vocabSize: Int) throws -> Result {
        let files = try TextSources.files(inputs)
        let texts = try files.map { path -> [UInt8] in
            let handle = try TextSources.open(path)
            defer { try? handle.close() }
            do { return Array(try handle.readToEnd() ?? Data()) } catch { throw CorpusError(path, "cannot be read: \(error)") }
        }
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
        let t0 = now()
        var trainer = BPETrainer()
        for text in texts { trainer.add(text) }
        let tokenizer = try trainer.train(vocabSize: vocabSize)
        let t1 = now()
        var encoder = BPEEncoder(tokenizer)
        let encoded = texts.map { encoder.encode($0) }
        let t2 = now()
        let exact = zip(texts, encoded).allSatisfy { tokenizer.decode($0.1) == $0.0 }
        return Result(files: files.count, bytes: texts.reduce(0) { $0 + $1.count }, vocabSize: tokenizer.vocabSize,
                      trainSeconds: t1 - t0, encodeSeconds: t2 - t1, tokens: encoded.reduce(0) { $0 + $1.count },
                      roundTrip: exact)
    }
}
