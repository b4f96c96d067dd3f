import Durable
import Foundation

/// The checkpoint format, version 1 (docs/checkpoint-format.md describes it for other readers):
///
/// - root attributes `format_version` (int64), `created_by`, `blas_core` (strings);
/// - `/model/<name>`: every parameter, float32, nanoGPT's names and shapes;
/// - `/optimizer/m/<name>`, `/optimizer/v/<name>`: AdamW's moments, same names and shapes;
/// - `/state/...`: step, tokens seen, sampler RNG words and windows drawn, optimizer steps, seed, thread count,
///   data path;
/// - `/metrics/...`: best and last validation loss, last training loss (NaN when there is none yet);
/// - `/recipe`: the recipe's TOML text; `/tokenizer`: the tokenizer's JSON.
///
/// Every dataset is chunked with the Fletcher-32 checksum filter.
public enum CheckpointFormat {
    public static let version: Int64 = 1
}

/// A tensor to save or load: its name, PyTorch shape, and offset in the flat buffers.
public struct CheckpointTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public init(name: String, shape: [Int], offset: Int) {
        self.name = name
        self.shape = shape
        self.offset = offset
    }
    var count: Int { shape.reduce(1, *) }
}

/// Everything besides tensors that a run needs to continue exactly.
/// What loss-spike recovery keeps across a resume, stored under /state as `skipped_steps`, `recoveries`,
/// `lr_factor_until` (int64) and `spike_losses`, `spike_grad_norms` (float64, `capacity` long, oldest first, NaN
/// where the detector's window is not yet full).
public struct CheckpointStability: Sendable, Equatable {
    /// Steps whose update was discarded (so AdamW has taken `step - skippedSteps` steps).
    public var skippedSteps: Int
    /// Spikes skipped or rolled back so far.
    public var recoveries: Int
    /// The learning rate is lowered for steps up to and including this one (0: not lowered).
    public var lrFactorUntil: Int
    /// The detector's window, oldest first (at most `capacity` each, as many losses as norms).
    public var losses: [Double]
    public var gradNorms: [Double]
    public var capacity: Int

    public init(skippedSteps: Int, recoveries: Int, lrFactorUntil: Int, losses: [Double], gradNorms: [Double], capacity: Int) {
        self.skippedSteps = skippedSteps
        self.recoveries = recoveries
        self.lrFactorUntil = lrFactorUntil
        self.losses = losses
        self.gradNorms = gradNorms
        self.capacity = capacity
    }

    static let members = ["skipped_steps", "recoveries", "lr_factor_until", "spike_losses", "spike_grad_norms"]
}

public struct CheckpointState: Sendable, Equatable {
    public var step: Int
    public var tokensSeen: Int
    public var samplerRNG: [UInt64]
    public var windowsDrawn: Int
    public var optimizerSteps: Int
    public var seed: Int
    public var threads: Int
    public var blasCore: String
    public var dataPath: String
    public var bestValLoss: Double?
    public var lastValLoss: Double?
    public var lastTrainLoss: Double?
    /// The spike detector and recovery counters (nil in checkpoints written before [stability] existed).
    public var stability: CheckpointStability?

    public init(step: Int, tokensSeen: Int, samplerRNG: [UInt64], windowsDrawn: Int, optimizerSteps: Int, seed: Int,
                threads: Int, blasCore: String, dataPath: String, bestValLoss: Double?, lastValLoss: Double?,
                lastTrainLoss: Double?, stability: CheckpointStability? = nil) {
        self.stability = stability
        self.step = step
        self.tokensSeen = tokensSeen
        self.samplerRNG = samplerRNG
        self.windowsDrawn = windowsDrawn
        self.optimizerSteps = optimizerSteps
        self.seed = seed
        self.threads = threads
        self.blasCore = blasCore
        self.dataPath = dataPath
        self.bestValLoss = bestValLoss
        self.lastValLoss = lastValLoss
        self.lastTrainLoss = lastTrainLoss
    }
}

/// A checkpoint that cannot be used: the file and what is wrong with it.
public struct CheckpointError: Error, CustomStringConvertible {
    public var file: String
    public var reason: String
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}

