import Compute
import CLISupport
import GPT
import GPTShape
import Recipe
import Runtime

/// What gpt-train refuses before it builds a run, beyond the recipe's own checks (`RecipeLoader.loadValid`): what
/// `CPUTrainer` says of the recipe on this machine (the layouts the CPU trainer does not implement, and a run that
/// does not fit this machine's memory); `gpt-plan check` asks the same type the same question. (The Trainer library
/// trusts its caller to have asked.)
enum CPUTrainingCheck {
    /// This machine as the CPU trainer sees it.
    /// - Parameters: `products`: how a bf16 recipe's products will run (nil: `BF16Products.best`);
    ///   `ranksHere`: the data-parallel ranks on this machine, each with a replica.
    static func machine(products: BF16Products?, ranksHere: Int) -> CPUTrainer {
        CPUTrainer(memoryBytes: Double(CPU.memoryBytes), bf16Products: products ?? .best, ranksHere: ranksHere)
    }

    /// Throws the first problem (`CPUTrainer.Problem`), naming the recipe key and the fix.
    static func check(_ recipe: Recipe, products: BF16Products?, ranksHere: Int) throws {
        if let problem = machine(products: products, ranksHere: ranksHere).problems(recipe.cpuTrainerRun).first {
            throw problem
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
