import CLISupport
import Foundation
import Planner

/// Reads a fit.json written by `gpt-plan fit` as a loss law the planner can allocate with.
func loadFitFile(_ path: String) throws -> ChinchillaFit {
    let contents: Data?
    do { contents = try InputFile.read(path, fix: "give a fit.json written by gpt-plan fit", status: 2) } catch {
        throw CommandFailure.usage("gpt-plan: --fit \(error.message)")
    }
    guard let data = contents else {
        throw CommandFailure.usage("gpt-plan: --fit \(path): no such file (write one with gpt-plan fit SWEEP/)")
    }
    let file: ScalingLawFitFile
    do { file = try JSONDecoder().decode(ScalingLawFitFile.self, from: data) } catch {
        throw CommandFailure.usage("gpt-plan: --fit \(path): not a fit.json from gpt-plan fit (\(describe(error)))")
    }
    guard file.formatVersion == ScalingLawFitFile.currentVersion else {
        throw CommandFailure.usage("gpt-plan: --fit \(path): format_version \(file.formatVersion); this gpt-plan reads "
                                   + "\(ScalingLawFitFile.currentVersion). Fix: refit with gpt-plan fit")
    }
    let p = file.approach3
    for (field, value) in [("E", p.E), ("A", p.A), ("B", p.B), ("alpha", p.alpha), ("beta", p.beta)]
        where !(value.isFinite && value > 0) {
        throw CommandFailure.usage("gpt-plan: --fit \(path): approach_3.\(field) is \(value); it must be a positive number. "
                                   + "Fix: refit with gpt-plan fit")
    }
    return file.law(name: AllocationRule.measuredName, source: path)
}

/// A decoding error in words: the key path and what was wrong.
func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let context):
        return "missing \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
         DecodingError.dataCorrupted(let context):
        let path = context.codingPath.map(\.stringValue).joined(separator: ".")
        return (path.isEmpty ? "" : "\(path): ") + context.debugDescription
    default: return "\(error)"
    }
}