public enum CheckpointWriter {
    /// Writes a complete checkpoint to a temporary file next to `path`, fsyncs it, and renames it into place:
    /// `path` is either absent, the old file, or the complete new one, whenever the process dies.
    /// `formatVersion` is for tests of what readers do with other versions.
    public static func write(to path: String, tensors: [CheckpointTensor], parameters: UnsafePointer<Float>,
                             m: UnsafePointer<Float>, v: UnsafePointer<Float>, state: CheckpointState,
                             recipe: String, tokenizer: String, formatVersion: Int64 = CheckpointFormat.version) throws {
        let temporary = AtomicFile.temporaryPath(for: path)
        let directory = AtomicFile.directory(of: path)
        // At least the tensors and strings must fit: refuse before HDF5 starts when they cannot. (A disk that fills
        // up during the write still fails cleanly below; this only gives the common case a plain message.)
        let needed = 3 * 4 * tensors.reduce(0) { $0 + $1.count } + recipe.utf8.count + tokenizer.utf8.count
        if let free = AtomicFile.availableBytes(in: directory.isEmpty ? "." : directory), free < needed {
            throw CheckpointError(file: path, reason: "could not be written: it needs at least \(needed) bytes and the "
                                  + "file system holding it has \(free) free. \(Self.spaceFix)")
        }
        do {
            let file = try HDF5File.create(temporary)
            try file.writeAttribute("format_version", formatVersion)
            try file.writeAttribute("created_by", "swift-gpt gpt-train")
            try file.writeAttribute("blas_core", state.blasCore)
            for group in ["/model", "/optimizer", "/optimizer/m", "/optimizer/v", "/state", "/metrics"] {
                try file.createGroup(group)
            }
            for t in tensors {
                try file.writeFloats("/model/\(t.name)", shape: t.shape, parameters + t.offset)
                try file.writeFloats("/optimizer/m/\(t.name)", shape: t.shape, m + t.offset)
                try file.writeFloats("/optimizer/v/\(t.name)", shape: t.shape, v + t.offset)
            }
            try file.writeInt64s("/state/step", [Int64(state.step)])
            try file.writeInt64s("/state/tokens_seen", [Int64(state.tokensSeen)])
            try file.writeUInt64s("/state/sampler_rng", state.samplerRNG)
            try file.writeInt64s("/state/windows_drawn", [Int64(state.windowsDrawn)])
            try file.writeInt64s("/state/optimizer_steps", [Int64(state.optimizerSteps)])
            try file.writeInt64s("/state/seed", [Int64(state.seed)])
            try file.writeInt64s("/state/threads", [Int64(state.threads)])
            try file.writeString("/state/data_path", state.dataPath)
            if let st = state.stability {
                try file.writeInt64s("/state/skipped_steps", [Int64(st.skippedSteps)])
                try file.writeInt64s("/state/recoveries", [Int64(st.recoveries)])
                try file.writeInt64s("/state/lr_factor_until", [Int64(st.lrFactorUntil)])
                let width = max(st.capacity, st.losses.count, 1)
                let pad = { (values: [Double]) in values + [Double](repeating: .nan, count: width - values.count) }
                try file.writeDoubles("/state/spike_losses", pad(st.losses))
                try file.writeDoubles("/state/spike_grad_norms", pad(st.gradNorms))
            }
            try file.writeDoubles("/metrics/best_val_loss", [state.bestValLoss ?? .nan])
            try file.writeDoubles("/metrics/last_val_loss", [state.lastValLoss ?? .nan])
            try file.writeDoubles("/metrics/last_train_loss", [state.lastTrainLoss ?? .nan])
            try file.writeString("/recipe", recipe)
            try file.writeString("/tokenizer", tokenizer)
            try file.close()
            try AtomicFile.sync(path: temporary)
            try AtomicFile.commit(temporary: temporary, to: path)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CheckpointError(file: path, reason: "could not be written: \(error). \(spaceFix)")
        }
    }

    static let spaceFix = "Fix: free space (or permissions) where it goes, or lower [checkpoint] keep; the checkpoints "
        + "already written are intact, and gpt-train --resume continues from the newest"
}

/// An open checkpoint. Opening it checks what needs no recipe: the format version, the groups and the names
/// in `/state` and `/metrics` (nothing missing, nothing extra), every state and metric dataset's exact type,
/// shape and checksum, and the ranges of the state's values. `validate(against:)` checks the rest against the
/// recipe (CheckpointValidation.swift); tensors are read on demand, each checked for type, shape, checksum and
/// finiteness as it is read.
public final class CheckpointReader {
    public let path: String
    public let state: CheckpointState
    public let recipe: String
    public let tokenizer: String
    let file: HDF5File

    public init(path: String) throws {
        self.path = path
        do {
            let file = try HDF5File.open(path)
            let version = try file.readIntAttribute("format_version")
            guard version == CheckpointFormat.version else {
                throw CheckpointError(file: path, reason: "checkpoint format version \(version); this build reads version \(CheckpointFormat.version)")
            }
            try Self.checkMembers(file, "/", CheckpointLayout.rootMembers)
            try Self.checkMembers(file, "/optimizer", ["m", "v"])
            try Self.checkMembers(file, "/state", CheckpointLayout.stateMembers, optional: CheckpointStability.members)
            try Self.checkMembers(file, "/metrics", CheckpointLayout.metricsMembers)
            state = try Self.readState(file)
            recipe = try file.readString("/recipe")
            tokenizer = try file.readString("/tokenizer")
            self.file = file
            try Self.checkRanges(state, file: file)
        } catch let error as CheckpointError {
            throw error
        } catch let error as HDF5Error {
            throw CheckpointError.damaged(path, error.reason)
        }
    }

