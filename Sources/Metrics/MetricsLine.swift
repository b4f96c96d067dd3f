import Foundation

/// One line of a run's metrics.jsonl, the only type that writes one (`jsonLine()`) and reads one
/// (`init(jsonLine:)`). Every line is a JSON object with the integer `step` (optimizer updates done, counted from 1)
/// and one record:
///
///     {"step":…,"train_loss":…,"lr":…,"grad_norm":…,"tokens_per_sec":…,"mfu":…}        training (+ "comm_seconds")
///     {"step":…,"val_loss":…}                                                          validation
///     {"step":…,"event":"spike","loss":…,"grad_norm":…,"action":…,"reason":…}          an event (a rollback adds
///                                                                  "rolled_back_to" and "batches_passed_over")
///     {"step":…,"health":{"max_abs_logit":…,"block_input_max_abs":{"0":…},"grad_norm":{tensor:…},"update_ratio":{tensor:…}}}
///
/// Keys are written in this order. Numbers are written in the shortest form that reads back as the same value
/// (a float32 for the losses of training and event lines, else a double; an integral double as an integer), so
/// two runs compare bit for bit. NaN and infinities are not JSON: a value that is not finite, or not known, is
/// written as `null` and reads back as nil.
///
/// Reading is for this format and the lines other tools add: keys this type does not know keep their numbers in
/// `extra` (nested objects as "outer/inner"). A number beyond float32's range (±3.4e38) is refused
/// (`ReadError.outOfRange`): TensorBoard's scalars are float32 and the plots' axes cannot place it, and gpt-train
/// never writes one for a loss (it writes null when the loss is not finite).
public struct MetricsLine: Sendable, Equatable, Codable {
    public var step: Int
    public var record: Record
    /// Numbers under keys this type does not know, nested objects flattened as "outer/inner". Read, never written.
    public var extra: [String: Double]

    public enum Record: Sendable, Equatable {
        case training(Training)
        case validation(loss: Double?)
        case event(Event)
        case health(Health)
        /// A line with a step and none of the records above (its numbers are in `extra`).
        case other
    }

    public struct Training: Sendable, Equatable {
        public var trainLoss: Float?
        public var lr: Double?
        /// Global gradient norm before clipping.
        public var gradNorm: Double?
        public var tokensPerSecond: Double?
        /// Model FLOP utilization (written as null when unknown).
        public var mfu: Double?
        /// Seconds in collectives during the step; written only when known (data-parallel runs).
        public var communicationSeconds: Double?

        public init(trainLoss: Float?, lr: Double?, gradNorm: Double?, tokensPerSecond: Double? = nil, mfu: Double? = nil,
                    communicationSeconds: Double? = nil) {
            self.trainLoss = trainLoss
            self.lr = lr
            self.gradNorm = gradNorm
            self.tokensPerSecond = tokensPerSecond
            self.mfu = mfu
            self.communicationSeconds = communicationSeconds
        }
    }

    /// Something that happened at a step, such as a loss spike (`kind` "spike").
    public struct Event: Sendable, Equatable {
        public var kind: String
        public var loss: Float?
        public var gradNorm: Double?
        public var action: String?
        public var reason: String?
        /// For a rollback: the step the run went back to, and the micro-batches passed over.
        public var rolledBackTo: Int?
        public var batchesPassedOver: Int?

        public init(kind: String, loss: Float? = nil, gradNorm: Double? = nil, action: String? = nil, reason: String? = nil,
                    rolledBackTo: Int? = nil, batchesPassedOver: Int? = nil) {
            self.kind = kind
            self.loss = loss
            self.gradNorm = gradNorm
            self.action = action
            self.reason = reason
            self.rolledBackTo = rolledBackTo
            self.batchesPassedOver = batchesPassedOver
        }
    }

    /// A named number, in the order written.
    public struct Named: Sendable, Equatable {
        public var name: String
        public var value: Double?

        public init(_ name: String, _ value: Double?) {
            self.name = name
            self.value = value
        }
    }

    /// The health signals of one step (the trainer's `HealthSignals`): per block the largest |activation| entering
    /// it, per parameter tensor the gradient norm and the update-to-weight ratio.
    public struct Health: Sendable, Equatable {
        public var maxAbsLogit: Double?
        public var blockInputMaxAbs: [Named]
        public var gradNorms: [Named]
        public var updateRatios: [Named]

        public init(maxAbsLogit: Double?, blockInputMaxAbs: [Double], gradNorms: [Named], updateRatios: [Named]) {
            self.maxAbsLogit = maxAbsLogit
            self.blockInputMaxAbs = blockInputMaxAbs.enumerated().map { Named("\($0.offset)", $0.element) }
            self.gradNorms = gradNorms
            self.updateRatios = updateRatios
        }

