import Compute
import CLISupport
import GPT
import Recipe
import Runtime

/// What gpt-train refuses before it builds a run, beyond the recipe's own checks (`RecipeLoader.loadValid`): the
/// layouts the CPU trainer does not implement (tensor and pipeline parallelism, ZeRO beyond stage 1; every
/// `training.recompute` mode is implemented), and a run that does not fit this machine's memory. (The Trainer
/// library trusts its caller to have asked.)
enum CPUTrainingCheck {
    /// Throws the first problem, naming the recipe key and the fix.
    /// - Parameters: `products`: how a bf16 recipe's products will run (nil: `BF16Products.best`);
    ///   `ranksHere`: the data-parallel ranks on this machine, each with a replica.
    static func check(_ recipe: Recipe, products: BF16Products?, ranksHere: Int) throws {
        // gpt-train runs data parallelism (and ZeRO-1) only; the planner's other layouts are for GPU clusters.
        for (key, value) in [("tensor_parallel", recipe.training.tensorParallel), ("pipeline_parallel", recipe.training.pipelineParallel)]
        where value > 1 {
            throw DataError(key: "training.\(key)", "is \(value), but gpt-train trains data parallel only (one model replica a process)",
                            fix: "set training.\(key) = 1 (and training.devices to the data-parallel processes), or run this layout on a GPU framework")
        }
        if recipe.training.zeroStage > 1 {
            throw DataError(key: "training.zero_stage", "is \(recipe.training.zeroStage), but gpt-train implements ZeRO stages 0 and 1",
                            fix: "set training.zero_stage = 1 (optimizer state sharded over the data-parallel ranks) or 0")
        }
        // Every rank on this machine holds a replica (and, without ZeRO, all of AdamW's moments).
        let products = recipe.training.precision == .bf16 ? products ?? .best : nil
        let needed = recipe.shape.trainingMemoryBytes(microBatch: recipe.training.microBatch, context: recipe.training.seqLen,
                                                      bf16Copies: products == .native, roundedWeights: products == .emulated,
                                                      recompute: recipe.training.recompute)
            * Double(ranksHere)
        guard needed < 0.9 * Double(CPU.memoryBytes) else {
            throw DataError(key: "training.micro_batch", "the run needs \(bytes(needed)) for weights, gradients, AdamW "
                            + "moments and one micro-batch's activations (recompute \"\(recipe.training.recompute.rawValue)\")\(ranksHere > 1 ? " on each of the \(ranksHere) ranks here" : ""); "
                            + "this machine has \(bytes(Double(CPU.memoryBytes)))",
                            fix: "lower training.micro_batch (and raise grad_accum to keep the batch), set training.recompute = \"full\", or train a smaller model")
        }
    }

    /// What a bf16 recipe's products run on here, in words (nil for fp32).
    static func productsNote(_ products: BF16Products?) -> String? {
        switch products {
        case .emulated? where BF16Matmul.isAvailable:
            return "training.precision = \"bf16\": this CPU's native bf16 products (oneDNN "
                + "\(BF16Matmul.implementation ?? "?")) are measured slower than its fp32 sgemm (gpt-bench ceiling), "
                + "so bf16 products are emulated exactly on the sgemm (the same bf16 operands, fp32 accumulation), "
                + "a little slower than fp32; gpt-plan writes precision = \"fp32\" for this machine"
        case .emulated?:
            return "training.precision = \"bf16\": this CPU (\(CPU.modelName)) has no native bf16 products (no "
                + "avx512_bf16 or amx_bf16, or oneDNN has no bf16 matmul for it), so bf16 products are emulated "
                + "exactly on the fp32 sgemm and run slower than fp32"
        case .native?:
            return "training.precision = \"bf16\": products run on oneDNN's bf16 matmul "
                + "(\(BF16Matmul.implementation ?? "?")), fp32 accumulation; master weights and moments stay fp32"
        case nil:
            return nil
        }
    }
}