    /// Refuses a group whose members are not exactly `expected`.
    /// `optional` names are a set: all of them or none (a format extension older files do not have).
    static func checkMembers(_ file: HDF5File, _ group: String, _ expected: [String], optional: [String] = []) throws {
        let found = try file.members(of: group)
        let expected = optional.contains(where: found.contains) ? expected + optional : expected
        let missing = Set(expected).subtracting(found), extra = Set(found).subtracting(expected)
        guard missing.isEmpty, extra.isEmpty else {
            let place = group == "/" ? "/" : group + "/"
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing " + missing.sorted().map { place + $0 }.joined(separator: ", ")) }
            if !extra.isEmpty { parts.append("unexpected " + extra.sorted().map { place + $0 }.joined(separator: ", ")) }
            throw file.fail("\(group) does not hold what this format writes: " + parts.joined(separator: "; "))
        }
    }

    private static func readState(_ file: HDF5File) throws -> CheckpointState {
        func one(_ name: String) throws -> Int {
            try file.verify(name, type: "int64", shape: [1])
            return Int(try file.readInt64s(name)[0])
        }
        func metric(_ name: String) throws -> Double? {
            try file.verify(name, type: "float64", shape: [1])
            let v = try file.readDoubles(name)[0]
            return v.isNaN ? nil : v
        }
        try file.verify("/state/sampler_rng", type: "uint64", shape: [4])
        let rng = try file.readUInt64s("/state/sampler_rng")
        var stability: CheckpointStability?
        if try file.members(of: "/state").contains("recoveries") {
            let width = try file.verify("/state/spike_losses", type: "float64")
            guard width.count == 1, width[0] >= 1 else { throw file.fail("/state/spike_losses has shape \(width), expected [n] with n ≥ 1") }
            try file.verify("/state/spike_grad_norms", type: "float64", shape: width)
            let losses = try file.readDoubles("/state/spike_losses"), norms = try file.readDoubles("/state/spike_grad_norms")
            let filled = losses.prefix { !$0.isNaN }.count
            guard losses.dropFirst(filled).allSatisfy(\.isNaN), norms.prefix(filled).allSatisfy({ $0.isFinite && $0 >= 0 }),
                  norms.dropFirst(filled).allSatisfy(\.isNaN), losses.prefix(filled).allSatisfy(\.isFinite) else {
                throw file.fail("/state/spike_losses and /state/spike_grad_norms must hold finite values (norms ≥ 0) "
                                + "followed by NaN padding, at the same places")
            }
            stability = CheckpointStability(
                skippedSteps: try one("/state/skipped_steps"), recoveries: try one("/state/recoveries"),
                lrFactorUntil: try one("/state/lr_factor_until"), losses: Array(losses.prefix(filled)),
                gradNorms: Array(norms.prefix(filled)), capacity: width[0])
        }
        return CheckpointState(
            step: try one("/state/step"), tokensSeen: try one("/state/tokens_seen"), samplerRNG: rng,
            windowsDrawn: try one("/state/windows_drawn"), optimizerSteps: try one("/state/optimizer_steps"),
            seed: try one("/state/seed"), threads: try one("/state/threads"),
            blasCore: try file.readStringAttribute("blas_core"), dataPath: try file.readString("/state/data_path"),
            bestValLoss: try metric("/metrics/best_val_loss"), lastValLoss: try metric("/metrics/last_val_loss"),
            lastTrainLoss: try metric("/metrics/last_train_loss"), stability: stability)
    }

    /// The names of the saved model tensors and their shapes.
    public func modelTensors() throws -> [(name: String, shape: [Int])] {
        do {
            return try file.members(of: "/model").map { ($0, try file.shape("/model/\($0)")) }
        } catch let error as HDF5Error {
            throw CheckpointError.damaged(path, error.reason)
        }
    }

    /// Reads the weights (and, when `m` and `v` are given, the AdamW moments) of `tensors`, checking every
    /// tensor's type (float32), shape, checksum and values (finite; second moments not negative).
    public func read(tensors: [CheckpointTensor], parameters: UnsafeMutablePointer<Float>,
                     m: UnsafeMutablePointer<Float>? = nil, v: UnsafeMutablePointer<Float>? = nil) throws {
        for t in tensors {
            try readTensor(.model, t, into: parameters + t.offset)
            if let m { try readTensor(.firstMoment, t, into: m + t.offset) }
            if let v { try readTensor(.secondMoment, t, into: v + t.offset) }
        }
    }
}