        init(maxAbsLogit: Double?, blocks: [Named], gradNorms: [Named], updateRatios: [Named]) {
            self.maxAbsLogit = maxAbsLogit
            blockInputMaxAbs = blocks
            self.gradNorms = gradNorms
            self.updateRatios = updateRatios
        }
    }

    public init(step: Int, _ record: Record, extra: [String: Double] = [:]) {
        self.step = step
        self.record = record
        self.extra = extra
    }

    // MARK: Numbers, flattened

    /// Every finite number of the line but `step`, by key (nested objects as "outer/inner"), sorted by key:
    /// what exports (TensorBoard) and generic readers use.
    public var numbers: [(key: String, value: Double)] {
        var out: [(String, Double)] = []
        func add(_ key: String, _ value: Double?) { if let value, value.isFinite { out.append((key, value)) } }
        switch record {
        case .training(let t):
            add("train_loss", t.trainLoss.map(Double.init))
            add("lr", t.lr)
            add("grad_norm", t.gradNorm)
            add("tokens_per_sec", t.tokensPerSecond)
            add("mfu", t.mfu)
            add("comm_seconds", t.communicationSeconds)
        case .validation(let loss):
            add("val_loss", loss)
        case .event(let e):
            add("loss", e.loss.map(Double.init))
            add("grad_norm", e.gradNorm)
            add("rolled_back_to", e.rolledBackTo.map(Double.init))
            add("batches_passed_over", e.batchesPassedOver.map(Double.init))
        case .health(let h):
            add("health/max_abs_logit", h.maxAbsLogit)
            for (group, values) in [("block_input_max_abs", h.blockInputMaxAbs), ("grad_norm", h.gradNorms),
                                    ("update_ratio", h.updateRatios)] {
                for v in values { add("health/\(group)/\(v.name)", v.value) }
            }
        case .other:
            break
        }
        for (key, value) in extra { add(key, value) }
        return out.sorted { $0.0 < $1.0 }
    }

    /// The event's kind, for an event line.
    public var eventKind: String? {
        if case .event(let e) = record { return e.kind }
        return nil
    }

    // MARK: Writing

    /// The line as metrics.jsonl holds it (without the newline).
    public func jsonLine() throws -> String {
        try OrderedJSONEncoder.encode(self)
    }

    private struct Key: CodingKey {
        var stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        func number<T: BinaryFloatingPoint & Encodable>(_ value: T?, _ key: String, in c: inout KeyedEncodingContainer<Key>) throws {
            if let value, value.isFinite { try c.encode(value, forKey: Key(key)) } else { try c.encodeNil(forKey: Key(key)) }
        }
        try c.encode(step, forKey: Key("step"))
        switch record {
        case .training(let t):
            try number(t.trainLoss, "train_loss", in: &c)
            try number(t.lr, "lr", in: &c)
            try number(t.gradNorm, "grad_norm", in: &c)
            try number(t.tokensPerSecond, "tokens_per_sec", in: &c)
            try number(t.mfu, "mfu", in: &c)
            if let comm = t.communicationSeconds { try number(comm, "comm_seconds", in: &c) }
        case .validation(let loss):
            try number(loss, "val_loss", in: &c)
        case .event(let e):
            try c.encode(e.kind, forKey: Key("event"))
            try number(e.loss, "loss", in: &c)
            try number(e.gradNorm, "grad_norm", in: &c)
            if let action = e.action { try c.encode(action, forKey: Key("action")) }
            if let reason = e.reason { try c.encode(reason, forKey: Key("reason")) }
            if let back = e.rolledBackTo {
                try c.encode(back, forKey: Key("rolled_back_to"))
                try c.encode(e.batchesPassedOver ?? 0, forKey: Key("batches_passed_over"))
            }
        case .health(let h):
            var inner = c.nestedContainer(keyedBy: Key.self, forKey: Key("health"))
            try number(h.maxAbsLogit, "max_abs_logit", in: &inner)
            for (group, values) in [("block_input_max_abs", h.blockInputMaxAbs), ("grad_norm", h.gradNorms),
                                    ("update_ratio", h.updateRatios)] {
                var object = inner.nestedContainer(keyedBy: Key.self, forKey: Key(group))
                for v in values { try number(v.value, v.name, in: &object) }
            }
        case .other:
            break
        }
    }

    // MARK: Reading

    /// Why a line that is metrics cannot be read.
    public enum ReadError: Error, Equatable, CustomStringConvertible {
        /// A number beyond float32's range.
        case outOfRange(key: String, value: Double)

        public var description: String {
            switch self {
            case .outOfRange(let key, let value):
                return "\(key) = \(value) is beyond float32's range (±3.4e38), which TensorBoard's scalars and the "
                    + "plots hold (gpt-train writes null for a value that is not finite, never such a number). "
                    + "Fix: correct the value or write null"
            }
        }
    }

    /// Reads one line. Returns nil for a line that is not metrics (not a JSON object, or without an integer
    /// `step`: a blank line, a half-written last line); throws `ReadError` for metrics it cannot hold.
    public init?(jsonLine text: some StringProtocol) throws {
        guard let data = text.data(using: .utf8),
              let object = try? JSONDecoder().decode(JSONValue.self, from: data), case .object(let fields) = object,
              case .number(let s)? = fields["step"], s == s.rounded(), abs(s) < 1e15 else { return nil }
        try self.init(step: Int(s), fields: fields)
    }

    public init(from decoder: any Decoder) throws {
        guard case .object(let fields) = try JSONValue(from: decoder), case .number(let s)? = fields["step"],
              s == s.rounded(), abs(s) < 1e15 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a metrics line is an object with an integer step"))
        }
        try self.init(step: Int(s), fields: fields)
    }

    private init(step: Int, fields: [String: JSONValue]) throws {
        var rest = fields
        rest["step"] = nil
        // Every number, checked before any is used.
        var flat: [(String, Double)] = []
        JSONValue.object(rest).flatten(prefix: "", into: &flat)
        for (key, value) in flat where !Float(value).isFinite {
            throw ReadError.outOfRange(key: key, value: value)
        }
        func take(_ key: String) -> JSONValue? { defer { rest[key] = nil }; return rest[key] }
        func double(_ key: String) -> Double? { take(key)?.number }
        func int(_ key: String) -> Int? { double(key).flatMap { $0 == $0.rounded() && abs($0) < 1e15 ? Int($0) : nil } }
        func string(_ key: String) -> String? { if case .string(let s)? = take(key) { return s } else { return nil } }
        func named(_ value: JSONValue?) -> [Named] {
            guard case .object(let o)? = value else { return [] }
            return o.keys.sorted { a, b in
                if let x = Int(a), let y = Int(b) { return x < y }
                return a < b
            }.map { Named($0, o[$0]?.number) }
        }
        let record: Record
        if case .string(let kind)? = rest["event"] {
            rest["event"] = nil
            record = .event(Event(kind: kind, loss: double("loss").map(Float.init), gradNorm: double("grad_norm"),
                                  action: string("action"), reason: string("reason"), rolledBackTo: int("rolled_back_to"),
                                  batchesPassedOver: int("batches_passed_over")))
        } else if rest.keys.contains("val_loss") {
            record = .validation(loss: double("val_loss"))
        } else if rest.keys.contains("train_loss") {
            record = .training(Training(trainLoss: double("train_loss").map(Float.init), lr: double("lr"),
                                        gradNorm: double("grad_norm"), tokensPerSecond: double("tokens_per_sec"),
                                        mfu: double("mfu"), communicationSeconds: double("comm_seconds")))
        } else if case .object(var h)? = rest["health"],
                  h.keys.contains("max_abs_logit") {
            rest["health"] = nil
            let logit = h["max_abs_logit"]?.number
            let blocks = named(h["block_input_max_abs"]), norms = named(h["grad_norm"]), ratios = named(h["update_ratio"])
            for key in ["max_abs_logit", "block_input_max_abs", "grad_norm", "update_ratio"] { h[key] = nil }
            if !h.isEmpty { rest["health"] = .object(h) }
            record = .health(Health(maxAbsLogit: logit, blocks: blocks, gradNorms: norms, updateRatios: ratios))
        } else {
            record = .other
        }
        var extra: [(String, Double)] = []
        JSONValue.object(rest).flatten(prefix: "", into: &extra)
        self.init(step: step, record, extra: Dictionary(extra, uniquingKeysWith: { a, _ in a }))
    }
}

/// Any JSON value, as a metrics line's fields are read.
enum JSONValue: Decodable, Equatable {
    case object([String: JSONValue])
    case array([JSONValue])
    case number(Double)
    case string(String)
    case bool(Bool)
    case null

    init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: AnyKey.self) {
            var o: [String: JSONValue] = [:]
            for key in c.allKeys { o[key.stringValue] = try c.decode(JSONValue.self, forKey: key) }
            self = .object(o)
        } else if var c = try? decoder.unkeyedContainer() {
            var a: [JSONValue] = []
            while !c.isAtEnd { a.append(try c.decode(JSONValue.self)) }
            self = .array(a)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else {
                self = .string(try c.decode(String.self))
            }
        }
    }

    var number: Double? { if case .number(let d) = self { return d } else { return nil } }

    /// The numbers of an object, nested objects as "outer/inner" (keys in sorted order).
    func flatten(prefix: String, into values: inout [(String, Double)]) {
        guard case .object(let o) = self else { return }
        for key in o.keys.sorted() {
            let name = prefix.isEmpty ? key : prefix + "/" + key
            switch o[key]! {
            case .object: o[key]!.flatten(prefix: name, into: &values)
            case .number(let d): values.append((name, d))
            default: break
            }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }
}
